"""Reads behind the admin dashboard. Every query is bounded by time (the occurred_at index)
or by the small segment/profile tables, and aggregates in SQL."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

from django.apps import apps
from django.db.models import Count, OuterRef, Subquery
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import TruncHour
from django.utils import timezone
from prometheus_client import REGISTRY

from analytics.models import Event

from .cache import CACHE_NAME
from .models import VisitorProfile
from .selectors import conversion_by_variant, segment_counts

WINDOW = timedelta(days=7)
TOP_EVENTS = 10
TOP_PER_SEGMENT = 5
PROJECT_EVENTS = ("project_click", "deep_read")
SKILL_EVENTS = ("skill_hover",)
UNSEGMENTED = "(not segmented)"


def dashboard_data(*, now: datetime | None = None) -> dict[str, Any]:
    now = now or timezone.now()
    since = (now - WINDOW).replace(minute=0, second=0, microsecond=0)
    recent = Event.objects.filter(occurred_at__gte=since)
    return {
        "generated_at": now.isoformat(),
        "since": since.isoformat(),
        "segments": segment_counts(),
        "events_per_hour": events_per_hour(since=since, now=now),
        "top_events": list(
            recent.values("event_name")
            .annotate(count=Count("id"))
            .order_by("-count", "event_name")[:TOP_EVENTS]
        ),
        "top_projects": top_by_segment(recent, PROJECT_EVENTS, "project_id"),
        "top_skills": top_by_segment(recent, SKILL_EVENTS, "skill_name"),
        "conversion": conversion_by_variant(),
        "cache": cache_hit_rate(),
        "latest_insight": latest_insight(),
    }


def events_per_hour(*, since: datetime, now: datetime) -> list[dict[str, Any]]:
    """One point per hour of the window, zeros included, counted by date_trunc in SQL."""
    counts = {
        row["hour"]: row["count"]
        for row in Event.objects.filter(occurred_at__gte=since, occurred_at__lte=now)
        .annotate(hour=TruncHour("occurred_at"))
        .values("hour")
        .annotate(count=Count("id"))
        .order_by("hour")
    }
    points = []
    hour = since
    while hour <= now:
        points.append({"hour": hour.isoformat(), "count": counts.get(hour, 0)})
        hour += timedelta(hours=1)
    return points


def top_by_segment(events: Any, names: tuple[str, ...], param: str) -> dict[str, list[dict]]:
    """The most-engaged items per segment of the visitor (from their profile)."""
    segment = VisitorProfile.objects.filter(user_pseudo_id=OuterRef("user_pseudo_id")).values(
        "segment"
    )[:1]
    rows = (
        events.filter(event_name__in=names)
        .annotate(item=KeyTextTransform(param, "event_params"), segment=Subquery(segment))
        .filter(item__isnull=False)
        .values("segment", "item")
        .annotate(count=Count("id"))
        .order_by("-count", "item")[:500]
    )
    top: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        items = top[row["segment"] or UNSEGMENTED]
        if len(items) < TOP_PER_SEGMENT:
            items.append({"item": row["item"], "count": row["count"]})
    return dict(top)


def cache_hit_rate() -> dict[str, Any]:
    labels = {"cache": CACHE_NAME}
    hits = REGISTRY.get_sample_value("cache_hits_total", labels) or 0.0
    misses = REGISTRY.get_sample_value("cache_misses_total", labels) or 0.0
    total = hits + misses
    return {
        "hits": int(hits),
        "misses": int(misses),
        "rate": round(hits / total, 4) if total else None,
        "note": "Counted by this web process since it started; Prometheus (/metrics) sums "
        "every process.",
    }


def latest_insight() -> dict[str, Any] | None:
    """The newest LLM insight, if the insights app (another change) is installed."""
    try:
        model = apps.get_model("personalization", "LLMInsight")
    except LookupError:
        return None
    row = model.objects.order_by("-created_at").first()
    if row is None:
        return None
    created = getattr(row, "created_at", None)
    return {
        "id": row.pk,
        "created_at": created.isoformat() if created else None,
        "provider": str(getattr(row, "provider", "")),
        "model": str(getattr(row, "model", "")),
        "status": str(getattr(row, "status", "")),
        "summary": str(getattr(row, "summary", ""))[:2000],
    }
