"""Retention: old events and dead letters go in batches; visitors stay consistent."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from analytics.models import Event, RejectedEvent, Visitor
from analytics.retention import retention_apply
from analytics.services import EventIn, events_store
from personalization.models import VisitorProfile
from personalization.selectors import stale_visitor_ids
from personalization.services import visitor_resegment

pytestmark = pytest.mark.django_db


def store(visitor: str, *ages_in_days: int) -> None:
    now = timezone.now()
    events_store(
        events=[
            EventIn(
                event_name="deep_read",
                user_pseudo_id=visitor,
                occurred_at=now - timedelta(days=age, minutes=i),
                event_params={"project_id": "llm-router"},
                event_id=f"{visitor}-{i}",
            )
            for i, age in enumerate(ages_in_days)
        ]
    )


def test_expired_events_go_and_visitors_stay_consistent(settings):
    settings.EVENT_RETENTION_DAYS = 30
    store("old.only", 40, 50, 60)
    store("mixed", 1, 2, 3, 45, 90)
    store("new.only", 1, 2)
    for visitor in ("mixed", "new.only"):
        visitor_resegment(user_pseudo_id=visitor)

    result = retention_apply(batch=2)  # several batches

    assert result.events_deleted == 5
    assert result.visitors_deleted == 1
    assert not Event.objects.filter(occurred_at__lt=timezone.now() - timedelta(days=30)).exists()
    assert not Visitor.objects.filter(user_pseudo_id="old.only").exists()
    counts = dict(Visitor.objects.values_list("user_pseudo_id", "event_count"))
    assert counts == {"mixed": 3, "new.only": 2}
    for visitor, count in counts.items():
        assert Event.objects.filter(user_pseudo_id=visitor).count() == count
    # The mixed visitor's profile counted 5 events: the sweep re-segments it from the 3 left.
    assert stale_visitor_ids(limit=10) == ["mixed"]
    visitor_resegment(user_pseudo_id="mixed")
    assert VisitorProfile.objects.get(user_pseudo_id="mixed").event_count == 3
    assert stale_visitor_ids(limit=10) == []
    assert retention_apply().events_deleted == 0  # idempotent


def test_dead_letters_have_their_own_period_and_zero_keeps_everything(settings):
    settings.EVENT_RETENTION_DAYS = 0
    settings.REJECTED_RETENTION_DAYS = 7
    store("ancient", 5000)
    old = RejectedEvent.objects.create(source="api", payload={"x": 1}, reasons=[])
    RejectedEvent.objects.filter(pk=old.pk).update(received_at=timezone.now() - timedelta(days=8))
    RejectedEvent.objects.create(source="api", payload={"x": 2}, reasons=[])

    result = retention_apply()

    assert result.rejected_deleted == 1
    assert list(RejectedEvent.objects.values_list("payload", flat=True)) == [{"x": 2}]
    assert Event.objects.filter(user_pseudo_id="ancient").count() == 1


def test_the_nightly_task_is_scheduled_and_runs(settings):
    from analytics.tasks import retention_apply as task
    from portfolio.celery import app

    settings.EVENT_RETENTION_DAYS = 30
    store("old.only", 40)
    entry = app.conf.beat_schedule["analytics-retention"]
    assert entry["task"] == task.name
    assert task.delay().get() == {"events_deleted": 1, "visitors_deleted": 1, "rejected_deleted": 0}


# --- visitor aggregates follow what retention leaves ------------------------------------------


def _aggregates_from_events() -> dict[str, tuple[object, object, int]]:
    """Each visitor's (first_seen, last_seen, event_count) recomputed from scratch."""
    from django.db.models import Count, Max, Min

    return {
        row["user_pseudo_id"]: (row["first"], row["last"], row["n"])
        for row in Event.objects.order_by()
        .values("user_pseudo_id")
        .annotate(first=Min("occurred_at"), last=Max("occurred_at"), n=Count("pk"))
    }


def _aggregates_stored() -> dict[str, tuple[object, object, int]]:
    return {
        v.user_pseudo_id: (v.first_seen, v.last_seen, v.event_count) for v in Visitor.objects.all()
    }


def test_retention__events_straddle_the_cutoff__first_seen_moves_to_oldest_left_and_count_drops(
    settings,
):
    settings.EVENT_RETENTION_DAYS = 30
    store("straddle", 1, 5, 29, 31, 200)
    oldest_kept = Event.objects.filter(user_pseudo_id="straddle").order_by("occurred_at")[2]

    result = retention_apply(batch=1)  # one event per batch: the visitor is touched twice

    assert result.events_deleted == 2
    assert result.visitors_deleted == 0
    visitor = Visitor.objects.get(user_pseudo_id="straddle")
    assert visitor.first_seen == oldest_kept.occurred_at  # not the deleted event's date
    assert visitor.event_count == 3
    assert _aggregates_stored() == _aggregates_from_events()


