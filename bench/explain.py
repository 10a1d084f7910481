"""EXPLAIN ANALYZE of the queries that must stay index-bound, on the bench database after the
GA4 import has filled it (a million events): how `make bench` checks the indexes."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.db.models import QuerySet


def queries() -> list[tuple[str, Callable[[], QuerySet[Any]]]]:
    from analytics.models import Event
    from analytics.selectors import events_search

    def one_visitor() -> QuerySet[Any]:
        uid = Event.objects.values_list("user_pseudo_id", flat=True).first()
        return Event.objects.filter(user_pseudo_id=uid).values_list(
            "event_name", "event_params", "occurred_at", "page_referrer"
        )

    def newest() -> Any:
        return Event.objects.order_by("-occurred_at").values_list("occurred_at", flat=True)[0]

    def search() -> QuerySet[Any]:
        return events_search(since=newest() - timedelta(hours=24), event_name="project_click")[:50]

    def retention_batch() -> QuerySet[Any]:
        cutoff = newest() - timedelta(days=5)
        return (
            Event.objects.filter(occurred_at__lt=cutoff)
            .order_by("occurred_at")
            .values_list("pk", flat=True)[:5000]
        )

    def stale() -> QuerySet[Any]:
        from personalization.selectors import stale_visitors

        return stale_visitors(limit=5000)

    return [
        ("a visitor's events (re-segmentation)", one_visitor),
        ("admin events search, 24 h, by name, newest 50", search),
        ("retention: the oldest 5,000 expired events", retention_batch),
        ("stale-profile sweep, 5,000 visitors", stale),
    ]


def run() -> list[tuple[str, str]]:
    """(what, plan) for each query; the plan is PostgreSQL's EXPLAIN ANALYZE text."""
    plans = []
    for name, build in queries():
        plans.append((name, build().explain(analyze=True)))
    return plans
