"""Second opinions on ambiguous visitors: the LLM reads what a low-confidence visitor did (no
id, only event counts and catalog items) and names the segment it would pick. The answer is
recorded beside the deterministic one; it never replaces it."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .providers import LLMRequest
from .schema import InvalidReply, reply_json

PROMPT_VERSION = "second-opinion-v1"

SYSTEM = (
    "You classify visitors of a software developer's portfolio website into audience segments "
    "from what they did on the site. Answer with one JSON object only."
)


class Opinion(BaseModel):
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True, strict=True)

    ref: Annotated[str, Field(min_length=1, max_length=20)]
    segment: Annotated[str, Field(min_length=1, max_length=40)]
    confidence: Annotated[float, Field(ge=0, le=1)]
    reason: Annotated[str, Field(min_length=1, max_length=500)]


class Opinions(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)

    opinions: list[Opinion] = Field(max_length=100)


def opinions_parse(text: str | None) -> Opinions:
    data = reply_json(text or "")
    try:
        return Opinions.model_validate(data, strict=False)
    except ValidationError as exc:
        problems = [
            f"{'.'.join(str(p) for p in err['loc']) or '(root)'}: {err['msg']}"
            for err in exc.errors()[:10]
        ]
        raise InvalidReply("The reply does not match the schema: " + "; ".join(problems)) from exc


def opinion_request(
    visitors: Sequence[Mapping[str, Any]], segments: Sequence[Mapping[str, Any]]
) -> LLMRequest:
    codes = [s["code"] for s in segments]
    schema = {
        "type": "object",
        "properties": {
            "opinions": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "ref": {"type": "string"},
                        "segment": {"type": "string", "enum": codes},
                        "confidence": {"type": "number"},
                        "reason": {"type": "string"},
                    },
                    "required": ["ref", "segment", "confidence", "reason"],
                },
            }
        },
        "required": ["opinions"],
    }
    prompt = (
        "For each visitor below, name the segment that fits best, your confidence (0 to 1) and "
        "a one-sentence reason. Use only these segment codes. Answer in JSON following this "
        f"schema: {json.dumps(schema)}\n\n"
        f"Segments (JSON):\n{json.dumps([dict(s) for s in segments])}\n\n"
        f"Visitors (JSON):\n{json.dumps([dict(v) for v in visitors])}\n"
    )
    return LLMRequest(system=SYSTEM, prompt=prompt, schema=schema)
