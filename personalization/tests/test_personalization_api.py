"""GET /api/personalization against the contract in docs/API.md."""

from datetime import timedelta

import pytest
from django.utils import timezone
from prometheus_client import REGISTRY

from analytics.models import EventSource
from analytics.services import EventIn, events_store
from personalization.models import PersonalizationRule, RuleStatus, Segment, VisitorProfile
from personalization.selectors import variant_for
from personalization.services import catalog_load_demo, rule_activate, visitor_resegment

pytestmark = pytest.mark.django_db
URL = "/api/personalization"


def personalized_id(prefix="ml"):
    """A visitor id outside the holdout, so it gets its segment's rule."""
    return next(
        f"{prefix}.{i}" for i in range(1000) if variant_for(f"{prefix}.{i}") == "personalized"
    )


def holdout_id():
    return next(f"h.{i}" for i in range(1000) if variant_for(f"h.{i}") == "holdout")


def ml_events(uid, n=6):
    now = timezone.now()
    slugs = ["llm-router", "vision-defect-detector", "sentiment-pipeline"]
    return [
        EventIn(
            event_name="deep_read" if i % 2 else "project_click",
            user_pseudo_id=uid,
            occurred_at=now - timedelta(minutes=i),
            event_id=f"{uid}-{i}",
            event_params={"project_id": slugs[i % 3], "duration": 20_000},
        )
        for i in range(n)
    ]


@pytest.fixture
def catalog():
    catalog_load_demo()


@pytest.fixture
def ml_visitor(catalog, django_capture_on_commit_callbacks):
    uid = personalized_id()
    with django_capture_on_commit_callbacks(execute=True):
        events_store(events=ml_events(uid), source=EventSource.API)
    return uid


def test_personalization__no_user_id__422(client):
    response = client.get(URL)

    assert response.status_code == 422
    assert response.json()["errors"] == {"user_id": ["This query parameter is required."]}


def test_personalization__invalid_user_id__422(client):
    response = client.get(URL, {"user_id": "bad id!"})

    assert response.status_code == 422
    assert "user_id" in response.json()["errors"]


def test_personalization__unknown_visitor__casual_default_rule(client):
    response = client.get(URL, {"user_id": personalized_id("new")})

    body = response.json()
    assert response.status_code == 200
    assert body["segment"] == "CASUAL"
    assert body["priority_sections"] == ["about", "projects", "skills", "career"]
    assert body["segmented_at"] is None
    assert body["explanation"]["contributions"] == []
    assert set(body["scores"]) == {"ML_ENGINEER", "FULLSTACK_DEV", "RECRUITER", "STUDENT", "CASUAL"}


def test_personalization__ml_visitor__contract_shape_and_ml_rule(client, ml_visitor):
    body = client.get(URL, {"user_id": ml_visitor}).json()

    assert list(body)[:9] == [
        "user_id",
        "segment",
        "confidence",
        "scores",
        "priority_sections",
        "featured_projects",
        "highlight_skills",
        "reasoning",
        "explanation",
    ]
    assert body["segment"] == "ML_ENGINEER"
    assert body["variant"] == "personalized"
    assert body["priority_sections"][0] == "projects"
    assert "llm-router" in body["featured_projects"]
    assert "PyTorch" in body["highlight_skills"]
    assert body["confidence"] == pytest.approx(body["scores"]["ML_ENGINEER"], abs=1e-4)
    assert body["segmented_at"].endswith("Z")
    assert {"what", "why", "so_what", "recommendation"} <= set(body["explanation"])


def test_personalization__contributions__add_up_to_raw_scores(client, ml_visitor):
    explanation = client.get(URL, {"user_id": ml_visitor}).json()["explanation"]
    raw = VisitorProfile.objects.get(user_pseudo_id=ml_visitor).raw_scores

    for segment, prior in explanation["priors"].items():
        total = prior + sum(
            c["contribution"] for c in explanation["contributions"] if c["segment"] == segment
        )
        assert total == pytest.approx(raw[segment], abs=1e-3)


