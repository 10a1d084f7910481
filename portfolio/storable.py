"""Text PostgreSQL can store: the one check every channel's outside text goes through.

PostgreSQL's text and jsonb refuse NUL (U+0000): a DataError, a 500 if nothing catches it. A
lone surrogate (U+D800-U+DFFF, which a JSON `\\ud800` escape or a surrogate-escaped query
string can produce) is no UTF-8 at all: psycopg cannot even send it (UnicodeEncodeError), and
SQLite stores it mangled. Both are refused where text comes in, whatever the backend:
- the JSON API answers 422 (or 400) with the contract's shape;
- the GA4 channels answer as GA4 does (204) and keep the hit as a dead letter with a reason,
  its text made storable with `storable_text` / `storable_json`;
- a lookup by outside text (a measurement id, a segment code, a query parameter) is checked
  before the query, since a NUL in a WHERE clause is a DataError on PostgreSQL too.
"""

from __future__ import annotations

import math
import re
from typing import Any

UNSTORABLE_RE = re.compile("[\x00\ud800-\udfff]")
UNSTORABLE_MESSAGE = "Text must not contain NUL or unpaired surrogate characters."
REPLACEMENT = "\ufffd"
# Dead letters keep nesting down to this depth; deeper garbage is cut.
MAX_DEPTH = 32


def is_storable(text: str) -> bool:
    """True when PostgreSQL can store `text` (no NUL, no lone surrogate)."""
    return UNSTORABLE_RE.search(text) is None


def storable_text(text: str) -> str:
    """`text` with NUL and lone surrogates replaced by U+FFFD: for dead letters and contexts,
    which keep what a client sent as near as can be stored."""
    return UNSTORABLE_RE.sub(REPLACEMENT, text)


def storable_json(value: Any, depth: int = 0) -> Any:
    """What a client sent, made storable as JSON in PostgreSQL and SQLite: text through
    `storable_text` (keys too), non-finite numbers as text, nesting cut at MAX_DEPTH."""
    if isinstance(value, str):
        return storable_text(value)
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, (bool, int, float)) or value is None:
        return value
    if depth >= MAX_DEPTH:
        return "(nested too deeply)"
    if isinstance(value, dict):
        return {storable_text(str(k)): storable_json(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [storable_json(v, depth + 1) for v in value]
    return storable_text(repr(value))
