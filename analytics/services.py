"""Writes to the event store. Every ingestion channel ends in `events_store`."""

from __future__ import annotations

import collections
import hashlib
import json
import logging
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from django.db import connection, transaction

from ops.erasure import ledger_hashes, ledger_record, visitor_hash
from ops.metrics import EVENTS_DUPLICATE, EVENTS_INGESTED, events_rejected
from portfolio.storable import storable_json, storable_text

from .dead_letters import dead_letter_scrub, dead_letter_visitor
from .models import Event, EventSource, RejectedEvent, Visitor
from .signals import events_stored, visitor_erased

logger = logging.getLogger(__name__)

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


# Built once: json.dumps with options builds a new encoder on every call.
_CANONICAL_JSON = json.JSONEncoder(sort_keys=True, separators=(",", ":"), default=str)


_SCALARS = (str, int, bool, type(None))


def canonical_json(params: dict[str, Any]) -> str:
    """Sorted, compact, ASCII-only JSON of an event's params: the form dedupe keys hash.

    Dedupe keys must never change for the same event, so this is the stdlib's output byte for
    byte. orjson writes it ten times faster where the two agree: flat text, integers, booleans
    and nulls, when its output is all ASCII without DEL (the stdlib escapes those). Floats
    (1e-07 vs 1e-7), nesting and anything else take the stdlib path. The tests hold the two
    to the same output."""
    for value in params.values():
        if type(value) not in _SCALARS:
            return _CANONICAL_JSON.encode(params)
    try:
        out = orjson.dumps(params, option=orjson.OPT_SORT_KEYS)
    except orjson.JSONEncodeError:  # a key that is not text, an integer past 64 bits
        return _CANONICAL_JSON.encode(params)
    if out.isascii() and b"\x7f" not in out:
        return out.decode()
    return _CANONICAL_JSON.encode(params)


def dedupe_key(
    *,
    user_pseudo_id: str,
    event_name: str,
    occurred_at: datetime,
    event_params: dict[str, Any],
    event_id: str | None = None,
) -> uuid.UUID:
    """The client's event_id when it sent one, else the event's content, hashed: the first
    16 bytes of the sha256 digest, as a UUID (PostgreSQL's uuid, 16 bytes compared by memcmp;
    until 0004 the column held the digest's 64 hex digits, of which these are the first 32)."""
    if event_id:
        material = "\x1f".join(("id", user_pseudo_id, event_id))
        return uuid.UUID(bytes=hashlib.sha256(material.encode()).digest()[:16])
    return uuid.UUID(
        bytes=content_dedupe_digest(
            user_pseudo_id, event_name, occurred_at.isoformat(), event_params
        )
    )


def content_dedupe_digest(
    user_pseudo_id: str, event_name: str, occurred_at_iso: str, event_params: dict[str, Any]
) -> bytes:
    """dedupe_key's 16 bytes for an event without an event_id, for a caller that has the ISO
    time at hand (bytes sort as PostgreSQL sorts the uuid, and `.hex()` is its COPY text)."""
    material = "\x1f".join(
        ("content", user_pseudo_id, event_name, occurred_at_iso, canonical_json(event_params))
    )
    return hashlib.sha256(material.encode()).digest()[:16]


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


def param_text(params: dict[str, Any], name: str) -> str:
    """A param as text for a column; absent or null (common in GA4 exports) is ""."""
    value = params.get(name)
    return "" if value is None else str(value)


def page_fields(event: EventIn) -> tuple[str, str, str]:
    """(session_id, page_location, page_referrer): explicit fields, else the GA4 params."""
    params = event.event_params
    return (
        (event.session_id or param_text(params, "ga_session_id"))[:100],
        event.page_location or param_text(params, "page_location"),
        event.page_referrer or param_text(params, "page_referrer"),
    )


def _to_row(event: EventIn, source: str) -> Event:
    params = event.event_params
    session_id, page_location, page_referrer = page_fields(event)
    return Event(
        event_name=event.event_name,
        user_pseudo_id=event.user_pseudo_id,
        event_params=params,
        occurred_at=event.occurred_at,
        source=source,
        session_id=session_id,
        page_location=page_location,
        page_referrer=page_referrer,
        dedupe_key=dedupe_key(
            user_pseudo_id=event.user_pseudo_id,
            event_name=event.event_name,
            occurred_at=event.occurred_at,
            event_params=params,
            event_id=event.event_id,
        ),
    )


