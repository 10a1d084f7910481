"""Reads of the analytics app."""

from __future__ import annotations

import hashlib
import logging
from datetime import datetime
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db.models import Q, QuerySet, TextField
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
