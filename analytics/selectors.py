"""Reads of the analytics app."""

from __future__ import annotations

import hashlib
import json
import logging
from datetime import datetime
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.db.models import Q, QuerySet, TextField
from django.db.models.expressions import RawSQL
from django.db.models.functions import Cast

from .models import Event

logger = logging.getLogger(__name__)

# API ordering name -> columns; the id breaks ties so pages never overlap.
EVENT_ORDERINGS = {
    "event_timestamp": ("occurred_at", "id"),
    "-event_timestamp": ("-occurred_at", "-id"),
    "received_at": ("received_at", "id"),
    "-received_at": ("-received_at", "-id"),
    "event_name": ("event_name", "-occurred_at", "-id"),
    "-event_name": ("-event_name", "-occurred_at", "-id"),
    "user_pseudo_id": ("user_pseudo_id", "-occurred_at", "-id"),
    "-user_pseudo_id": ("-user_pseudo_id", "-occurred_at", "-id"),
}


def events_search(
    *,
    since: datetime,
    event_name: str | None = None,
    user_pseudo_id: str | None = None,
    q: str | None = None,
    ordering: str = "-event_timestamp",
) -> QuerySet[Event]:
    """Events since `since` (the occurred_at index bounds the scan), filtered; `q` matches the
    event name or the params' JSON text, case-insensitively."""
    events = Event.objects.filter(occurred_at__gte=since)
    if event_name:
        events = events.filter(event_name=event_name)
    if user_pseudo_id:
        events = events.filter(user_pseudo_id=user_pseudo_id)
    if q:
        events = events.annotate(params_text=Cast("event_params", TextField())).filter(
            Q(event_name__icontains=q) | Q(params_text__icontains=q)
        )
    return events.order_by(*EVENT_ORDERINGS[ordering])


def events_search_count(events: QuerySet[Event], *, filters: dict[str, Any]) -> int:
    """The number of events a search matches, kept ADMIN_EVENTS_COUNT_CACHE_SECONDS per set of
    filters: counting a busy window scans every row in it, on every page an admin turns."""
    seconds = settings.ADMIN_EVENTS_COUNT_CACHE_SECONDS
    if seconds <= 0:
        return events.count()
    digest = hashlib.sha256(repr(sorted(filters.items())).encode()).hexdigest()[:32]
    key = f"events:search:count:{digest}"
    try:
        count = cache.get(key)
    except Exception as exc:  # the cache is down: count every time
        logger.warning("events.search.count_cache_failed", extra={"error": type(exc).__name__})
        return events.count()
    if count is None:
        count = events.count()
        try:
            cache.set(key, count, timeout=seconds)
        except Exception as exc:
            logger.warning("events.search.count_cache_failed", extra={"error": type(exc).__name__})
    return int(count)


# One event as the admin API shows it (see analytics/admin_apis.py), written by PostgreSQL.
# Times as Python's isoformat() with Z: microseconds only when there are some.
_ISO = (
    "to_char({0} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS')"
    " || CASE WHEN extract(microseconds FROM {0})::bigint %% 1000000 = 0 THEN ''"
    " ELSE to_char({0} AT TIME ZONE 'UTC', '.US') END || 'Z'"
)
_EVENT_JSON_SQL = (
    "json_build_object("
    "'id', analytics_event.id, "
    "'event_name', analytics_event.event_name, "
    "'user_pseudo_id', analytics_event.user_pseudo_id, "
    "'event_params', analytics_event.event_params, "
    "'event_timestamp', (extract(epoch FROM analytics_event.occurred_at) * 1000000)::bigint, "
    f"'occurred_at', {_ISO.format('analytics_event.occurred_at')}, "
    f"'received_at', {_ISO.format('analytics_event.received_at')}, "
    "'source', analytics_event.source, "
    "'session_id', analytics_event.session_id, "
    "'page_location', analytics_event.page_location, "
    "'page_referrer', analytics_event.page_referrer"
    ")::text"
)
_EVENT_FIELDS = [
    "id",
    "event_name",
    "user_pseudo_id",
    "event_params",
    "occurred_at",
    "received_at",
    "source",
    "session_id",
    "page_location",
    "page_referrer",
]


def events_page_json(page: QuerySet[Event]) -> bytes:
    """A (sliced) search's events as a JSON array. On PostgreSQL each row arrives as JSON text
    and is only joined here: decoding rows into Python objects and encoding them again cost
    more than the rest of the request."""
    if connection.vendor == "postgresql":
        as_json = RawSQL(_EVENT_JSON_SQL, ())  # noqa: S611  # nosec B611: constant SQL, no input
        rows = page.annotate(row_json=as_json).values_list("row_json", flat=True)
        return b"[" + ",".join(rows).encode() + b"]"
    # The stdlib, not orjson: params may hold integers beyond 64 bits.
    out = [_event_out(row) for row in page.values(*_EVENT_FIELDS)]
    return json.dumps(out, ensure_ascii=False, separators=(",", ":")).encode()


def _event_out(row: dict[str, Any]) -> dict[str, Any]:
    occurred = row["occurred_at"]
    return {
        **row,
        "event_timestamp": int(occurred.timestamp()) * 1_000_000 + occurred.microsecond,
        "occurred_at": _iso(occurred),
        "received_at": _iso(row["received_at"]),
    }


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")