def test_retention__all_events_old__visitor_profile_and_cached_answer_gone(
    settings, client, django_capture_on_commit_callbacks
):
    from personalization import cache
    from personalization.services import catalog_load_demo
    from personalization.tests.test_personalization_api import URL, ml_events, personalized_id

    settings.EVENT_RETENTION_DAYS = 30
    catalog_load_demo()
    gone, kept = personalized_id("expired"), personalized_id("kept")
    for uid, age in ((gone, 40), (kept, 1)):
        events = ml_events(uid)
        for event in events:
            event.occurred_at -= timedelta(days=age)
        with django_capture_on_commit_callbacks(execute=True):
            events_store(events=events)
    for uid in (gone, kept):  # profiled and cached
        assert client.get(URL, {"user_id": uid}).json()["segment"] == "ML_ENGINEER"
        assert cache.lookup(uid).response is not None

    with django_capture_on_commit_callbacks(execute=True):
        result = retention_apply()

    assert result.visitors_deleted == 1
    assert not Visitor.objects.filter(user_pseudo_id=gone).exists()
    assert not VisitorProfile.objects.filter(user_pseudo_id=gone).exists()
    assert cache.lookup(gone).response is None
    assert client.get(URL, {"user_id": gone}).json()["segment"] == "CASUAL"
    # The visitor with recent events keeps everything.
    assert VisitorProfile.objects.filter(user_pseudo_id=kept).exists()
    assert client.get(URL, {"user_id": kept}).json()["segment"] == "ML_ENGINEER"


_ages = st.lists(st.integers(min_value=0, max_value=24 * 60), min_size=1, max_size=6)


@hypothesis_settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    visitors=st.lists(_ages, min_size=1, max_size=5),
    retention_days=st.integers(min_value=1, max_value=60),
    batch=st.integers(min_value=1, max_value=7),
)
def test_retention__random_event_dates_and_cutoff__aggregates_equal_a_recomputation(
    settings, visitors, retention_days, batch
):
    Event.objects.all().delete()
    Visitor.objects.all().delete()
    now = timezone.now()
    events_store(
        events=[
            EventIn(
                event_name="page_view",
                user_pseudo_id=f"v{v}",
                occurred_at=now - timedelta(hours=age, seconds=i),
                event_params={},
                event_id=f"v{v}-{i}",
            )
            for v, ages in enumerate(visitors)
            for i, age in enumerate(ages)
        ]
    )
    settings.EVENT_RETENTION_DAYS = retention_days
    cutoff = now - timedelta(days=retention_days)
    expected_gone = sum(
        all(now - timedelta(hours=age, seconds=i) < cutoff for i, age in enumerate(ages))
        for ages in visitors
    )

    result = retention_apply(now=now, batch=batch)

    assert not Event.objects.filter(occurred_at__lt=cutoff).exists()
    assert _aggregates_stored() == _aggregates_from_events()
    assert result.visitors_deleted == expected_gone


def test_stale_sweep__profile_left_by_an_earlier_retention__profile_and_cached_answer_gone(
    settings, client, django_capture_on_commit_callbacks
):
    # Retention used to delete a visitor and leave its profile (and cached answer) behind:
    # the periodic sweep removes such profiles, whenever they were left.
    from personalization import cache
    from personalization.services import catalog_load_demo
    from personalization.tasks import resegment_stale
    from personalization.tests.test_personalization_api import URL, ml_events, personalized_id

    catalog_load_demo()
    orphan, kept = personalized_id("orphan"), personalized_id("kept")
    for uid in (orphan, kept):
        with django_capture_on_commit_callbacks(execute=True):
            events_store(events=ml_events(uid))
        assert client.get(URL, {"user_id": uid}).json()["segment"] == "ML_ENGINEER"
    Event.objects.filter(user_pseudo_id=orphan).delete()
    Visitor.objects.filter(user_pseudo_id=orphan).delete()  # what the old retention did

    with django_capture_on_commit_callbacks(execute=True):
        resegment_stale()

    assert not VisitorProfile.objects.filter(user_pseudo_id=orphan).exists()
    assert cache.lookup(orphan).response is None
    assert client.get(URL, {"user_id": orphan}).json()["segment"] == "CASUAL"
    assert VisitorProfile.objects.filter(user_pseudo_id=kept).exists()
