"""Writes to the event store. Every ingestion channel ends in `events_store`."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from django.db import transaction

from .models import Event, EventSource, RejectedEvent, Visitor

# Below 1e11 a Unix timestamp is in seconds (until year 5138), below 1e14 in milliseconds.
_SECONDS_BELOW = 10**11
_MILLIS_BELOW = 10**14


def timestamp_to_datetime(value: int | float) -> datetime:
    """Unix seconds, milliseconds or microseconds (GA4 sends micros) → aware UTC datetime."""
    if value < _SECONDS_BELOW:
        seconds = float(value)
    elif value < _MILLIS_BELOW:
        seconds = value / 1_000
    else:
        seconds = value / 1_000_000
    return datetime.fromtimestamp(seconds, tz=UTC)


def dedupe_key(
    *,
    user_pseudo_id: str,
    event_name: str,
    occurred_at: datetime,
    event_params: dict[str, Any],
    event_id: str | None = None,
) -> str:
    """The client's event_id when it sent one, else the event's content, hashed."""
    if event_id:
        material = ["id", user_pseudo_id, event_id]
    else:
        material = [
            "content",
            user_pseudo_id,
            event_name,
            occurred_at.isoformat(),
            json.dumps(event_params, sort_keys=True, separators=(",", ":"), default=str),
        ]
    return hashlib.sha256("\x1f".join(material).encode()).hexdigest()


@dataclass
class EventIn:
    """A validated event, whatever channel it arrived through."""

    event_name: str
    user_pseudo_id: str
    occurred_at: datetime
    event_params: dict[str, Any] = field(default_factory=dict)
    event_id: str | None = None
    session_id: str = ""
    page_location: str = ""
    page_referrer: str = ""


@dataclass(frozen=True)
class StoreResult:
    accepted: int
    duplicates: int
    user_pseudo_ids: tuple[str, ...]


def _to_row(event: EventIn, source: str) -> Event:
    params = event.event_params
    return Event(
        event_name=event.event_name,
        user_pseudo_id=event.user_pseudo_id,
        event_params=params,
        occurred_at=event.occurred_at,
        source=source,
        session_id=event.session_id or str(params.get("ga_session_id", ""))[:100],
        page_location=event.page_location or str(params.get("page_location", "")),
        page_referrer=event.page_referrer or str(params.get("page_referrer", "")),
        dedupe_key=dedupe_key(
            user_pseudo_id=event.user_pseudo_id,
            event_name=event.event_name,
            occurred_at=event.occurred_at,
            event_params=params,
            event_id=event.event_id,
        ),
    )


def events_store(*, events: Sequence[EventIn], source: str = EventSource.API) -> StoreResult:
    """Insert new events and update their visitors, in one transaction; duplicates are dropped.

    A duplicate is an event whose dedupe key is already stored or repeats earlier in the batch.
    """
    rows: dict[str, Event] = {}
    for event in events:
        row = _to_row(event, source)
        rows.setdefault(row.dedupe_key, row)
    with transaction.atomic():
        existing = set(
            Event.objects.filter(dedupe_key__in=list(rows)).values_list("dedupe_key", flat=True)
        )
        new_rows = [row for key, row in rows.items() if key not in existing]
        # ignore_conflicts covers a concurrent request that inserted the same key meanwhile.
        Event.objects.bulk_create(new_rows, batch_size=1000, ignore_conflicts=True)
        _visitors_record(new_rows)
    return StoreResult(
        accepted=len(new_rows),
        duplicates=len(events) - len(new_rows),
        user_pseudo_ids=tuple(sorted({row.user_pseudo_id for row in new_rows})),
    )


def _visitors_record(rows: Iterable[Event]) -> None:
    """Fold a batch of new events into their visitors' first/last seen and counts."""
    summary: dict[str, tuple[datetime, datetime, int]] = {}
    for row in rows:
        first, last, count = summary.get(row.user_pseudo_id, (row.occurred_at, row.occurred_at, 0))
        summary[row.user_pseudo_id] = (
            min(first, row.occurred_at),
            max(last, row.occurred_at),
            count + 1,
        )
    if not summary:
        return
    Visitor.objects.bulk_create(
        [
            Visitor(user_pseudo_id=uid, first_seen=first, last_seen=last, event_count=0)
            for uid, (first, last, _count) in summary.items()
        ],
        ignore_conflicts=True,
    )
    # Lock in a stable order so two batches touching the same visitors cannot deadlock.
    visitors = (
        Visitor.objects.select_for_update()
        .filter(user_pseudo_id__in=list(summary))
        .order_by("user_pseudo_id")
    )
    changed = []
    for visitor in visitors:
        first, last, count = summary[visitor.user_pseudo_id]
        visitor.first_seen = min(visitor.first_seen, first)
        visitor.last_seen = max(visitor.last_seen, last)
        visitor.event_count += count
        changed.append(visitor)
    Visitor.objects.bulk_update(changed, ["first_seen", "last_seen", "event_count"], batch_size=500)


@dataclass
class RejectedIn:
    """Something a client sent that we refuse, and every reason why."""

    payload: Any
    reasons: list[dict[str, str]]  # [{"field": ..., "message": ..., "code": ...}]
    context: str = ""
    line_number: int | None = None


def rejected_events_store(*, source: str, items: Sequence[RejectedIn]) -> int:
    """Keep refused input as dead letters, so nothing a client sent is silently lost."""
    if not items:
        return 0
    RejectedEvent.objects.bulk_create(
        [
            RejectedEvent(
                source=source,
                payload=item.payload if isinstance(item.payload, dict) else {"raw": item.payload},
                reasons=item.reasons,
                context=item.context[:300],
                line_number=item.line_number,
            )
            for item in items
        ],
        batch_size=1000,
    )
    return len(items)


def visitors_merge_traits(*, traits_by_visitor: dict[str, dict[str, Any]]) -> None:
    """Merge what a source tells about visitors (user properties, device, geo, traffic source,
    consent) into their traits; a newer value for a key replaces the older one.

    Visitors must already exist (events_store creates them); unknown ids are ignored.
    """
    if not traits_by_visitor:
        return
    with transaction.atomic():
        visitors = (
            Visitor.objects.select_for_update()
            .filter(user_pseudo_id__in=list(traits_by_visitor))
            .order_by("user_pseudo_id")
        )
        changed = []
        for visitor in visitors:
            merged = {**visitor.traits, **traits_by_visitor[visitor.user_pseudo_id]}
            if merged != visitor.traits:
                visitor.traits = merged
                changed.append(visitor)
        Visitor.objects.bulk_update(changed, ["traits"], batch_size=500)
