"""The per-process copy of answers in front of Redis, and the channel that keeps it valid."""

import pytest
from django.core.cache import cache as djcache

from analytics.models import EventSource
from analytics.services import events_store, visitor_erase
from ops.tests.test_failure_drills import gunicorn
from personalization import cache as p13n_cache
from personalization.models import PersonalizationRule, Segment
from personalization.services import catalog_load_demo, rule_activate
from personalization.tests.test_personalization_api import ml_events, personalized_id

URL = "/api/personalization"


def _tamper(uid: str, body: bytes) -> None:
    """Rewrite the visitor's entry in Redis under the same version tags, without publishing:
    only a process that reads Redis can see it."""
    tags = djcache.get(p13n_cache.response_key(uid))[:2]
    djcache.set(p13n_cache.response_key(uid), (*tags, body), timeout=60)


def _new_rule() -> PersonalizationRule:
    return PersonalizationRule.objects.create(
        segment=Segment.objects.get(code="ML_ENGINEER"),
        version=2,
        priority_sections=["skills", "projects"],
        featured_projects=["recsys-lab"],
        reasoning="new",
    )


@pytest.fixture
def ml_visitor(redis_url, django_capture_on_commit_callbacks):
    catalog_load_demo()
    uid = personalized_id()
    with django_capture_on_commit_callbacks(execute=True):
        events_store(events=ml_events(uid), source=EventSource.API)
    return uid


@pytest.mark.django_db
def test_lookup__warm__served_from_this_process_until_invalidated(client, ml_visitor):
    first = client.get(URL, {"user_id": ml_visitor}).content
    client.get(URL, {"user_id": ml_visitor})  # a Redis hit: now kept in this process
    _tamper(ml_visitor, b'{"from":"redis"}')

    kept = client.get(URL, {"user_id": ml_visitor}).content
    p13n_cache.publish_profile_version(
        ml_visitor, djcache.get(p13n_cache.profile_version_key(ml_visitor))
    )
    after = client.get(URL, {"user_id": ml_visitor}).content

    assert kept == first  # no round trip: Redis was not read
    assert after == b'{"from":"redis"}'  # the invalidation sent it back to Redis


@pytest.mark.django_db
def test_lookup__subscription_lost__reads_redis_again(client, ml_visitor, monkeypatch):
    monkeypatch.setattr(p13n_cache.LocalResponses, "RETRY_SECONDS", 0.0)
    client.get(URL, {"user_id": ml_visitor})
    client.get(URL, {"user_id": ml_visitor})
    _tamper(ml_visitor, b'{"from":"redis"}')
    local = p13n_cache.local_responses()
    assert local is not None

    p13n_cache.redis_client().client_kill_filter(_type="pubsub", skipme=True)
    after = client.get(URL, {"user_id": ml_visitor}).content

    # Messages may have been missed while it was down: nothing kept is trusted.
    assert after == b'{"from":"redis"}'


@pytest.mark.django_db
def test_lookup__size_bound__oldest_answers_go(client, ml_visitor, settings):
    settings.PERSONALIZATION_LOCAL_CACHE_SIZE = 2
    p13n_cache._local.update(pid=None, responses=None)  # start a copy with the new size
    others = [f"casual.{i}" for i in range(3)]
    for uid in [ml_visitor, *others]:
        client.get(URL, {"user_id": uid})
        client.get(URL, {"user_id": uid})

    local = p13n_cache.local_responses()
    assert local is not None
    assert list(local._entries) == others[1:]


@pytest.mark.django_db(transaction=True)
def test_gunicorn_worker__copy_kept__rule_profile_and_erasure_seen_on_next_request(
    tmp_path, ml_visitor, django_capture_on_commit_callbacks
):
    with gunicorn(tmp_path, PERSONALIZATION_LOCAL_CACHE_SIZE="100") as server:
        path = f"{URL}?user_id={ml_visitor}"
        first = server.call("GET", path)[2]
        server.call("GET", path)
        _tamper(ml_visitor, b'{"from":"redis"}')
        kept = server.call("GET", path)[2]

        rule_activate(rule=_new_rule())  # publishes after commit: every copy goes
        after_rule = server.call("GET", path)[2]
        server.call("GET", path)
        visitor_erase(user_pseudo_id=ml_visitor)
        after_erasure = server.call("GET", path)[2]

    assert kept == first  # the worker answered from its own copy
    assert first["segment"] == "ML_ENGINEER"
    assert after_rule["rule_version"] == 2
    assert after_rule["featured_projects"] == ["recsys-lab"]
    assert after_erasure["segment"] == "CASUAL"
    assert after_erasure["segmented_at"] is None
