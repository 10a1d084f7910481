"""Validation of the JSON events API (the seed's ValidatedEvent), exactly as API.md states it.

Hand-written rather than a DRF serializer: it runs on up to 500 events per request on the
ingestion path, and it must name every bad field of every event (`events.3.event_name`).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from portfolio.api.json_depth import json_too_deep, too_deep_message
from portfolio.storable import UNSTORABLE_MESSAGE, is_storable

from .services import EventIn, timestamp_to_datetime

EVENT_NAME_RE = re.compile(r"[A-Za-z0-9_]{1,100}")
USER_PSEUDO_ID_RE = re.compile(r"[A-Za-z0-9._-]{1,200}")
MAX_PARAMS_BYTES = 10_000
MAX_EVENT_ID_LENGTH = 200
# Earlier than this is a client bug (a zero or a relative time), not a real visit.
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)

EVENT_NAME_MESSAGE = "Must be 1-100 characters: letters, digits and underscores only."
USER_ID_MESSAGE = "Must be 1-200 characters: letters, digits, '-', '_' and '.' only."
REQUIRED = "This field is required."
EVENT_FIELDS = ("event_name", "user_pseudo_id", "event_params", "event_timestamp", "event_id")
MIXED_MESSAGE = 'Not allowed beside "events": send one event, or {"events": [...]}, not both.'

Errors = dict[str, list[str]]


class MalformedJSON(ValueError):
    """The body is not JSON at all (400), as opposed to JSON that fails validation (422)."""


def reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        # 1e400 parses to inf, which neither JSON nor PostgreSQL can store.
        raise ValueError(f"number out of range: {text}")
    return value


# A JSON escape of NUL or of a surrogate: the only ways text PostgreSQL refuses gets in.
SUSPECT_ESCAPE = re.compile(r"\\u(?:0000|[dD][89a-fA-F])")
SUSPECT_ESCAPE_BYTES = re.compile(rb"\\u(?:0000|[dD][89a-fA-F])")
TEXT_MESSAGE = UNSTORABLE_MESSAGE


def has_unstorable_text(value: Any) -> bool:
    """NUL characters or unpaired surrogates anywhere in keys or values (jsonb refuses both).
    Iterative: a value nested however deep is answered, never a RecursionError."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if not is_storable(item):
                return True
        elif isinstance(item, dict):
            for key, child in item.items():
                if isinstance(key, str) and not is_storable(key):
                    return True
                pending.append(child)
        elif isinstance(item, list):
            pending.extend(item)
    return False


_DECODER = json.JSONDecoder(parse_float=finite_float, parse_constant=reject_constant)


def parse_json(body: bytes) -> Any:
    if json_too_deep(body):
        raise MalformedJSON(too_deep_message())
    try:
        return _DECODER.decode(body.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise MalformedJSON("Body is not UTF-8.") from exc
    except (ValueError, RecursionError) as exc:
        raise MalformedJSON(f"Malformed JSON: {exc}") from exc


@dataclass
class BatchValidation:
    events: list[EventIn] = field(default_factory=list)
    errors: Errors = field(default_factory=dict)
    is_batch: bool = False


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _timestamp(value: Any, *, now: datetime, max_future: timedelta) -> tuple[datetime | None, str]:
    if not _is_number(value) or (isinstance(value, float) and not math.isfinite(value)):
        return None, "Must be a Unix timestamp in seconds, milliseconds or microseconds."
    if value <= 0:
        return None, "Must be a positive Unix timestamp."
    try:
        moment = timestamp_to_datetime(value)
    except (OverflowError, OSError, ValueError):
        return None, "Timestamp is out of range."
    if moment < EARLIEST:
        return None, "Timestamp is before 2000-01-01."
    if moment > now + max_future:
        hours = int(max_future.total_seconds() // 3600)
        return None, f"Timestamp is more than {hours} hours in the future."
    return moment, ""


def validate_event(
    data: Any, *, now: datetime, max_future: timedelta
) -> tuple[EventIn | None, Errors]:
    """One event → (EventIn, {}) or (None, {field: [messages]})."""
    if not isinstance(data, dict):
        return None, {"non_field_errors": ["Each event must be a JSON object."]}
    errors: Errors = {}

    name = data.get("event_name")
    if name is None:
        errors["event_name"] = [REQUIRED]
    elif not isinstance(name, str) or not EVENT_NAME_RE.fullmatch(name):
        errors["event_name"] = [EVENT_NAME_MESSAGE]

    user = data.get("user_pseudo_id")
    if user is None:
        errors["user_pseudo_id"] = [REQUIRED]
    elif not isinstance(user, str) or not USER_PSEUDO_ID_RE.fullmatch(user):
        errors["user_pseudo_id"] = [USER_ID_MESSAGE]

    params = data.get("event_params")
    if params is None:
        params = {}
    elif not isinstance(params, dict):
        errors["event_params"] = ["Must be a JSON object."]
    elif has_unstorable_text(params):
        errors["event_params"] = [TEXT_MESSAGE]
    else:
        size = len(json.dumps(params, separators=(",", ":"), ensure_ascii=False).encode())
        if size > MAX_PARAMS_BYTES:
            errors["event_params"] = [
                f"Must be at most {MAX_PARAMS_BYTES} bytes serialized; got {size}."
            ]

    occurred_at: datetime | None = now
    if data.get("event_timestamp") is not None:
        occurred_at, message = _timestamp(data["event_timestamp"], now=now, max_future=max_future)
        if message:
            errors["event_timestamp"] = [message]

    event_id = data.get("event_id")
    if event_id is not None and (
        not isinstance(event_id, str)
        or not 1 <= len(event_id) <= MAX_EVENT_ID_LENGTH
        or has_unstorable_text(event_id)
    ):
        errors["event_id"] = [f"Must be a string of 1-{MAX_EVENT_ID_LENGTH} characters."]

    if errors or occurred_at is None:
        return None, errors
    return EventIn(
        event_name=str(name),
        user_pseudo_id=str(user),
        occurred_at=occurred_at,
        event_params=params,
        event_id=event_id,
    ), {}


def validate_payload(
    data: Any, *, max_batch: int, max_future: timedelta, now: datetime | None = None
) -> BatchValidation:
    """One event, or {"events": [...]} with 1..max_batch of them. All or nothing: any error
    rejects the whole request, so a client never has to work out which half was stored."""
    now = now or datetime.now(tz=UTC)
    result = BatchValidation()
    if isinstance(data, dict) and "events" in data:
        result.is_batch = True
        # One event or a batch, never both (the schema's oneOf): which one was meant is a guess.
        mixed = [name for name in EVENT_FIELDS if name in data]
        if mixed:
            result.errors = {name: [MIXED_MESSAGE] for name in mixed}
            return result
        items = data["events"]
        if not isinstance(items, list) or not 1 <= len(items) <= max_batch:
            result.errors["events"] = [f"Must be a list of 1 to {max_batch} events."]
            return result
        for index, item in enumerate(items):
            event, errors = validate_event(item, now=now, max_future=max_future)
            for name, messages in errors.items():
                result.errors[f"events.{index}.{name}"] = messages
            if event:
                result.events.append(event)
        return result
    event, errors = validate_event(data, now=now, max_future=max_future)
    result.errors = errors
    if event:
        result.events.append(event)
    return result
