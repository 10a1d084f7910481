"""Reads of the analytics app."""

from __future__ import annotations

from datetime import datetime

from django.db.models import Q, QuerySet, TextField
from django.db.models.functions import Cast

from .models import Event

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
