"""The reply every provider must give, as the JSON Schema we send and the check we apply.

Structured output narrows what a model writes but guarantees nothing (OpenAI-compatible
`json_object` only promises JSON, and servers differ), so every reply is validated here.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from portfolio.api.json_depth import json_max_depth, json_too_deep

FINDING_KEYS = ("what", "why", "so_what", "recommendation")
RULE_LIST_FIELDS = ("priority_sections", "featured_projects", "highlight_skills")
MAX_FINDINGS = 10
MAX_SUGGESTED_RULES = 10
# Lenient on list sizes: the rule limits are applied when a draft is made, so a long but
# otherwise good suggestion is trimmed rather than thrown away.
MAX_LIST_ITEMS = 100

Text = Annotated[str, Field(min_length=1, max_length=2000)]
Item = Annotated[str, Field(max_length=200)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True, strict=True)


class Finding(_Strict):
    what: Text
    why: Text
    so_what: Text
    recommendation: Text


class SuggestedRule(_Strict):
    segment: Annotated[str, Field(min_length=1, max_length=40)]
    priority_sections: list[Item] = Field(default_factory=list, max_length=MAX_LIST_ITEMS)
    featured_projects: list[Item] = Field(default_factory=list, max_length=MAX_LIST_ITEMS)
    highlight_skills: list[Item] = Field(default_factory=list, max_length=MAX_LIST_ITEMS)
    reasoning: Annotated[str, Field(max_length=2000)] = ""


class InsightReply(_Strict):
    summary: Annotated[str, Field(min_length=1, max_length=4000)]
    findings: list[Finding] = Field(min_length=1, max_length=MAX_FINDINGS)
    suggested_rules: list[SuggestedRule] = Field(
        default_factory=list, max_length=MAX_SUGGESTED_RULES
    )


class InvalidReply(ValueError):
    """The reply is not JSON or not our schema; the message is fed back to the model."""


def reply_json(text: str) -> Any:
    """The reply's JSON. A reply nested past JSON_MAX_DEPTH is refused before json.loads, whose
    recursion would otherwise fail the task with RecursionError instead of trying again."""
    if json_too_deep(text.encode("utf-8", "surrogatepass")):
        raise InvalidReply(
            f"The reply nests deeper than {json_max_depth()} levels; answer with flat JSON."
        )
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidReply(f"The reply is not valid JSON ({exc.msg} at char {exc.pos}).") from exc
    except RecursionError as exc:  # belt and braces: the depth check above should stop it
        raise InvalidReply("The reply nests too deeply; answer flat JSON.") from exc


def reply_parse(text: str | None) -> InsightReply:
    if not text or not text.strip():
        raise InvalidReply("The reply was empty; answer with one JSON object.")
    body = text.strip()
    # Some OpenAI-compatible servers wrap JSON mode output in a Markdown fence.
    if body.startswith("```") and body.endswith("```"):
        body = body.strip("`").removeprefix("json").strip()
    data = reply_json(body)
    if not isinstance(data, dict):
        raise InvalidReply("The reply must be one JSON object, not a list or a scalar.")
    try:
        return InsightReply.model_validate(data)
    except ValidationError as exc:
        problems = [
            f"{'.'.join(str(p) for p in err['loc']) or '(root)'}: {err['msg']}"
            for err in exc.errors()[:10]
        ]
        raise InvalidReply("The reply does not match the schema: " + "; ".join(problems)) from exc


def response_schema(segments: list[str]) -> dict[str, Any]:
    """The schema in the OpenAPI subset Gemini's responseSchema takes (and shown to the others)."""
    string = {"type": "string"}
    strings = {"type": "array", "items": string}
    finding = {
        "type": "object",
        "properties": dict.fromkeys(FINDING_KEYS, string),
        "required": list(FINDING_KEYS),
        "propertyOrdering": list(FINDING_KEYS),
    }
    rule_keys = ["segment", *RULE_LIST_FIELDS, "reasoning"]
    rule = {
        "type": "object",
        "properties": {
            "segment": {"type": "string", "enum": segments} if segments else string,
            "priority_sections": strings,
            "featured_projects": strings,
            "highlight_skills": strings,
            "reasoning": string,
        },
        "required": rule_keys,
        "propertyOrdering": rule_keys,
    }
    return {
        "type": "object",
        "properties": {
            "summary": string,
            "findings": {"type": "array", "items": finding, "maxItems": MAX_FINDINGS},
            "suggested_rules": {"type": "array", "items": rule, "maxItems": MAX_SUGGESTED_RULES},
        },
        "required": ["summary", "findings", "suggested_rules"],
        "propertyOrdering": ["summary", "findings", "suggested_rules"],
    }
