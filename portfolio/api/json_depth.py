"""How deep a JSON body nests, checked on the raw bytes before any parser or validator walks it.

Python's json parser and every recursive walk after it (validation, jsonb text checks, error
flattening, json.dumps) fail with RecursionError somewhere between a few hundred and a few
thousand levels, depending on the stack already in use; a request could turn that into a 500
with a 150 KB traceback. No real payload nests deeply (events: a dozen levels at most), so
every JSON body the service parses is refused past JSON_MAX_DEPTH containers: 400 for the JSON
APIs, a VALUE_INVALID validation message for the Measurement Protocol (answered 204, as GA4
does).

The scan is iterative and stops at the first container past the limit: strings (and the
brackets, quotes and escapes inside them) are dropped at C speed, then only the brackets left
are counted. About 25 ms for a megabyte made of nothing but brackets; a body of that size with
ordinary content costs a few hundred microseconds.
"""

from __future__ import annotations

import re
from typing import Any

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser
from rest_framework.utils import json as drf_json

_ESCAPE = re.compile(rb"\\.", re.DOTALL)  # \" and \\ inside strings; elsewhere JSON is invalid
_NOT_BRACKET = bytes(b for b in range(256) if b not in b"[]{}")
_OPENERS = frozenset(b"[{")


def json_max_depth() -> int:
    return int(settings.JSON_MAX_DEPTH)


def too_deep_message(limit: int | None = None) -> str:
    return f"JSON nested deeper than {limit or json_max_depth()} levels."


def json_too_deep(body: bytes, *, limit: int | None = None) -> bool:
    """True when `body`, read as JSON, opens more than `limit` containers inside each other.
    Bytes that are not JSON give an answer the parser then overrules with its own error."""
    limit = json_max_depth() if limit is None else limit
    if body.count(b"[") + body.count(b"{") <= limit:
        return False
    # After the escapes are gone every '"' opens or closes a string: keep what lies between.
    outside_strings = b"".join(_ESCAPE.sub(b"", body).split(b'"')[::2])
    depth = 0
    for byte in outside_strings.translate(None, _NOT_BRACKET):
        if byte in _OPENERS:
            depth += 1
            if depth > limit:
                return True
        else:
            depth -= 1
    return False


class DepthLimitedJSONParser(JSONParser):
    """DRF's JSON parser with the depth check first; malformed or too deep bodies are 400."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        parser_context = parser_context or {}
        encoding = parser_context.get("encoding", settings.DEFAULT_CHARSET)
        body = stream.read() if stream is not None else b""
        if json_too_deep(body):
            raise ParseError(f"JSON parse error - {too_deep_message()}")
        try:
            text = body.decode(encoding)
            parse_constant = drf_json.strict_constant if self.strict else None
            return drf_json.loads(text, parse_constant=parse_constant)
        except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
            raise ParseError(f"JSON parse error - {exc}") from exc
