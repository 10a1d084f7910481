"""HTML fragments for admin change pages. Everything a visitor or an editor typed goes through
format_html/format_html_join, so it is escaped."""

from __future__ import annotations

import json
from typing import Any

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from analytics.models import Event

TIMELINE_LIMIT = 50
NARRATIVE = (
    ("what", "What"),
    ("why", "Why"),
    ("so_what", "So what"),
    ("recommendation", "Recommendation"),
)
DIFF_FIELDS = (
    "status",
    "version",
    "source",
    "priority_sections",
    "featured_projects",
    "highlight_skills",
    "reasoning",
)


def _text(value: Any) -> str:
    if isinstance(value, (list, dict)):
        return json.dumps(value, ensure_ascii=False)
    return "" if value is None else str(value)


def _table(head: tuple[str, ...], rows: list[tuple[Any, ...]]) -> SafeString:
    if not rows:
        return format_html("<p>{}</p>", "None.")
    header = format_html_join("", "<th>{}</th>", ((h,) for h in head))
    cells = format_html_join(
        "",
        "<tr>{}</tr>",
        ((format_html_join("", "<td>{}</td>", ((_text(c),) for c in row)),) for row in rows),
    )
    return format_html("<table><thead><tr>{}</tr></thead><tbody>{}</tbody></table>", header, cells)


def scores_html(scores: dict[str, Any] | None) -> SafeString:
    rows = sorted((scores or {}).items(), key=lambda item: -float(item[1] or 0))
    return _table(("segment", "score"), [(code, f"{float(v):.1%}") for code, v in rows])


def explanation_html(explanation: dict[str, Any] | None) -> SafeString:
    """The stored explanation as the owner reads it: the narrative, then each signal's share."""
    explanation = explanation or {}
    narrative = format_html_join(
        "",
        "<p><strong>{}:</strong> {}</p>",
        ((label, explanation[key]) for key, label in NARRATIVE if explanation.get(key)),
    )
    contributions = [
        (
            c.get("signal", ""),
            c.get("segment", ""),
            c.get("weight", ""),
            c.get("count", ""),
            c.get("contribution", ""),
        )
        for c in explanation.get("contributions") or []
        if isinstance(c, dict)
    ]
    table = _table(("signal", "segment", "weight", "count", "contribution"), contributions)
    priors = explanation.get("priors") or {}
    prior_line = (
        format_html("<p>Priors: {}</p>", ", ".join(f"{k} {v}" for k, v in priors.items()))
        if isinstance(priors, dict) and priors
        else ""
    )
    return format_html("{}{}{}", narrative, table, prior_line)


def timeline_html(user_pseudo_id: str) -> SafeString:
    """The visitor's latest events, newest first (event_user_time_idx serves it)."""
    rows = list(
        Event.objects.filter(user_pseudo_id=user_pseudo_id)
        .order_by("-occurred_at", "-id")
        .values_list("occurred_at", "event_name", "source", "event_params")[:TIMELINE_LIMIT]
    )
    table = _table(
        ("when (UTC)", "event", "source", "params"),
        [(f"{when:%Y-%m-%d %H:%M:%S}", name, src, params) for when, name, src, params in rows],
    )
    note = (
        format_html("<p>Latest {} shown.</p>", TIMELINE_LIMIT)
        if len(rows) == TIMELINE_LIMIT
        else ""
    )
    return format_html("{}{}", table, note)


def snapshot_diff(before: dict[str, Any] | None, after: dict[str, Any] | None) -> list[tuple]:
    """[(field, before, after)] for the rule fields that differ."""
    before, after = before or {}, after or {}
    return [
        (name, before.get(name), after.get(name))
        for name in DIFF_FIELDS
        if before.get(name) != after.get(name)
    ]


def diff_html(before: dict[str, Any] | None, after: dict[str, Any] | None) -> SafeString:
    rows = snapshot_diff(before, after)
    if not rows:
        return format_html("<p>{}</p>", "No differences.")
    return _table(("field", "before", "after"), rows)


def history_html(changes: list[Any]) -> SafeString:
    if not changes:
        return format_html("<p>{}</p>", "No recorded changes.")
    rows = format_html_join(
        "",
        "<tr><td>{}</td><td>{}</td><td>{}</td><td>v{}</td><td>{}</td></tr>",
        (
            (
                f"{c.created_at:%Y-%m-%d %H:%M:%S}",
                c.actor or "?",
                c.get_action_display(),
                c.version,
                diff_html(c.before, c.after),
            )
            for c in changes
        ),
    )
    return format_html(
        "<table><thead><tr><th>when (UTC)</th><th>who</th><th>what</th><th>version</th>"
        "<th>changes</th></tr></thead><tbody>{}</tbody></table>",
        rows,
    )


def json_html(value: Any) -> SafeString:
    return format_html("<pre>{}</pre>", json.dumps(value, indent=2, ensure_ascii=False))