def test_personalization__cache_hit__zero_queries(client, ml_visitor, django_assert_num_queries):
    first = client.get(URL, {"user_id": ml_visitor}).json()

    with django_assert_num_queries(0):
        second = client.get(URL, {"user_id": ml_visitor}).json()

    assert second == first


def test_personalization__rule_activated__served_on_next_request(
    client, ml_visitor, django_capture_on_commit_callbacks
):
    client.get(URL, {"user_id": ml_visitor})  # warm the cache
    segment = Segment.objects.get(code="ML_ENGINEER")
    rule = PersonalizationRule.objects.create(
        segment=segment,
        version=2,
        priority_sections=["skills", "projects"],
        featured_projects=["recsys-lab"],
        reasoning="new",
    )

    with django_capture_on_commit_callbacks(execute=True):
        rule_activate(rule=rule)
    body = client.get(URL, {"user_id": ml_visitor}).json()

    assert body["rule_version"] == 2
    assert body["priority_sections"] == ["skills", "projects"]
    assert body["featured_projects"] == ["recsys-lab"]
    assert PersonalizationRule.objects.get(segment=segment, version=1).status == RuleStatus.ARCHIVED


def test_personalization__new_profile__served_on_next_request(
    client, catalog, django_capture_on_commit_callbacks
):
    uid = personalized_id("late")
    assert client.get(URL, {"user_id": uid}).json()["segment"] == "CASUAL"  # cached default

    with django_capture_on_commit_callbacks(execute=True):
        events_store(events=ml_events(uid), source=EventSource.API)

    assert client.get(URL, {"user_id": uid}).json()["segment"] == "ML_ENGINEER"


def test_personalization__cache_unreachable__200_from_database_and_counted(
    client, ml_visitor, settings
):
    before = REGISTRY.get_sample_value("cache_errors_total", {"cache": "personalization"}) or 0
    settings.CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",
            "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 0.2, "SOCKET_TIMEOUT": 0.2},
        }
    }

    response = client.get(URL, {"user_id": ml_visitor})

    assert response.status_code == 200
    assert response.json()["segment"] == "ML_ENGINEER"
    after = REGISTRY.get_sample_value("cache_errors_total", {"cache": "personalization"})
    assert after is not None
    assert after >= (before or 0) + 1


def test_holdout__share_and_stability():
    ids = [f"v.{i}" for i in range(5000)]

    share = sum(variant_for(uid) == "holdout" for uid in ids) / len(ids)

    assert 0.08 <= share <= 0.12
    assert [variant_for(uid) for uid in ids[:50]] == [variant_for(uid) for uid in ids[:50]]


def test_holdout__visitor__own_segment_with_default_rule(
    client, catalog, django_capture_on_commit_callbacks
):
    uid = holdout_id()
    with django_capture_on_commit_callbacks(execute=True):
        events_store(events=ml_events(uid), source=EventSource.API)

    body = client.get(URL, {"user_id": uid}).json()

    assert body["variant"] == "holdout"
    assert body["segment"] == "ML_ENGINEER"
    assert body["priority_sections"] == ["about", "projects", "skills", "career"]
    assert body["featured_projects"] == []


def test_holdout__setting_zero__nobody_held_out(settings):
    settings.PERSONALIZATION_HOLDOUT_PERCENT = 0

    assert all(variant_for(f"v.{i}") == "personalized" for i in range(500))


def test_rules__second_active_for_segment__refused(catalog):
    from django.db import IntegrityError

    segment = Segment.objects.get(code="RECRUITER")
    with pytest.raises(IntegrityError):
        PersonalizationRule.objects.create(segment=segment, version=9, status=RuleStatus.ACTIVE)


def test_visitor_resegment__no_events__no_profile():
    assert visitor_resegment(user_pseudo_id="ghost") is None
    assert not VisitorProfile.objects.exists()
