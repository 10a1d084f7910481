"""The prompt: instructions, our schema, the statistics and the catalog. Bump PROMPT_VERSION
with any change here so insights stay comparable."""

from __future__ import annotations

import json
from typing import Any

from .providers import LLMRequest
from .schema import response_schema

PROMPT_VERSION = "insights-v1"

SYSTEM = (
    "You are the analytics assistant of a software developer's portfolio website. Visitors are "
    "classified into audience segments; each segment is shown a rule: which page sections come "
    "first, which projects are featured and which skills are highlighted. You read aggregate "
    "statistics and tell the owner what visitors do, what works and what to change. "
    "Answer with one JSON object only."
)

INSTRUCTIONS = """Analyse the statistics of the period below and answer in JSON.
- summary: a short paragraph for the owner.
- findings: 3 to 6 items, each with what (the observation), why (the likely cause), so_what
  (why it matters) and recommendation (one concrete change).
- suggested_rules: at most one per segment that would benefit, naming ONLY items from the
  catalog (section slugs, project slugs, skill names exactly as listed), most important first.
- Quote numbers exactly as they appear in the statistics (counts, *_pct values are percents,
  lift_pp is percentage points). Do not compute new numbers. Never invent names.
The JSON object must follow this JSON schema:
"""


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def build_request(aggregate: dict[str, Any], catalog: dict[str, list[str]]) -> LLMRequest:
    schema = response_schema(catalog.get("segments", []))
    prompt = (
        f"{INSTRUCTIONS}{_compact(schema)}\n\n"
        f"Statistics (JSON):\n{_compact(aggregate)}\n\n"
        f"Catalog (JSON):\n{_compact(catalog)}\n"
    )
    return LLMRequest(
        system=SYSTEM, prompt=prompt, schema=schema, aggregate=aggregate, catalog=catalog
    )
