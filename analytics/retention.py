"""Data retention: events older than EVENT_RETENTION_DAYS and dead letters older than
REJECTED_RETENTION_DAYS are deleted, in bounded batches so no statement holds locks for long.

Visitors keep consistent counts: each batch lowers their event_count by what it deleted and
drops visitors left with no events. Their profiles are then out of date (they count more
events than the visitor has), which is exactly what the stale-profile sweep
(personalization.tasks.resegment_stale) looks for: it re-segments them from what is left.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Count
from django.utils import timezone

from .models import Event, RejectedEvent, Visitor

logger = logging.getLogger(__name__)

BATCH = 5_000


@dataclass(frozen=True)
class RetentionResult:
    events_deleted: int
    visitors_deleted: int
    rejected_deleted: int

    def as_dict(self) -> dict[str, int]:
        return {
            "events_deleted": self.events_deleted,
            "visitors_deleted": self.visitors_deleted,
            "rejected_deleted": self.rejected_deleted,
        }


def retention_apply(*, now: datetime | None = None, batch: int = BATCH) -> RetentionResult:
    """Delete what is past its retention period. Safe to run at any time, and again."""
    now = now or timezone.now()
    events = visitors = rejected = 0
    if settings.EVENT_RETENTION_DAYS > 0:
        cutoff = now - timedelta(days=settings.EVENT_RETENTION_DAYS)
        while deleted := _events_delete_batch(cutoff, batch):
            events += deleted[0]
            visitors += deleted[1]
    if settings.REJECTED_RETENTION_DAYS > 0:
        cutoff = now - timedelta(days=settings.REJECTED_RETENTION_DAYS)
        while True:
            ids = list(
                RejectedEvent.objects.filter(received_at__lt=cutoff).values_list("pk", flat=True)[
                    :batch
                ]
            )
            if not ids:
                break
            rejected += RejectedEvent.objects.filter(pk__in=ids).delete()[0]
    result = RetentionResult(events, visitors, rejected)
    logger.info("analytics.retention.applied", extra=result.as_dict())
    return result


def _events_delete_batch(cutoff: datetime, batch: int) -> tuple[int, int] | None:
    """One batch of the oldest expired events, and the visitor bookkeeping, in a transaction."""
    with transaction.atomic():
        ids = list(
            Event.objects.filter(occurred_at__lt=cutoff)
            .order_by("occurred_at")
            .values_list("pk", flat=True)[:batch]
        )
        if not ids:
            return None
        per_visitor = dict(
            Event.objects.filter(pk__in=ids)
            .values("user_pseudo_id")
            .annotate(n=Count("pk"))
            .values_list("user_pseudo_id", "n")
        )
        deleted = Event.objects.filter(pk__in=ids).delete()[0]
        visitors = Visitor.objects.select_for_update().filter(user_pseudo_id__in=per_visitor)
        emptied = []
        for visitor in visitors:
            visitor.event_count = max(0, visitor.event_count - per_visitor[visitor.user_pseudo_id])
            if visitor.event_count == 0:
                emptied.append(visitor.pk)
            else:
                visitor.save(update_fields=["event_count"])
        Visitor.objects.filter(pk__in=emptied).delete()
    return deleted, len(emptied)
