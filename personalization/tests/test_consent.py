"""Consent: visitors who denied analytics storage or ad personalization are not profiled."""

from __future__ import annotations

import pytest

from analytics.consent import gcs_traits
from analytics.gtag import gtag_parse
from analytics.models import EventSource, Visitor
from analytics.services import events_store, visitors_merge_traits
from personalization.models import VisitorProfile
from personalization.recompute import profiles_recompute_all
from personalization.selectors import stale_visitor_ids
from personalization.services import visitor_resegment
from personalization.tests.test_personalization_api import URL, ml_events, personalized_id

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("gcs", "expected"),
    [
        ("G100", {"consent.ad_storage": "DENIED", "consent.analytics_storage": "DENIED"}),
        ("G101", {"consent.ad_storage": "DENIED", "consent.analytics_storage": "GRANTED"}),
        ("G111", {"consent.ad_storage": "GRANTED", "consent.analytics_storage": "GRANTED"}),
        ("G1--", {}),
        ("G2", {}),
        ("", {}),
    ],
)
def test_consent_mode_gcs_becomes_consent_traits(gcs, expected):
    assert gcs_traits(gcs) == expected


def test_a_gtag_hit_carries_its_consent_state_to_the_visitor():
    hit = gtag_parse(query="v=2&tid=G-TEST&cid=123.456&en=page_view&gcs=G100")
    assert hit.traits_by_visitor["123.456"]["consent.analytics_storage"] == "DENIED"


@pytest.fixture
def visitor(catalog, django_capture_on_commit_callbacks):
    uid = personalized_id("consent")
    with django_capture_on_commit_callbacks(execute=True):
        events_store(events=ml_events(uid), source=EventSource.API)
    return uid


@pytest.fixture
def catalog():
    from personalization.services import catalog_load_demo

    catalog_load_demo()


def deny(uid: str, key: str = "consent.analytics_storage") -> None:
    visitors_merge_traits(traits_by_visitor={uid: {key: "DENIED"}})


@pytest.mark.parametrize("key", ["consent.analytics_storage", "consent.ad_personalization"])
def test_denied_visitor_loses_profile_and_cached_answer(
    client, visitor, key, django_capture_on_commit_callbacks
):
    assert client.get(URL, {"user_id": visitor}).json()["segment"] == "ML_ENGINEER"

    deny(visitor, key)
    with django_capture_on_commit_callbacks(execute=True):
        assert visitor_resegment(user_pseudo_id=visitor) is None

    assert not VisitorProfile.objects.filter(user_pseudo_id=visitor).exists()
    body = client.get(URL, {"user_id": visitor}).json()
    assert body["segment"] == "CASUAL"  # the default experience, not the cached ML answer
    assert Visitor.objects.get(user_pseudo_id=visitor).event_count == 6  # events kept


def test_denied_visitors_are_skipped_by_recompute_and_sweep(visitor):
    deny(visitor)
    other = personalized_id("other")
    events_store(events=ml_events(other), source=EventSource.API)

    profiles_recompute_all()

    assert set(VisitorProfile.objects.values_list("user_pseudo_id", flat=True)) == {other}
    assert stale_visitor_ids(limit=10) == []
    newcomer = personalized_id("newcomer")
    events_store(events=ml_events(newcomer), source=EventSource.API)  # not yet segmented
    assert stale_visitor_ids(limit=10) == [newcomer]  # the denied visitor never is


def test_consent_mode_ignore_profiles_everyone(settings, visitor):
    settings.CONSENT_MODE = "ignore"
    deny(visitor)
    profile = visitor_resegment(user_pseudo_id=visitor)
    assert profile is not None
    assert profile.segment == "ML_ENGINEER"
