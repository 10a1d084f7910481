"""Retention: old events and dead letters go in batches; visitors stay consistent."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

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