def events_store(*, events: Sequence[EventIn], source: str = EventSource.API) -> StoreResult:
    """Insert new events and fold them into their visitors, in one transaction.

    A duplicate is an event whose dedupe key is already stored or repeats earlier in the batch;
    it is dropped and counted. Counts are exact under concurrent requests on PostgreSQL.
    """
    rows: dict[uuid.UUID, Event] = {}
    for event in events:
        row = _to_row(event, source)
        rows.setdefault(row.dedupe_key, row)
    # One lock order for every writer, so overlapping batches cannot deadlock: by visitor, then
    # key (a key tells its visitor: both hashes cover it). The GA4 import's too: Python's str
    # order is COLLATE "C"'s, and a UUID sorts by its bytes, as PostgreSQL sorts the column.
    ordered = sorted(rows.values(), key=lambda row: (row.user_pseudo_id, row.dedupe_key))
    if connection.vendor == "postgresql":
        # One statement is one transaction: no BEGIN and COMMIT round trips.
        inserted = _events_and_visitors_insert_postgres(ordered)
    else:
        with transaction.atomic():
            inserted = _events_insert_portable(ordered)
            _visitors_fold_events_portable(inserted)
    user_pseudo_ids = tuple(sorted({uid for uid, _ in inserted}))
    if user_pseudo_ids:
        # Runs at once in autocommit, or after the caller's transaction commits.
        transaction.on_commit(lambda: events_stored_announce(user_pseudo_ids, source))
    EVENTS_INGESTED.labels(source).inc(len(inserted))
    EVENTS_DUPLICATE.labels(source).inc(len(events) - len(inserted))
    return StoreResult(
        accepted=len(inserted),
        duplicates=len(events) - len(inserted),
        user_pseudo_ids=user_pseudo_ids,
    )


def events_stored_announce(user_pseudo_ids: tuple[str, ...], source: str) -> None:
    """Tell listeners (re-segmentation) which visitors have new events. Call after commit."""
    events_stored.send(sender=Event, user_pseudo_ids=user_pseudo_ids, source=source)


NewEvent = tuple[str, datetime]  # (user_pseudo_id, occurred_at) of an inserted event

# The events, then their visitors folded from exactly the rows that were new (RETURNING is
# right even under a race), in one statement: all or nothing, visitors locked in id order
# (byte order, as the GA4 import locks them, whatever the database's collation).
_INSERT_EVENTS_AND_VISITORS_SQL = """
WITH new AS (
    INSERT INTO analytics_event (event_name, user_pseudo_id, event_params, occurred_at,
                                 received_at, source, session_id, page_location, page_referrer,
                                 dedupe_key)
    SELECT n, u, p, o, now(), s, si, pl, pr, k
    FROM jsonb_to_recordset(%s::jsonb)
         AS t(n text, u text, p jsonb, o timestamptz, s text, si text, pl text, pr text, k uuid)
    ON CONFLICT (dedupe_key) DO NOTHING
    RETURNING user_pseudo_id, occurred_at
), folded AS (
    INSERT INTO analytics_visitor (user_pseudo_id, first_seen, last_seen, event_count, traits)
    SELECT user_pseudo_id, min(occurred_at), max(occurred_at), count(*), '{}'::jsonb
    FROM new GROUP BY user_pseudo_id ORDER BY user_pseudo_id COLLATE "C"
    ON CONFLICT (user_pseudo_id) DO UPDATE SET
        first_seen = LEAST(analytics_visitor.first_seen, EXCLUDED.first_seen),
        last_seen = GREATEST(analytics_visitor.last_seen, EXCLUDED.last_seen),
        event_count = analytics_visitor.event_count + EXCLUDED.event_count
)
SELECT user_pseudo_id, occurred_at FROM new
"""


def _events_and_visitors_insert_postgres(rows: Sequence[Event]) -> list[NewEvent]:
    """Store the rows and fold the new ones into their visitors; returns the new ones."""
    if not rows:
        return []
    # The rows go as one JSON document: psycopg quotes one string instead of nine arrays, a
    # third of a single-event request's CPU. Validation has refused NUL, lone surrogates and
    # non-finite numbers, the only values this path could not carry.
    document = json.dumps(
        [
            {
                "n": row.event_name,
                "u": row.user_pseudo_id,
                "p": row.event_params,
                "o": row.occurred_at.isoformat(),
                "s": row.source,
                "si": row.session_id,
                "pl": row.page_location,
                "pr": row.page_referrer,
                "k": row.dedupe_key.hex,  # uuid's input takes 32 hex digits
            }
            for row in rows
        ],
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
    )
    with connection.cursor() as cursor:
        cursor.execute(_INSERT_EVENTS_AND_VISITORS_SQL, [document])
        return [(uid, occurred_at) for uid, occurred_at in cursor.fetchall()]


def _events_insert_portable(rows: Sequence[Event]) -> list[NewEvent]:
    existing = set(
        Event.objects.filter(dedupe_key__in=[row.dedupe_key for row in rows]).values_list(
            "dedupe_key", flat=True
        )
    )
    new_rows = [row for row in rows if row.dedupe_key not in existing]
    Event.objects.bulk_create(new_rows, batch_size=1000, ignore_conflicts=True)
    return [(row.user_pseudo_id, row.occurred_at) for row in new_rows]


