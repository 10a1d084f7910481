"""gtag.js hits sent to a first-party /g/collect (gtag's `server_container_url`) → events,
visitor traits and per-line dead letters. Pure: no HTTP, no database.

Wire format (docs/INTEGRATIONS.md, "gtag.js web hits"): the query string carries what
every event of the hit shares, the body one event per line (URL-encoded; lines end in \\n or
\\r\\n), and a line's parameters override the query's. A hit with an empty body is one event:
the query string alone.

Choices:
- `cid` and `en` are required; `cid` follows our visitor id rule, `en` our event name rule
  (letters, digits and '_', at most 100). gtag's automatic events (page_view,
  user_engagement, session_start...) are welcome here, unlike in the Measurement Protocol,
  and so are its own `ga_`-prefixed parameters.
- `v`, when sent, must be 2; a line's `tid`, when sent, must be the query's (the stream is the
  query's `tid`, checked by the view). `epn.`/`upn.` values, `sct`, `seg` and `_et` must be
  numbers. A parameter repeated within a line: the last one wins, as in any query string.
- Values are kept as sent, however long (GA4 would truncate silently); the body limit bounds them.
- Standard fields become the event parameters GA4's BigQuery export uses: dl → page_location,
  dt → page_title, dr → page_referrer, sid → ga_session_id (and the event's session id),
  sct → ga_session_number, seg → session_engaged, _et → engagement_time_msec. uid, up./upn.,
  ul and sr become visitor traits (user_id, user_properties.<name>, device.language,
  device.screen_resolution), and Consent Mode's gcs the consent traits (analytics/consent.py).
  Transport fields (_p, _s, gtm, _z...) are dropped.
- gtag sends no absolute time per event: each event is "now", lines a microsecond apart so they
  keep their order and two alike in one hit are not taken for duplicates.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import unquote_to_bytes

from portfolio.storable import UNSTORABLE_MESSAGE, is_storable, storable_text

from .consent import gcs_traits
from .measurement_protocol import VISITOR_ID_RE, Code, ValidationMessage, json_safe
from .services import EventIn, RejectedIn

MAX_FIELDS_PER_LINE = 200
MAX_EVENTS_PER_HIT = 500
MAX_SESSION_ID_LENGTH = 100
MAX_USER_ID_LENGTH = 256
MAX_FIELD_IN_REASON = 100
PROTOCOL_VERSION = "2"

EVENT_NAME_RE = re.compile(r"[A-Za-z0-9_]{1,100}")
PARAM_NAME_RE = re.compile(r"[A-Za-z0-9_]{1,40}")
_INTEGER_RE = re.compile(r"-?[0-9]{1,18}")
_DECIMAL_RE = re.compile(r"-?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]{1,3})?")

# gtag field → the event parameter GA4's export calls it.
_PAGE_FIELDS = {"dl": "page_location", "dt": "page_title", "dr": "page_referrer"}
_INTEGER_FIELDS = {
    "sct": "ga_session_number",
    "seg": "session_engaged",
    "_et": "engagement_time_msec",
}
_DEVICE_FIELDS = {"ul": "device.language", "sr": "device.screen_resolution"}
_PREFIXES = ("ep.", "epn.", "up.", "upn.")


@dataclass
class GtagParse:
    """One /g/collect hit: the events to store, what to dead-letter, traits to merge."""

    measurement_id: str = ""
    events: list[EventIn] = field(default_factory=list)
    rejected: list[RejectedIn] = field(default_factory=list)
    traits_by_visitor: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def errors_by_line(self) -> dict[int | None, list[dict[str, str]]]:
        """Every refused line's reasons by body line number (None: the query-only hit)."""
        return {item.line_number: item.reasons for item in self.rejected}


def _field_name(raw: str) -> str:
    return storable_text(raw)[:MAX_FIELD_IN_REASON]


