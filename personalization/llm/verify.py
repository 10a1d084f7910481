"""Checks on a reply before it is stored: every number it quotes must be in the statistics, and
suggested rules may only name catalog items."""

from __future__ import annotations

import math
import re
from typing import Any

from personalization.validation import LIST_LIMITS, MAX_REASONING_LENGTH, rule_errors

from .schema import FINDING_KEYS, RULE_LIST_FIELDS, InsightReply

# ISO dates and times are not quantities; drop them before looking for numbers.
_DATES = re.compile(r"\d{4}-\d{2}-\d{2}(?:[T ][\d:.]+(?:Z|[+-]\d{2}:?\d{2})?)?")
# A number standing alone: not part of a word (GA4, v2, ML_ENGINEER) or of a longer number.
_NUMBER = re.compile(
    r"(?<![\w.])[-+]?(?P<num>\d{1,3}(?:,\d{3})+|\d+)(?P<frac>\.\d+)?(?P<pct>\s?%)?(?![\w%])"
    r"(?!\.\d)"
)
SMALL = 10  # small integers ("top 3", "2 segments") not found in the data are not claims
MAX_CHECKED = 200


def known_numbers(aggregate: Any) -> dict[float, str]:
    """Every numeric value of the aggregate (and its absolute value) with where it is."""
    found: dict[float, str] = {}

    def walk(value: Any, path: str) -> None:
        if isinstance(value, bool):
            return
        if isinstance(value, int | float) and math.isfinite(value):
            for variant in (float(value), abs(float(value))):
                found.setdefault(variant, path)
            if path.endswith("_pct"):  # "0.21" for 21.0 percent
                found.setdefault(abs(float(value)) / 100, path)
        elif isinstance(value, dict):
            for key, item in value.items():
                walk(item, f"{path}.{key}" if path else str(key))
        elif isinstance(value, list):
            for index, item in enumerate(value):
                label = _label(item) or index
                walk(item, f"{path}[{label}]")

    walk(aggregate, "")
    return found


def _label(item: Any) -> str | None:
    if not isinstance(item, dict):
        return None
    return item.get("segment") or item.get("name") or item.get("event_name") or item.get("source")


def numbers_verify(reply: InsightReply, aggregate: dict[str, Any]) -> dict[str, Any]:
    known = known_numbers(aggregate)
    texts = [("summary", reply.summary)]
    for index, finding in enumerate(reply.findings):
        texts += [(f"findings.{index}.{key}", getattr(finding, key)) for key in FINDING_KEYS]
    checks: list[dict[str, Any]] = []
    for where, text in texts:
        for match in _NUMBER.finditer(_DATES.sub(" ", text)):
            checks.append(_check(match, where, known))
    mismatched = sum(1 for c in checks if c["outcome"] == "mismatch")
    return {
        "checked": sum(1 for c in checks if c["outcome"] != "ignored"),
        "mismatched": mismatched,
        "numbers": checks[:MAX_CHECKED],
    }


def _check(match: re.Match[str], where: str, known: dict[float, str]) -> dict[str, Any]:
    digits = match.group("num").replace(",", "")
    frac = match.group("frac") or ""
    value = float(digits + frac)
    decimals = len(frac) - 1 if frac else 0
    # Quoted at lower precision than stored is fine: 21% for 21.4, 12.5 for 12.46.
    tolerance = 0.5 * 10**-decimals + 1e-9
    entry: dict[str, Any] = {"text": match.group(0).strip(), "value": value, "where": where}
    hits = [path for number, path in known.items() if abs(number - value) <= tolerance]
    if hits:
        exact = [path for number, path in known.items() if number == value]
        return {**entry, "outcome": "matched", "matched": (exact or hits)[0]}
    if not frac and not match.group("pct") and (value <= SMALL or 1900 <= value <= 2100):
        return {**entry, "outcome": "ignored"}
    return {**entry, "outcome": "mismatch"}


# --- Suggested rules --------------------------------------------------------------------------

_CATALOG_OF = {
    "priority_sections": "sections",
    "featured_projects": "projects",
    "highlight_skills": "skills",
}


def suggestions_filter(
    reply: InsightReply, catalog: dict[str, list[str]]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(rules, dropped): each rule names only catalog items (matched case-insensitively, then
    spelled as the catalog does), trimmed to the admin rule limits; everything removed is
    reported in `dropped`."""
    lookup = {kind: {name.casefold(): name for name in names} for kind, names in catalog.items()}
    rules: list[dict[str, Any]] = []
    dropped: list[dict[str, Any]] = []
    seen_segments: set[str] = set()
    for suggestion in reply.suggested_rules:
        segment = lookup.get("segments", {}).get(suggestion.segment.casefold())
        if segment is None:
            dropped.append(_drop(suggestion.segment, "segment", suggestion.segment, "unknown"))
            continue
        if segment in seen_segments:
            dropped.append(_drop(segment, "segment", segment, "second rule for the segment"))
            continue
        rule: dict[str, Any] = {"segment": segment}
        for field in RULE_LIST_FIELDS:
            names = lookup.get(_CATALOG_OF[field], {})
            kept: list[str] = []
            for item in getattr(suggestion, field):
                canonical = names.get(item.strip().casefold())
                if canonical is None:
                    dropped.append(_drop(segment, field, item, "not in the catalog"))
                elif canonical not in kept:
                    kept.append(canonical)
            limit = LIST_LIMITS[field]
            for item in kept[limit:]:
                dropped.append(_drop(segment, field, item, f"over the limit of {limit}"))
            rule[field] = kept[:limit]
        rule["reasoning"] = suggestion.reasoning[:MAX_REASONING_LENGTH]
        if not any(rule[field] for field in RULE_LIST_FIELDS):
            dropped.append(_drop(segment, "rule", segment, "nothing left after filtering"))
            continue
        errors = rule_errors(rule)
        if errors:  # cannot happen after trimming; the admin's own check has the last word
            dropped.append(_drop(segment, "rule", segment, f"invalid: {errors}"))
            continue
        seen_segments.add(segment)
        rules.append(rule)
    return rules, dropped


def _drop(segment: str, field: str, value: str, reason: str) -> dict[str, str]:
    return {"segment": segment[:40], "field": field, "value": value[:200], "reason": reason}
