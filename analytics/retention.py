"""Data retention: events older than EVENT_RETENTION_DAYS and dead letters older than
REJECTED_RETENTION_DAYS are deleted, in bounded batches so no statement holds locks for long.

Visitors stay true to their events: each batch recomputes the first/last seen and event count
of the visitors it touched from the events they have left (`visitors_recount`), and deletes
the visitors left with none. Those go with everything derived from them: `visitors_deleted`
is sent in the same transaction, and personalization drops their profiles (and, after commit,
their cached answers). The profiles of visitors who keep some events are then out of date
(they count more events than the visitor has), which is exactly what the stale-profile sweep
(personalization.tasks.resegment_stale) looks for: it re-segments them from what is left.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, Exists, OuterRef, Subquery
from django.db.models.functions import Collate
from django.utils import timezone

from .models import Event, RejectedEvent, Visitor
from .signals import visitors_deleted

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
        expired = Event.objects.filter(occurred_at__lt=cutoff).order_by("occurred_at")[:batch]
        rows = list(expired.values_list("pk", "user_pseudo_id"))
        if not rows:
            return None
        deleted = Event.objects.filter(pk__in=[pk for pk, _ in rows]).delete()[0]
        emptied = visitors_recount(user_pseudo_ids={uid for _, uid in rows})
        if emptied:
            # Inside the transaction: a listener's deletions (the profiles) commit with these.
            visitors_deleted.send(sender=Visitor, user_pseudo_ids=emptied, reason="retention")
    return deleted, len(emptied)


def visitors_recount(*, user_pseudo_ids: Iterable[str]) -> tuple[str, ...]:
    """Set each visitor's first/last seen and event count from the events it has left, and
    delete the visitors left with none; returns the ids deleted. Call it in a transaction.

    Set-based statements whatever the number of visitors, run after locking their rows in the
    order ingest locks them. The recount is a statement of its own after the lock: an ingest
    that holds a visitor's row has committed by then and its events are counted; one that locks
    it after us adds its own events by increment once we commit. Subtracting what was deleted
    would keep the count but could never move first_seen.
    """
    ids = sorted(set(user_pseudo_ids))
    if not ids:
        return ()
    visitors = Visitor.objects.filter(user_pseudo_id__in=ids)
    # PostgreSQL's collation order may differ from the byte order ingest locks in.
    order = (
        Collate("user_pseudo_id", "C") if connection.vendor == "postgresql" else "user_pseudo_id"
    )
    list(visitors.select_for_update().order_by(order).values_list("pk", flat=True))
    events = Event.objects.filter(user_pseudo_id=OuterRef("user_pseudo_id")).order_by()
    emptied = tuple(
        visitors.filter(~Exists(events))
        .order_by("user_pseudo_id")
        .values_list("user_pseudo_id", flat=True)
    )
    if emptied:
        Visitor.objects.filter(user_pseudo_id__in=emptied).delete()
    # The (user_pseudo_id, occurred_at) index answers each subquery: two index probes and one
    # index range per visitor.
    visitors.update(
        first_seen=Subquery(events.order_by("occurred_at").values("occurred_at")[:1]),
        last_seen=Subquery(events.order_by("-occurred_at").values("occurred_at")[:1]),
        event_count=Subquery(
            events.values("user_pseudo_id").annotate(n=Count("*")).values("n")[:1]
        ),
    )
    return emptied