def _decode(raw: bytes) -> tuple[dict[str, str], list[ValidationMessage]]:
    """A URL-encoded `a=1&b=2` → {name: value}, with a message per field that is not text."""
    parts = [part for part in raw.split(b"&") if part]
    if len(parts) > MAX_FIELDS_PER_LINE:
        message = f"At most {MAX_FIELDS_PER_LINE} parameters per event."
        return {}, [ValidationMessage("", message, Code.EXCEEDED_MAX_ENTITIES)]
    params: dict[str, str] = {}
    errors: list[ValidationMessage] = []
    for part in parts:
        raw_key, _, raw_value = part.partition(b"=")
        key_bytes = unquote_to_bytes(raw_key.replace(b"+", b" "))
        value_bytes = unquote_to_bytes(raw_value.replace(b"+", b" "))
        try:
            key, value = key_bytes.decode("utf-8"), value_bytes.decode("utf-8")
        except UnicodeDecodeError:
            name = _field_name(key_bytes.decode("utf-8", errors="replace"))
            errors.append(ValidationMessage(name, "Is not UTF-8 text.", Code.VALUE_INVALID))
            continue
        if not (is_storable(key) and is_storable(value)):
            errors.append(
                ValidationMessage(_field_name(key), UNSTORABLE_MESSAGE, Code.VALUE_INVALID)
            )
            continue
        if key:
            params[key] = value
    return params, errors


def _number(text: str) -> int | float | None:
    if _INTEGER_RE.fullmatch(text):
        return int(text)
    if _DECIMAL_RE.fullmatch(text):
        return float(text)  # at most e±999: finite or ±inf, checked below
    return None


def _finite_number(text: str) -> int | float | None:
    number = _number(text)
    if isinstance(number, float) and number in (float("inf"), float("-inf")):
        return None
    return number


@dataclass
class _Hit:
    """One event's fields, query and line merged, as it is being validated."""

    params: Mapping[str, str]
    errors: list[ValidationMessage] = field(default_factory=list)

    def error(self, name: str, code: Code, description: str) -> None:
        self.errors.append(ValidationMessage(_field_name(name), description, code))


def _prefixed(hit: _Hit) -> tuple[dict[str, Any], dict[str, Any]]:
    """ep./epn. → event parameters, up./upn. → user properties."""
    event_params: dict[str, Any] = {}
    user_properties: dict[str, Any] = {}
    for key, text in hit.params.items():
        prefix, dot, name = key.partition(".")
        if not dot or f"{prefix}." not in _PREFIXES:
            continue
        if not PARAM_NAME_RE.fullmatch(name):
            hit.error(key, Code.NAME_INVALID, "Names are 1-40 letters, digits and underscores.")
            continue
        value: Any = text
        if prefix in ("epn", "upn"):
            value = _finite_number(text)
            if value is None:
                hit.error(key, Code.VALUE_INVALID, "Must be a number.")
                continue
        target = event_params if prefix.startswith("ep") else user_properties
        target[name] = value
    return event_params, user_properties


def _standard(hit: _Hit, event_params: dict[str, Any]) -> None:
    """gtag's own fields → the event parameters GA4's export uses."""
    params = hit.params
    sid = params.get("sid")
    if sid:
        if len(sid) > MAX_SESSION_ID_LENGTH:
            hit.error(
                "sid", Code.VALUE_OUT_OF_BOUNDS, f"At most {MAX_SESSION_ID_LENGTH} characters."
            )
        else:
            event_params["ga_session_id"] = int(sid) if _INTEGER_RE.fullmatch(sid) else sid
    for name, param in _INTEGER_FIELDS.items():
        text = params.get(name)
        if text is None or text == "":
            continue
        if not _INTEGER_RE.fullmatch(text):
            hit.error(name, Code.VALUE_INVALID, "Must be a whole number.")
            continue
        event_params[param] = int(text)
    for name, param in _PAGE_FIELDS.items():
        if params.get(name):
            event_params[param] = params[name]


def _traits(hit: _Hit, user_properties: Mapping[str, Any]) -> dict[str, Any]:
    traits: dict[str, Any] = {f"user_properties.{k}": v for k, v in user_properties.items()}
    uid = hit.params.get("uid")
    if uid:
        if len(uid) > MAX_USER_ID_LENGTH:
            hit.error("uid", Code.VALUE_OUT_OF_BOUNDS, f"At most {MAX_USER_ID_LENGTH} characters.")
        else:
            traits["user_id"] = uid
    for name, trait in _DEVICE_FIELDS.items():
        if hit.params.get(name):
            traits[trait] = hit.params[name]
    traits.update(gcs_traits(hit.params.get("gcs", "")))
    return traits


