"""Visitors without events share one cached answer and leave nothing behind (issue 18 item 3;
API.md: an unknown visitor "costs no stored state")."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analytics.models import EventSource, Visitor
from analytics.services import events_store
from analytics.validation import USER_PSEUDO_ID_RE
from conftest import require_service
from personalization import cache as p13n_cache
from personalization.models import VisitorProfile
from personalization.selectors import active_rules, personalization_encode, variant_for
from personalization.services import catalog_load_demo
from personalization.tests.test_personalization_api import ml_events, personalized_id

pytestmark = pytest.mark.django_db
URL = "/api/personalization"


@pytest.fixture
def catalog():
    catalog_load_demo()


def _own_keys(uid: str) -> dict:
    return cache.get_many([p13n_cache.profile_version_key(uid), p13n_cache.response_key(uid)])


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(uid=st.from_regex(USER_PSEUDO_ID_RE, fullmatch=True))
def test_personalization__unknown_visitor__shared_answer_no_key_no_row(catalog, uid):
    client = Client()

    first = client.get(URL, {"user_id": uid})
    second = client.get(URL, {"user_id": uid})

    expected = personalization_encode(user_pseudo_id=uid, profile=None, rules=active_rules())
    assert first.status_code == second.status_code == 200
    assert first.content == second.content == expected  # byte for byte, variant included
    assert first.json()["variant"] == variant_for(uid)
    assert _own_keys(uid) == {}
    assert not Visitor.objects.filter(user_pseudo_id=uid).exists()
    assert not VisitorProfile.objects.filter(user_pseudo_id=uid).exists()


def test_personalization__unknown_visitor_after_another__at_most_one_query(
    client, catalog, django_assert_max_num_queries
):
    client.get(URL, {"user_id": "warm.1"})  # the shared answer is built once

    with django_assert_max_num_queries(1):  # is there a profile? (indexed)
        body = client.get(URL, {"user_id": "cold.2"}).json()

    assert body["user_id"] == "cold.2"
    assert body["segment"] == "CASUAL"


def test_personalization__known_visitor_keys_evicted__own_segment_not_shared_answer(
    client, catalog, django_capture_on_commit_callbacks
):
    """allkeys-lru may evict any key: a visitor with a profile whose version and answer are
    gone must not be taken for an unknown one."""
    uid = personalized_id("evicted")
    with django_capture_on_commit_callbacks(execute=True):
        events_store(events=ml_events(uid), source=EventSource.API)
    client.get(URL, {"user_id": "someone.new"})  # the shared answer is cached
    assert client.get(URL, {"user_id": uid}).json()["segment"] == "ML_ENGINEER"

    cache.delete_many([p13n_cache.profile_version_key(uid), p13n_cache.response_key(uid)])
    p13n_cache.local_responses_clear()

    assert client.get(URL, {"user_id": uid}).json()["segment"] == "ML_ENGINEER"
    assert client.get(URL, {"user_id": uid}).json()["segment"] == "ML_ENGINEER"


def test_personalization__first_events_of_unknown_visitor__fresh_decision(
    client, catalog, django_capture_on_commit_callbacks
):
    uid = personalized_id("first")
    for _ in range(2):  # the shared answer, from Redis then from this process's copy
        assert client.get(URL, {"user_id": uid}).json()["segment"] == "CASUAL"

    with django_capture_on_commit_callbacks(execute=True):
        events_store(events=ml_events(uid), source=EventSource.API)

    body = client.get(URL, {"user_id": uid}).json()
    assert body["segment"] == "ML_ENGINEER"
    assert body["segmented_at"] is not None


def test_personalization__keys_left_by_an_older_release__cleared_on_next_miss(client, catalog):
    uid = "legacy.1"
    cache.set(p13n_cache.profile_version_key(uid), 0, timeout=None)

    body = client.get(URL, {"user_id": uid}).json()

    assert body["segment"] == "CASUAL"
    assert _own_keys(uid) == {}


def test_personalization__2000_unknown_ids__bounded_keys_all_expiring(client, catalog, redis_url):
    """The drill of issue 18 item 3 on real Redis: a loop of made-up ids must not grow the
    keyspace (before: one key per id, with no time-to-live)."""
    require_service("the Redis cache", p13n_cache.redis_client() is not None)
    redis = p13n_cache.redis_client()
    pattern = cache.make_key("*")
    before = set(redis.scan_iter(match=pattern, count=1000))

    for i in range(2_000):
        assert client.get(URL, {"user_id": f"junk.{i}"}).status_code == 200

    added = set(redis.scan_iter(match=pattern, count=1000)) - before
    assert len(added) < 50, sorted(added)[:20]
    assert [key for key in added if redis.ttl(key) == -1] == []
