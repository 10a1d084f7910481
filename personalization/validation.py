"""The seed's ValidatedRuleOverride limits, shared by the admin form and the admin API."""

from __future__ import annotations

from typing import Any

LIST_LIMITS = {"priority_sections": 10, "featured_projects": 20, "highlight_skills": 50}
MAX_ITEM_LENGTH = 100
MAX_REASONING_LENGTH = 1000


def rule_errors(data: dict[str, Any]) -> dict[str, list[str]]:
    """{field: [messages]} for every limit `data` breaks; empty when it is valid."""
    errors: dict[str, list[str]] = {}
    for name, limit in LIST_LIMITS.items():
        value = data.get(name, [])
        if not isinstance(value, list):
            errors[name] = ["Must be a list of strings."]
            continue
        problems = []
        if len(value) > limit:
            problems.append(f"At most {limit} items; got {len(value)}.")
        if any(not isinstance(item, str) or not item.strip() for item in value):
            problems.append("Every item must be a non-empty string.")
        elif any(len(item) > MAX_ITEM_LENGTH for item in value):
            problems.append(f"Every item must be at most {MAX_ITEM_LENGTH} characters.")
        if len(set(value)) != len(value) and not problems:
            problems.append("Items must not repeat.")
        if problems:
            errors[name] = problems
    reasoning = data.get("reasoning", "")
    if not isinstance(reasoning, str):
        errors["reasoning"] = ["Must be a string."]
    elif len(reasoning) > MAX_REASONING_LENGTH:
        errors["reasoning"] = [f"At most {MAX_REASONING_LENGTH} characters; got {len(reasoning)}."]
    return errors