def _event(hit: _Hit, occurred_at: datetime) -> tuple[EventIn | None, dict[str, Any]]:
    params = hit.params
    version = params.get("v")
    if version is not None and version != PROTOCOL_VERSION:
        hit.error("v", Code.VALUE_INVALID, "Only protocol version 2 (GA4) is accepted.")
    cid = params.get("cid", "")
    if not cid:
        hit.error("cid", Code.VALUE_REQUIRED, "The client id (cid) is required.")
    elif not VISITOR_ID_RE.fullmatch(cid):
        hit.error("cid", Code.VALUE_INVALID, "Must be 1-200 letters, digits, '.', '_' or '-'.")
    name = params.get("en", "")
    if not name:
        hit.error("en", Code.VALUE_REQUIRED, "The event name (en) is required.")
    elif not EVENT_NAME_RE.fullmatch(name):
        hit.error("en", Code.NAME_INVALID, "Event names are 1-100 letters, digits and '_'.")
    event_params, user_properties = _prefixed(hit)
    _standard(hit, event_params)
    traits = _traits(hit, user_properties)
    if hit.errors:
        return None, {}
    sid = params.get("sid", "")
    event = EventIn(
        event_name=name,
        user_pseudo_id=cid,
        occurred_at=occurred_at,
        event_params=event_params,
        session_id=sid,
        page_location=params.get("dl", ""),
        page_referrer=params.get("dr", ""),
    )
    return event, traits


def _query_bytes(query: str | bytes) -> bytes:
    if isinstance(query, bytes):
        return query
    # WSGI and ASGI hand Django the query string as Latin-1-decoded bytes.
    try:
        return query.encode("latin-1")
    except UnicodeEncodeError:
        return query.encode("utf-8", errors="surrogatepass")


def _text(raw: bytes) -> str:
    return json_safe(raw.decode("utf-8", errors="replace"))


def _body_lines(body: bytes) -> list[tuple[int, bytes]]:
    """Non-blank lines with their 1-based numbers."""
    lines = []
    for number, line in enumerate(body.split(b"\n"), start=1):
        line = line.rstrip(b"\r")
        if line.strip():
            lines.append((number, line.strip()))
    return lines


def gtag_parse(
    *,
    query: str | bytes,
    body: bytes = b"",
    context: str = "g/collect",
    now: datetime | None = None,
) -> GtagParse:
    """A /g/collect hit → its valid events, the traits they carry, a dead letter per bad line."""
    now = now or datetime.now(tz=UTC)
    query_raw = _query_bytes(query)
    shared, shared_errors = _decode(query_raw)
    result = GtagParse(measurement_id=shared.get("tid", ""))
    query_text = _text(query_raw)

    lines: list[tuple[int | None, bytes]] = list(_body_lines(body))
    if not lines:
        lines = [(None, b"")]
    for index, (number, raw_line) in enumerate(lines[:MAX_EVENTS_PER_HIT]):
        own, own_errors = _decode(raw_line)
        hit = _Hit(params={**shared, **own}, errors=[*shared_errors, *own_errors])
        if "tid" in own and own["tid"] != result.measurement_id:
            hit.error("tid", Code.VALUE_INVALID, "A line's tid must be the query string's.")
        event, traits = _event(hit, now + timedelta(microseconds=index))
        if event is None:
            payload = {"query": query_text}
            if number is not None:
                payload["line"] = _text(raw_line)
            result.rejected.append(
                RejectedIn(
                    payload=payload,
                    reasons=[message.as_reason() for message in hit.errors],
                    context=context,
                    line_number=number,
                )
            )
            continue
        result.events.append(event)
        if traits:
            result.traits_by_visitor.setdefault(event.user_pseudo_id, {}).update(traits)

    overflow = lines[MAX_EVENTS_PER_HIT:]
    if overflow:
        message = ValidationMessage(
            "", f"At most {MAX_EVENTS_PER_HIT} events per hit.", Code.EXCEEDED_MAX_ENTITIES
        )
        result.rejected.append(
            RejectedIn(
                payload={"query": query_text, "lines": _text(b"\n".join(r for _n, r in overflow))},
                reasons=[message.as_reason()],
                context=context,
                line_number=overflow[0][0],
            )
        )
    return result
