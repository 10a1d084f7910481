"""POST data for the segment admin page, shared by the tests that try bad values on it."""

from __future__ import annotations

from typing import Any


def segment_form(*, signal_rows: int = 0, **overrides: Any) -> dict[str, Any]:
    """A new segment (RESEARCHER) with the signals inline's management fields for `signal_rows`
    rows; `overrides` are form fields."""
    return {
        "code": "RESEARCHER",
        "name": "Researcher",
        "description": "",
        "prior": "0",
        "topic_tags": "[]",
        "recommendation": "",
        "position": "9",
        "signals-TOTAL_FORMS": str(signal_rows),
        "signals-INITIAL_FORMS": "0",
        "signals-MIN_NUM_FORMS": "0",
        "signals-MAX_NUM_FORMS": "1000",
        **overrides,
    }


def segment_with_signal(**row: str) -> dict[str, Any]:
    """A new segment with one signal row; `row` overrides that row's fields (label, conditions,
    weight...)."""
    fields = {
        "label": "arxiv",
        "event_name": "*",
        "conditions": "[]",
        "weight": "1",
        "cap": "1",
        "half_life_days": "",
        "is_active": "on",
        **row,
    }
    return segment_form(signal_rows=1, **{f"signals-0-{k}": v for k, v in fields.items()})
