"""The schema of a signal's conditions, and the regex engine they run on.

Conditions are typed by admins as JSON, so anything can arrive. One function,
`conditions_problems`, says what is wrong with a value: the admin forms refuse it with those
messages, and the scoring model switches off a signal whose stored conditions have any (a row
written before this check, by raw SQL or by a data migration), instead of failing a decision.

Regexes run on RE2 (google-re2): matching time is linear in the input whatever the pattern, so
no admin pattern can backtrack a worker to its time limit. RE2 has no backreferences and no
lookaround; patterns using them are refused with a message saying so. Pure: no Django or
database here (text storability comes from portfolio/storable.py, the one check for it).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import re2

from portfolio.storable import (
    is_storable,  # PostgreSQL's jsonb refuses the rest; RE2 cannot encode it
)

# op -> what its value must be, as the messages (and docs/SEGMENTATION.md) say it.
OPS: dict[str, str] = {
    "exists": "no value",
    "equals": "a string, a number or true/false",
    "in": "a non-empty list of strings, numbers or true/false",
    "contains": "a non-empty string",
    "regex": "an RE2 regular expression (a non-empty string)",
    "tag": "a non-empty list of strings (catalog tags)",
    "gte": "a number",
    "lte": "a number",
}
KEYS = ("param", "op", "value")
MAX_CONDITIONS = 20
MAX_ITEMS = 100
MAX_PARAM_LENGTH = 100
MAX_TEXT_LENGTH = 500  # a value, a list item
MAX_PATTERN_LENGTH = 1000
EXAMPLE = '[{"param": "referrer_host", "op": "regex", "value": "(^|\\\\.)edu$"}]'

_OPTIONS = re2.Options()
_OPTIONS.case_sensitive = False  # conditions have always matched case-insensitively
_OPTIONS.log_errors = False  # a refused pattern is a message for the admin, not stderr noise

# RE2's own error, and what Python's `re` accepts there that RE2 does not.
_PYTHON_ONLY = (
    ("invalid perl operator: (?=", "lookahead (?=...) is not supported by RE2"),
    ("invalid perl operator: (?!", "lookahead (?!...) is not supported by RE2"),
    ("invalid perl operator: (?<=", "lookbehind (?<=...) is not supported by RE2"),
    ("invalid perl operator: (?<!", "lookbehind (?<!...) is not supported by RE2"),
    ("invalid perl operator: (?P", "the backreference (?P=name) is not supported by RE2"),
    ("invalid perl operator: (?>", "atomic groups (?>...) are not supported by RE2"),
    ("invalid perl operator: (?(", "conditional groups (?(...)...) are not supported by RE2"),
    ("bad repetition operator: ++", "possessive quantifiers (++, *+, ?+) are not supported"),
    ("bad repetition operator: *+", "possessive quantifiers (++, *+, ?+) are not supported"),
    ("bad repetition operator: ?+", "possessive quantifiers (++, *+, ?+) are not supported"),
    ("invalid escape sequence: \\Z", "\\Z is Python-only: use \\z (or $) for the end of text"),
)
_BACKREFERENCE = "invalid escape sequence: \\"


def regex_compile(pattern: str) -> Any:
    """An RE2 pattern, case-insensitive; raises re2.error (or ValueError) if RE2 refuses it."""
    return re2.compile(pattern, _OPTIONS)


def regex_problem(pattern: str) -> str | None:
    """Why RE2 refuses the pattern, in words an admin can act on; None if it compiles."""
    try:
        regex_compile(pattern)
    except Exception as exc:  # re2.error, and whatever else the binding raises on odd input
        detail = _re2_message(exc)
        for marker, why in _PYTHON_ONLY:
            if detail.startswith(marker):
                return f"{why} (RE2 runs in linear time: no backtracking constructs)"
        if detail.startswith(_BACKREFERENCE) and detail[len(_BACKREFERENCE) :][:1].isdigit():
            return "backreferences (\\1 ...) are not supported by RE2"
        return f"not a valid RE2 regular expression: {detail}"
    return None


def _re2_message(exc: Exception) -> str:
    arg = exc.args[0] if exc.args else exc
    text = arg.decode("utf-8", "replace") if isinstance(arg, bytes) else str(arg)
    return text or type(exc).__name__


def conditions_problems(conditions: Any) -> list[str]:
    """Every way `conditions` breaks the schema, one message each; empty when it is valid.
    Never raises, whatever JSON (or Python value) it is given."""
    if not isinstance(conditions, (list, tuple)):
        return [f"Must be a JSON list of conditions, e.g. {EXAMPLE}; got {_kind(conditions)}."]
    if len(conditions) > MAX_CONDITIONS:
        return [f"At most {MAX_CONDITIONS} conditions; got {len(conditions)}."]
    problems = []
    for number, condition in enumerate(conditions, start=1):
        problem = _condition_problem(condition)
        if problem:
            problems.append(f"Condition {number}: {problem}")
    return problems


def _condition_problem(condition: Any) -> str | None:
    if not isinstance(condition, dict):
        return (
            'must be an object like {"param": "...", "op": "...", "value": ...}; '
            f"got {_kind(condition)}."
        )
    unknown = [key for key in condition if key not in KEYS]
    if unknown:
        shown = ", ".join(_short(key) for key in unknown[:3])
        plural = "s" if len(unknown) > 1 else ""
        return f"unknown key{plural} {shown}; a condition has param, op and value."
    param = condition.get("param")
    if not isinstance(param, str) or not param.strip():
        return "param must be a non-empty string (an event param, or referrer_host, ...)."
    if len(param) > MAX_PARAM_LENGTH or not is_storable(param):
        return f"param must be at most {MAX_PARAM_LENGTH} characters, without NUL characters."
    op = condition.get("op", "exists")
    if not isinstance(op, str) or op not in OPS:
        return f"unknown op {_short(op)}; use one of: {', '.join(sorted(OPS))}."
    return _value_problem(op, condition.get("value"), has_value="value" in condition)


def _value_problem(op: str, value: Any, *, has_value: bool) -> str | None:
    wants = f"{op} takes {OPS[op]}"
    if op == "exists":
        return None if value is None else f"{wants}; remove the value."
    if not has_value:
        return f"{wants}; the value is missing."
    if op in ("gte", "lte"):
        return None if _finite_number(value) else f"{wants}; got {_kind(value)}."
    if op in ("in", "tag"):
        return _list_problem(op, value)
    if op == "equals":
        if isinstance(value, bool) or _finite_number(value, text=False):
            return None
        if not isinstance(value, str):
            return f"{wants}; got {_kind(value)}."
    elif not isinstance(value, str) or not value:
        return f"{wants}; got {_kind(value)}."
    limit = MAX_PATTERN_LENGTH if op == "regex" else MAX_TEXT_LENGTH
    if len(value) > limit or not is_storable(value):
        return f"the value must be at most {limit} characters, without NUL characters."
    if op == "regex":
        problem = regex_problem(value)
        if problem:
            return f"{problem}."
    return None


def _list_problem(op: str, value: Any) -> str | None:
    wants = f"{op} takes {OPS[op]}"
    if not isinstance(value, (list, tuple)) or not value:
        return f"{wants}; got {_kind(value)}."
    if len(value) > MAX_ITEMS:
        return f"{wants}, at most {MAX_ITEMS} of them; got {len(value)}."
    scalar: Callable[[Any], bool] = (
        (lambda item: isinstance(item, str))
        if op == "tag"
        else (lambda item: isinstance(item, str) or _finite_number(item, text=False))
    )
    for item in value:
        if not scalar(item):
            return f"{wants}; one item is {_kind(item)}."
        if isinstance(item, str) and (len(item) > MAX_TEXT_LENGTH or not is_storable(item)):
            return f"items must be at most {MAX_TEXT_LENGTH} characters, without NUL characters."
    return None


def _finite_number(value: Any, *, text: bool = True) -> bool:
    """A JSON number (or, for gte/lte as before, text that reads as one), finite."""
    if isinstance(value, bool):
        return not text  # true/false may be listed in "in", never compared
    if isinstance(value, (int, float)) or (text and isinstance(value, str) and len(value) <= 100):
        try:
            return math.isfinite(float(value))
        except (ValueError, OverflowError):  # "lots"; an integer past the float range
            return False
    return False


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return f"the text {_short(value)}"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
