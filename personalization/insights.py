"""The statistics an analysis reads: one period's aggregate, bounded in size whatever the event
volume (top-N everywhere) and free of visitor ids and other personal data."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import Count, OuterRef, Subquery, Sum
from django.db.models.fields.json import KeyTextTransform

from analytics.models import Event, GA4DailyAggregate

from .models import Project, Section, Segment, Skill, VisitorProfile
from .selectors import conversion_by_variant

UNSEGMENTED = "UNSEGMENTED"
MAX_SEGMENTS = 20
MAX_CATALOG_ITEMS = 200

# Which events say a visitor engaged with which catalog item (INTEGRATIONS.md's frontend).
ENGAGEMENT = (
    ("projects", ("project_click", "deep_read"), "project_id"),
    ("projects", ("repeat_view",), "item_id"),
    ("skills", ("skill_hover",), "skill_name"),
    ("sections", ("section_view",), "section_name"),
)


def _pct(part: float, whole: float) -> float:
    return round(100.0 * part / whole, 1) if whole else 0.0


def _change_pct(now: float, before: float) -> float | None:
    return round(100.0 * (now - before) / before, 1) if before else None


def _segment_of_visitor() -> Subquery:
    return Subquery(
        VisitorProfile.objects.filter(user_pseudo_id=OuterRef("user_pseudo_id")).values("segment")[
            :1
        ]
    )


def catalog_names() -> dict[str, list[str]]:
    """What a suggested rule may name: segment codes and the catalog, bounded."""
    return {
        "segments": list(Segment.objects.values_list("code", flat=True)[:MAX_SEGMENTS]),
        "sections": list(Section.objects.values_list("slug", flat=True)[:MAX_CATALOG_ITEMS]),
        "projects": list(
            Project.objects.filter(is_active=True).values_list("slug", flat=True)[
                :MAX_CATALOG_ITEMS
            ]
        ),
        "skills": list(Skill.objects.values_list("name", flat=True)[:MAX_CATALOG_ITEMS]),
    }


def insight_input_build(
    *, period_start: datetime, period_end: datetime, top_n: int | None = None
) -> dict[str, Any]:
    top_n = top_n or settings.LLM_INSIGHTS_TOP_N
    length = period_end - period_start
    previous_start = period_start - length
    current = Event.objects.filter(occurred_at__gte=period_start, occurred_at__lt=period_end)
    previous = Event.objects.filter(occurred_at__gte=previous_start, occurred_at__lt=period_start)
    totals = _totals(current, previous)
    return {
        "period": {
            "start": period_start.isoformat(),
            "end": period_end.isoformat(),
            "days": round(length / timedelta(days=1), 2),
        },
        "totals": totals,
        "segments": _segments(current, previous, totals["visitors"]),
        "top_events": [
            {"event_name": row["event_name"], "count": row["n"]}
            for row in current.values("event_name")
            .order_by()
            .annotate(n=Count("id"))
            .order_by("-n", "event_name")[:top_n]
        ],
        "engagement": _engagement(current, top_n),
        "conversion": _conversion(),
        "ga4": _ga4(period_start, period_end, top_n),
    }


def _totals(current: Any, previous: Any) -> dict[str, Any]:
    events, visitors = current.count(), current.values("user_pseudo_id").distinct().count()
    before_events = previous.count()
    before_visitors = previous.values("user_pseudo_id").distinct().count()
    return {
        "events": events,
        "visitors": visitors,
        "previous_events": before_events,
        "previous_visitors": before_visitors,
        "events_change_pct": _change_pct(events, before_events),
        "visitors_change_pct": _change_pct(visitors, before_visitors),
    }


def _visitors_by_segment(events: Any) -> dict[str, int]:
    rows = (
        events.annotate(segment=_segment_of_visitor())
        .values("segment")
        .order_by()
        .annotate(n=Count("user_pseudo_id", distinct=True))
    )
    return {row["segment"] or UNSEGMENTED: row["n"] for row in rows}


def _segments(current: Any, previous: Any, visitors: int) -> list[dict[str, Any]]:
    now, before = _visitors_by_segment(current), _visitors_by_segment(previous)
    codes = list(Segment.objects.values_list("code", flat=True)[:MAX_SEGMENTS])
    if now.get(UNSEGMENTED) or before.get(UNSEGMENTED):
        codes.append(UNSEGMENTED)
    rows = []
    for code in codes:
        n, m = now.get(code, 0), before.get(code, 0)
        rows.append(
            {
                "segment": code,
                "visitors": n,
                "share_pct": _pct(n, visitors),
                "previous_visitors": m,
                "change": n - m,
                "change_pct": _change_pct(n, m),
            }
        )
    return rows


def _engagement(current: Any, top_n: int) -> list[dict[str, Any]]:
    catalog = catalog_names()
    counts: dict[str, dict[str, dict[str, int]]] = defaultdict(
        lambda: {"projects": {}, "skills": {}, "sections": {}}
    )
    for kind, names, param in ENGAGEMENT:
        # Only catalog items are counted, in the database: invented or junk names never
        # reach Python, however many distinct ones visitors send.
        allowed = catalog[kind]
        rows = (
            current.filter(event_name__in=names, **{f"event_params__{param}__in": allowed})
            .annotate(item=KeyTextTransform(param, "event_params"), segment=_segment_of_visitor())
            .values("segment", "item")
            .order_by()
            .annotate(n=Count("id"))
        )
        for row in rows:
            bucket = counts[row["segment"] or UNSEGMENTED][kind]
            bucket[row["item"]] = bucket.get(row["item"], 0) + row["n"]
    result = []
    for segment, kinds in sorted(counts.items()):
        entry: dict[str, Any] = {"segment": segment}
        for kind, items in kinds.items():
            ranked = sorted(items.items(), key=lambda kv: (-kv[1], kv[0]))[:top_n]
            entry[kind] = [{"name": name, "count": n} for name, n in ranked]
        result.append(entry)
    return result[:MAX_SEGMENTS]


def _conversion() -> list[dict[str, Any]]:
    """Per segment, personalized vs holdout (all visitors to date: the arms need volume)."""
    rows = []
    for segment, arms in sorted(conversion_by_variant().items())[:MAX_SEGMENTS]:
        p, h = arms["personalized"], arms["holdout"]
        p_rate, h_rate = round(p["rate"] * 100, 1), round(h["rate"] * 100, 1)
        rows.append(
            {
                "segment": segment,
                "personalized_visitors": int(p["visitors"]),
                "personalized_converted": int(p["converted"]),
                "personalized_rate_pct": p_rate,
                "holdout_visitors": int(h["visitors"]),
                "holdout_converted": int(h["converted"]),
                "holdout_rate_pct": h_rate,
                "lift_pp": round(p_rate - h_rate, 1),
            }
        )
    return rows


def _ga4(period_start: datetime, period_end: datetime, top_n: int) -> dict[str, Any] | None:
    rows = GA4DailyAggregate.objects.filter(
        date__gte=period_start.date(), date__lt=period_end.date()
    )
    if not rows.exists():
        return None
    totals = rows.aggregate(events=Sum("event_count"), days=Count("date", distinct=True))
    # No page paths: they can carry query strings with personal data.
    return {
        "days_with_data": totals["days"],
        "events": int(totals["events"] or 0),
        "top_events": [
            {"event_name": r["event_name"], "count": int(r["n"])}
            for r in rows.values("event_name")
            .order_by()
            .annotate(n=Sum("event_count"))
            .order_by("-n", "event_name")[:top_n]
        ],
        "top_sources": [
            {"source": r["source"][:100], "medium": r["medium"][:100], "count": int(r["n"])}
            for r in rows.values("source", "medium")
            .order_by()
            .annotate(n=Sum("event_count"))
            .order_by("-n", "source", "medium")[:top_n]
        ],
    }