def _visitors_fold_events_portable(new_events: Iterable[NewEvent]) -> None:
    """Fold newly inserted events into their visitors' first/last seen and event counts.

    Call it inside the transaction that inserted the events, with only the new ones. (On
    PostgreSQL the insert statement folds them itself.)
    """
    summary: dict[str, tuple[datetime, datetime, int]] = {}
    for uid, occurred_at in new_events:
        first, last, count = summary.get(uid, (occurred_at, occurred_at, 0))
        summary[uid] = (min(first, occurred_at), max(last, occurred_at), count + 1)
    if not summary:
        return
    ids = sorted(summary)
    Visitor.objects.bulk_create(
        [
            Visitor(user_pseudo_id=uid, first_seen=summary[uid][0], last_seen=summary[uid][1])
            for uid in ids
        ],
        ignore_conflicts=True,
    )
    changed = []
    for visitor in Visitor.objects.select_for_update().filter(user_pseudo_id__in=ids):
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
    """Keep refused input as dead letters, so nothing a client sent is silently lost.

    Everything here may quote the client (a payload, a field name in a reason, the measurement
    id in the context): it goes through the shared repair, so a dead letter is always storable
    and a refusal can never become a 500 (a NUL in gtag's `tid` once did). Payloads lose what
    identifies a person (IPs, user_data, precise geo: dead_letters.py) before they are written,
    and carry their visitor id in a column of their own, for erasure and the admin."""
    if not items:
        return 0
    RejectedEvent.objects.bulk_create(
        [
            RejectedEvent(
                source=source,
                payload=storable_json(
                    dead_letter_scrub(
                        item.payload if isinstance(item.payload, dict) else {"raw": item.payload},
                        source=source,
                    )
                ),
                user_pseudo_id=dead_letter_visitor(item.payload, source=source),
                reasons=storable_json(item.reasons),
                context=storable_text(item.context)[:300],
                line_number=item.line_number,
            )
            for item in items
        ],
        batch_size=1000,
    )
    by_code = collections.Counter(
        item.reasons[0].get("code") if item.reasons else None for item in items
    )
    for code, count in by_code.items():
        events_rejected(source=source, reason=str(code), count=count)
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


def collected_store(
    *,
    source: str,
    events: Sequence[EventIn],
    rejected: Sequence[RejectedIn],
    traits_by_visitor: dict[str, dict[str, Any]],
) -> int:
    """Store one hit's valid events, then their visitors' traits (the visitors exist by then),
    and its dead letters, all or nothing. Returns the number of new events."""
    with transaction.atomic():
        accepted = events_store(events=events, source=source).accepted if events else 0
        visitors_merge_traits(traits_by_visitor=traits_by_visitor)
        rejected_events_store(source=source, items=rejected)
    return accepted


# --- Erasure ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ErasureCounts:
    events: int
    visitors: int
    rejected_events: int
    profiles: int


def visitor_erase(*, user_pseudo_id: str, record: bool = True) -> ErasureCounts:
    """Forget a visitor, in one transaction: events, the Visitor row, dead letters naming them,
    and whatever `visitor_erased` receivers hold (personalization: the profile, and its cache
    entries after commit). `record` adds the erasure to the ledger (ops.erasure) in the same
    transaction, so no restore of an older backup brings the visitor back."""
    with transaction.atomic():
        events = Event.objects.filter(user_pseudo_id=user_pseudo_id).delete()[0]
        visitors = Visitor.objects.filter(user_pseudo_id=user_pseudo_id).delete()[0]
        # By the indexed column every dead letter carries (analytics.0007 filled older ones).
        rejected = RejectedEvent.objects.filter(user_pseudo_id=user_pseudo_id).delete()[0]
        removed: collections.Counter[str] = collections.Counter()
        for _receiver, counts in visitor_erased.send(sender=Visitor, user_pseudo_id=user_pseudo_id):
            removed.update(counts or {})
        if record:
            ledger_record(user_pseudo_id=user_pseudo_id)
    logger.info(
        "visitor.erased",
        extra={"events": events, "profiles": removed["profiles"], "rejected_events": rejected},
    )
    return ErasureCounts(
        events=events, visitors=visitors, rejected_events=rejected, profiles=removed["profiles"]
    )


def erasures_reapply(*, ledger: set[str] | None = None) -> int:
    """Erase again every stored visitor (a Visitor row, events or dead letters) whose id hashes
    to a ledger entry, by default the whole ledger (ops.erasure.ledger_hashes); how many there
    were."""
    hashes = ledger_hashes() if ledger is None else ledger
    if not hashes:
        return 0
    ids = set(Visitor.objects.values_list("user_pseudo_id", flat=True))
    ids |= set(Event.objects.values_list("user_pseudo_id", flat=True).distinct())
    ids |= set(
        RejectedEvent.objects.exclude(user_pseudo_id="")
        .values_list("user_pseudo_id", flat=True)
        .distinct()
    )
    erased = 0
    for user_pseudo_id in sorted(ids):
        if visitor_hash(user_pseudo_id) in hashes:
            visitor_erase(user_pseudo_id=user_pseudo_id, record=False)
            erased += 1
    logger.info("visitor.erasures_reapplied", extra={"visitors": erased})
    return erased
