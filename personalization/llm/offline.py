"""The offline analyzer: the insight written from the statistics alone, in the same schema as a
model's reply. Every number it quotes is copied from the aggregate, so it always verifies."""

from __future__ import annotations

from typing import Any

from django.conf import settings


def _n(value: float) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def offline_reply(aggregate: dict[str, Any], catalog: dict[str, list[str]]) -> dict[str, Any]:
    totals = aggregate.get("totals", {})
    days = aggregate.get("period", {}).get("days", 0)
    segments = [s for s in aggregate.get("segments", []) if s["visitors"]]
    findings = [
        f
        for f in (
            _traffic(totals, days),
            _largest_segment(segments, totals),
            _moving_segment(segments),
            _top_event(aggregate.get("top_events", [])),
            _conversion(aggregate.get("conversion", [])),
            _ga4(aggregate.get("ga4")),
        )
        if f
    ]
    summary = findings[0]["what"]
    if len(findings) > 1:
        summary += " " + findings[1]["what"]
    return {
        "summary": summary,
        "findings": findings,
        "suggested_rules": _rules(aggregate.get("engagement", []), catalog),
    }


def _finding(what: str, why: str, so_what: str, recommendation: str) -> dict[str, str]:
    return {"what": what, "why": why, "so_what": so_what, "recommendation": recommendation}


def _traffic(totals: dict[str, Any], days: float) -> dict[str, str]:
    what = (
        f"{totals.get('visitors', 0)} visitors produced {totals.get('events', 0)} events "
        f"in the last {_n(days)} days."
    )
    change = totals.get("events_change_pct")
    if change is not None:
        direction = "up" if change >= 0 else "down"
        what += f" Events are {direction} {_n(abs(change))}% on the previous period."
    return _finding(
        what,
        "Counted from the events collected for the period.",
        "Volume says how much the other findings can be trusted.",
        "With few events, wait for more data before changing rules.",
    )


def _largest_segment(segments: list[dict[str, Any]], totals: dict[str, Any]) -> dict | None:
    if not segments:
        return None
    top = max(segments, key=lambda s: (s["visitors"], s["segment"]))
    return _finding(
        f"{top['segment']} is the largest audience: {top['visitors']} of "
        f"{totals.get('visitors', 0)} visitors ({_n(top['share_pct'])}%).",
        "Each active visitor's latest segmentation, counted per segment.",
        "The largest audience gains the most from a well-tuned rule.",
        f"Review the {top['segment']} rule first.",
    )


def _moving_segment(segments: list[dict[str, Any]]) -> dict | None:
    moved = [s for s in segments if s["change"]]
    if not moved:
        return None
    top = max(moved, key=lambda s: (abs(s["change"]), s["segment"]))
    direction = "grew" if top["change"] > 0 else "shrank"
    return _finding(
        f"{top['segment']} {direction} from {top['previous_visitors']} to {top['visitors']} "
        "visitors compared with the previous period.",
        "A change in where visitors come from, or in what they read.",
        "A shifting audience can make the current rules fit less well.",
        f"Check the traffic sources behind the change in {top['segment']}.",
    )


def _top_event(events: list[dict[str, Any]]) -> dict | None:
    if not events:
        return None
    top = events[0]
    return _finding(
        f"The most frequent event was {top['event_name']} ({top['count']} times).",
        "What visitors do most on the site.",
        "The interactions to make easy and to measure well.",
        "Keep the content behind this interaction prominent.",
    )


def _conversion(rows: list[dict[str, Any]]) -> dict | None:
    rows = [r for r in rows if r["personalized_visitors"] and r["holdout_visitors"]]
    if not rows:
        return None
    top = max(rows, key=lambda r: (r["personalized_visitors"], r["segment"]))
    better = top["lift_pp"] >= 0
    return _finding(
        f"For {top['segment']}, {_n(top['personalized_rate_pct'])}% of personalized visitors "
        f"converted against {_n(top['holdout_rate_pct'])}% in the holdout.",
        "Conversion is a contact intent or a résumé download, per arm of the experiment.",
        "The holdout shows what personalization changes for this audience.",
        "Keep the rule." if better else "Revise the rule: the default experience does better.",
    )


def _ga4(ga4: dict[str, Any] | None) -> dict | None:
    if not ga4 or not ga4.get("top_sources"):
        return None
    source = ga4["top_sources"][0]
    return _finding(
        f"GA4 reports {ga4['events']} events; the top source is "
        f"{source['source'] or '(direct)'} / {source['medium'] or '(none)'} "
        f"with {source['count']} events.",
        "Google Analytics' own daily aggregates for the period.",
        "Where visitors come from shapes which segments grow.",
        "Make sure the landing experience fits the main source's audience.",
    )


def _rules(engagement: list[dict[str, Any]], catalog: dict[str, list[str]]) -> list[dict]:
    rules = []
    segments = set(catalog.get("segments", []))
    for entry in engagement:
        if entry["segment"] not in segments:
            continue
        rule = {
            "segment": entry["segment"],
            "priority_sections": [i["name"] for i in entry.get("sections", [])][:10],
            "featured_projects": [i["name"] for i in entry.get("projects", [])][
                : settings.PERSONALIZATION_FEATURED_PROJECTS
            ],
            "highlight_skills": [i["name"] for i in entry.get("skills", [])][
                : settings.PERSONALIZATION_HIGHLIGHT_SKILLS
            ],
            "reasoning": f"Offline analysis: what {entry['segment']} visitors engaged with most.",
        }
        if rule["featured_projects"] or rule["highlight_skills"]:
            rules.append(rule)
    return rules[:10]
