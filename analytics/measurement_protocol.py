"""GA4 Measurement Protocol: an /mp/collect body → events to store, GA4-style validation
messages and dead letters. Pure: no HTTP, no database.

The rules are GA4's (docs/INTEGRATIONS.md, "GA4 Measurement Protocol"; Google's MP
reference, web tab). Where GA4 leaves a choice, ours:

- Request-level problems (the body is not a JSON object; `client_id`, `user_id`, the body's
  `timestamp_micros`, `user_properties`, `consent`, `non_personalized_ads`, `user_location`,
  `device`, `user_agent`, `validation_behavior`; `events` missing, empty or over 25) reject
  the whole request: nothing is stored and the body is one dead letter. A problem inside
  `events[i]` drops that event alone, as GA4 does; the others are stored.
- Any message on an event drops it, whatever the validation behaviour. GA4's RELAXED mode
  would keep the event and quietly discard an over-limit parameter; we keep an event whole or
  not at all, and its dead letter keeps what was sent. ENFORCE_RECOMMENDATIONS adds the Event
  Builder's recommendations: `currency` a 3-letter ISO 4217 code, `value` needs `currency`,
  `items` not empty and each item with `item_id` or `item_name`.
- NAME_DUPLICATED: a JSON object cannot repeat a key once parsed, so repeats are caught while
  parsing (a key twice in any object of the body's text), as is a field sent under both its
  snake_case and camelCase spellings (`validation_behavior` and `validationBehavior`; GA4's
  protobuf JSON parser accepts either spelling of every field, and so do we).
- `timestamp_micros` may be in seconds, milliseconds or microseconds, normalised like every
  channel (services.timestamp_to_datetime); it must fall within the last 72 hours, and no more
  than MAX_CLOCK_SKEW ahead.
- `client_id` must also satisfy our visitor id rule (it becomes `user_pseudo_id`); app streams
  (`app_instance_id`) are not supported. `user_data` and `ip_override` are personal data we do
  not keep; they are ignored, as are fields GA4 does not define, and dead letters drop them
  (with `user_location`) before they are written (dead_letters.py).
- A parameter whose value is null carries nothing and is left out.
- Visitor traits use flat dotted keys (`user_id`, `user_properties.<name>`,
  `consent.ad_user_data`, `device.category`, `user_location.city`, `user_agent`,
  `non_personalized_ads`): visitors_merge_traits merges one level deep, so a request that sets
  one user property leaves the others in place. They are merged only when an event is stored.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from portfolio.api.json_depth import json_too_deep, too_deep_message
from portfolio.storable import is_storable, storable_json, storable_text

from .services import EventIn, RejectedIn, timestamp_to_datetime

# Dead letters keep what was sent, made storable (the one shared check and repair).
json_safe = storable_json


class Code(StrEnum):
    """GA4's validation codes."""

    VALUE_INVALID = "VALUE_INVALID"
    VALUE_REQUIRED = "VALUE_REQUIRED"
    NAME_INVALID = "NAME_INVALID"
    NAME_RESERVED = "NAME_RESERVED"
    VALUE_OUT_OF_BOUNDS = "VALUE_OUT_OF_BOUNDS"
    EXCEEDED_MAX_ENTITIES = "EXCEEDED_MAX_ENTITIES"
    NAME_DUPLICATED = "NAME_DUPLICATED"


RELAXED = "RELAXED"
ENFORCE_RECOMMENDATIONS = "ENFORCE_RECOMMENDATIONS"

MAX_EVENTS = 25
MAX_EVENT_PARAMS = 25
MAX_USER_PROPERTIES = 25
MAX_ITEMS = 200
MAX_NAME_LENGTH = 40
MAX_USER_PROPERTY_NAME_LENGTH = 24
MAX_USER_PROPERTY_VALUE_LENGTH = 36
MAX_USER_ID_LENGTH = 256
MAX_PARAM_VALUE_LENGTH = 100
PARAM_VALUE_LENGTHS = {"page_title": 300, "page_referrer": 420, "page_location": 1000}
MAX_USER_AGENT_LENGTH = 512
MAX_ATTRIBUTE_LENGTH = 100  # device and user_location strings
MAX_MESSAGE_TEXT = 300
MAX_BACKDATE = timedelta(hours=72)
MAX_CLOCK_SKEW = timedelta(minutes=15)
# Past this a number is no timestamp in any unit (micros beyond the year 5138).
_MAX_TIMESTAMP = 10**17
_INT64 = 2**63

NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
VISITOR_ID_RE = re.compile(r"[A-Za-z0-9._-]{1,200}")
_DIGITS_RE = re.compile(r"[0-9]{1,20}")
_CURRENCY_RE = re.compile(r"[A-Z]{3}")

RESERVED_EVENT_NAMES = frozenset(
    {
        "ad_activeview",
        "ad_click",
        "ad_exposure",
        "ad_query",
        "ad_reward",
        "adunit_exposure",
        "app_clear_data",
        "app_exception",
        "app_install",
        "app_remove",
        "app_store_refund",
        "app_update",
        "app_upgrade",
        "dynamic_link_app_open",
        "dynamic_link_app_update",
        "dynamic_link_first_open",
        "error",
        "firebase_campaign",
        "firebase_in_app_message_action",
        "firebase_in_app_message_dismiss",
        "firebase_in_app_message_impression",
        "first_open",
        "first_visit",
        "notification_dismiss",
        "notification_foreground",
        "notification_open",
        "notification_receive",
        "notification_send",
        "os_update",
        "session_start",
        "user_engagement",
        # allowed for app streams only; ours are web streams
        "ad_impression",
        "in_app_purchase",
        "screen_view",
    }
)
RESERVED_PARAM_PREFIXES = ("_", "firebase_", "ga_", "google_", "gtag.")
RESERVED_PARAM_NAMES = frozenset({"firebase_conversion"})
RESERVED_EVENT_PREFIXES = RESERVED_PARAM_PREFIXES
RESERVED_USER_PROPERTY_PREFIXES = ("_", "firebase_", "ga_", "google_")
RESERVED_USER_PROPERTY_NAMES = frozenset(
    {
        "first_open_time",
        "first_visit_time",
        "last_deep_link_referrer",
        "user_id",
        "first_open_after_install",
    }
)
CONSENT_FIELDS = frozenset({"ad_user_data", "ad_personalization"})
CONSENT_VALUES = frozenset({"GRANTED", "DENIED"})
VALIDATION_BEHAVIORS = frozenset({RELAXED, ENFORCE_RECOMMENDATIONS})
BODY_FIELDS = frozenset(
    {
        "client_id",
        "app_instance_id",
        "user_id",
        "timestamp_micros",
        "user_properties",
        "user_data",
        "consent",
        "non_personalized_ads",
        "user_location",
        "ip_override",
        "device",
        "user_agent",
        "validation_behavior",
        "events",
    }
)
EVENT_FIELDS = frozenset({"name", "params", "timestamp_micros"})
USER_PROPERTY_FIELDS = frozenset({"value", "timestamp_micros"})
DEVICE_FIELDS = frozenset(
    {
        "category",
        "language",
        "screen_resolution",
        "operating_system",
        "operating_system_version",
        "model",
        "brand",
        "browser",
        "browser_version",
    }
)
USER_LOCATION_FIELDS = frozenset(
    {"city", "region_id", "country_id", "subcontinent_id", "continent_id"}
)


@dataclass(frozen=True)
class ValidationMessage:
    field_path: str
    description: str
    validation_code: Code

    def __post_init__(self) -> None:
        # Paths and descriptions quote names the client chose: keep them storable and short.
        for name in ("field_path", "description"):
            text = storable_text(getattr(self, name))
            if len(text) > MAX_MESSAGE_TEXT:
                text = text[: MAX_MESSAGE_TEXT - 1] + "…"
            object.__setattr__(self, name, text)

    def as_ga4(self) -> dict[str, str]:
        """As GA4's /debug/mp/collect answers it."""
        return {
            "fieldPath": self.field_path,
            "description": self.description,
            "validationCode": str(self.validation_code),
        }

    def as_reason(self) -> dict[str, str]:
        """As RejectedEvent.reasons stores it."""
        return {
            "field": self.field_path,
            "message": self.description,
            "code": str(self.validation_code),
        }


@dataclass
class MpParse:
    """What one /mp/collect body holds: valid events, every message, and what to dead-letter."""

    events: list[EventIn] = field(default_factory=list)
    messages: list[ValidationMessage] = field(default_factory=list)
    rejected: list[RejectedIn] = field(default_factory=list)
    user_pseudo_id: str = ""
    traits: dict[str, Any] = field(default_factory=dict)
    validation_behavior: str = RELAXED

    @property
    def traits_by_visitor(self) -> dict[str, dict[str, Any]]:
        """Visitor traits to merge, once the request's events are stored."""
        if not (self.events and self.traits):
            return {}
        return {self.user_pseudo_id: self.traits}


# --- parsing --------------------------------------------------------------------------------


class _Object(dict[str, Any]):
    """A parsed JSON object that remembers the keys its text repeated."""

    duplicates: tuple[str, ...] = ()


def _object_pairs(pairs: list[tuple[str, Any]]) -> _Object:
    obj = _Object(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        repeated: list[str] = []
        for key, _value in pairs:
            if key in seen and key not in repeated:
                repeated.append(key)
            seen.add(key)
        obj.duplicates = tuple(repeated)
    return obj


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _load(body: bytes) -> tuple[Any, ValidationMessage | None]:
    if not body.strip():
        return None, ValidationMessage(
            "", "The body is empty; expected a JSON object.", Code.VALUE_REQUIRED
        )
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError:
        return None, ValidationMessage("", "The body is not UTF-8 text.", Code.VALUE_INVALID)
    if json_too_deep(body):
        return None, ValidationMessage(
            "", f"The body is not valid JSON: {too_deep_message()}", Code.VALUE_INVALID
        )
    try:
        data = json.loads(text, object_pairs_hook=_object_pairs, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        # ValueError covers JSONDecodeError and integers past Python's digit limit.
        reason = str(exc)[:200] if isinstance(exc, ValueError) else "nested too deeply"
        return None, ValidationMessage(
            "", f"The body is not valid JSON: {reason}", Code.VALUE_INVALID
        )
    if not isinstance(data, dict):
        return None, ValidationMessage("", "The body must be a JSON object.", Code.VALUE_INVALID)
    return data, None


def _snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()


class _Report:
    """The validation messages of one part of a request, in the order found."""

    def __init__(self) -> None:
        self.messages: list[ValidationMessage] = []

    def add(self, path: str, code: Code, description: str) -> None:
        self.messages.append(ValidationMessage(path, description, code))

    def __bool__(self) -> bool:
        return bool(self.messages)


def _join(*parts: object) -> str:
    return ".".join(str(part) for part in parts if part != "")


def _fields(
    obj: Mapping[str, Any], known: frozenset[str], path: str, report: _Report
) -> dict[str, Any]:
    """A structural object's known fields by their snake_case names. A key repeated in the
    text, or sent under both spellings, is NAME_DUPLICATED."""
    for key in getattr(obj, "duplicates", ()):
        report.add(_join(path, key), Code.NAME_DUPLICATED, f"'{key}' appears more than once.")
    out: dict[str, Any] = {}
    for key, value in obj.items():
        name = key if key in known else _snake(key)
        if name not in known:
            continue
        if name in out:
            report.add(
                _join(path, name),
                Code.NAME_DUPLICATED,
                f"'{name}' is sent under two spellings; send it once.",
            )
            continue
        out[name] = value
    return out


def _scalar_problem(value: Any) -> tuple[Code, str] | None:
    """A parameter or property value is a string, a number or a boolean."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        if -_INT64 <= value < _INT64:
            return None
        return Code.VALUE_OUT_OF_BOUNDS, "Integers must fit in 64 bits."
    if isinstance(value, float):
        return None if math.isfinite(value) else (Code.VALUE_INVALID, "Numbers must be finite.")
    if isinstance(value, str):
        if is_storable(value):
            return None
        return Code.VALUE_INVALID, "Text must not hold NUL characters or lone surrogates."
    return Code.VALUE_INVALID, "Must be a string, a number or a boolean."


def _as_integer(value: Any) -> int | None:
    """An int, an integral float or a string of digits (protobuf's JSON form of int64)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    if isinstance(value, str) and _DIGITS_RE.fullmatch(value):
        return int(value)
    return None


def _timestamp(value: Any, path: str, now: datetime, report: _Report) -> datetime | None:
    """timestamp_micros: a positive integer (or a string of digits), within the last 72 h."""
    number = _as_integer(value)
    if number is None:
        report.add(path, Code.VALUE_INVALID, "Must be a Unix timestamp in microseconds.")
        return None
    if not 0 < number < _MAX_TIMESTAMP:
        report.add(path, Code.VALUE_OUT_OF_BOUNDS, "Is not a timestamp in any unit.")
        return None
    try:
        moment = timestamp_to_datetime(number)
    except (OverflowError, OSError, ValueError):
        report.add(path, Code.VALUE_OUT_OF_BOUNDS, "Is not a timestamp in any unit.")
        return None
    if moment < now - MAX_BACKDATE:
        report.add(path, Code.VALUE_OUT_OF_BOUNDS, "Events can be backdated up to 72 hours.")
        return None
    if moment > now + MAX_CLOCK_SKEW:
        report.add(path, Code.VALUE_OUT_OF_BOUNDS, "Is in the future.")
        return None
    return moment


def _reserved(name: str, prefixes: tuple[str, ...], names: frozenset[str]) -> bool:
    return name in names or name.startswith(prefixes)


def _name_problem(name: str, max_length: int) -> str | None:
    if len(name) > max_length:
        return f"Names are at most {max_length} characters."
    if not NAME_RE.fullmatch(name):
        return "Names start with a letter and hold only letters, digits and underscores."
    return None


# --- request level --------------------------------------------------------------------------


def _text_field(value: Any, path: str, max_length: int, report: _Report) -> str | None:
    """An optional text field: None when absent or invalid (then with a message)."""
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not is_storable(value):
        report.add(path, Code.VALUE_INVALID, "Must be text.")
        return None
    if len(value) > max_length:
        report.add(path, Code.VALUE_OUT_OF_BOUNDS, f"Is at most {max_length} characters.")
        return None
    return value


def _client_id(value: Any, report: _Report) -> str:
    if value is None or value == "":
        report.add(
            "client_id",
            Code.VALUE_REQUIRED,
            "client_id is required (web streams; app_instance_id is not supported).",
        )
        return ""
    if not isinstance(value, str) or not VISITOR_ID_RE.fullmatch(value):
        report.add(
            "client_id",
            Code.VALUE_INVALID,
            "Must be 1-200 characters: letters, digits, '.', '_' and '-' only.",
        )
        return ""
    return value


def _user_properties(value: Any, now: datetime, report: _Report) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        report.add("user_properties", Code.VALUE_INVALID, "Must be an object.")
        return {}
    for key in getattr(value, "duplicates", ()):
        report.add(
            _join("user_properties", key), Code.NAME_DUPLICATED, f"'{key}' appears more than once."
        )
    if len(value) > MAX_USER_PROPERTIES:
        report.add(
            "user_properties",
            Code.EXCEEDED_MAX_ENTITIES,
            f"At most {MAX_USER_PROPERTIES} user properties per request.",
        )
    properties: dict[str, Any] = {}
    for name, entry in value.items():
        path = _join("user_properties", name)
        if _reserved(name, RESERVED_USER_PROPERTY_PREFIXES, RESERVED_USER_PROPERTY_NAMES):
            report.add(path, Code.NAME_RESERVED, f"'{name}' is a reserved user property name.")
            continue
        problem = _name_problem(name, MAX_USER_PROPERTY_NAME_LENGTH)
        if problem:
            report.add(path, Code.NAME_INVALID, problem)
            continue
        if not isinstance(entry, dict):
            report.add(path, Code.VALUE_INVALID, 'Must be an object: {"value": ...}.')
            continue
        fields = _fields(entry, USER_PROPERTY_FIELDS, path, report)
        if fields.get("timestamp_micros") is not None:
            _timestamp(fields["timestamp_micros"], _join(path, "timestamp_micros"), now, report)
        prop = fields.get("value")
        value_path = _join(path, "value")
        if prop is None:
            report.add(value_path, Code.VALUE_REQUIRED, "A user property needs a value.")
            continue
        scalar = _scalar_problem(prop)
        if scalar:
            report.add(value_path, *scalar)
        elif isinstance(prop, str) and len(prop) > MAX_USER_PROPERTY_VALUE_LENGTH:
            report.add(
                value_path,
                Code.VALUE_OUT_OF_BOUNDS,
                f"User property values are at most {MAX_USER_PROPERTY_VALUE_LENGTH} characters.",
            )
        else:
            properties[name] = prop
    return properties


def _consent(value: Any, report: _Report) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        report.add("consent", Code.VALUE_INVALID, "Must be an object.")
        return {}
    consent: dict[str, str] = {}
    for name, state in _fields(value, CONSENT_FIELDS, "consent", report).items():
        if state is None:
            continue
        if not isinstance(state, str) or state not in CONSENT_VALUES:
            report.add(_join("consent", name), Code.VALUE_INVALID, "Must be GRANTED or DENIED.")
            continue
        consent[name] = state
    return consent


def _attributes(value: Any, path: str, known: frozenset[str], report: _Report) -> dict[str, str]:
    """device and user_location: objects of short strings."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        report.add(path, Code.VALUE_INVALID, "Must be an object.")
        return {}
    attributes: dict[str, str] = {}
    for name, item in _fields(value, known, path, report).items():
        text = _text_field(item, _join(path, name), MAX_ATTRIBUTE_LENGTH, report)
        if text is not None:
            attributes[name] = text
    return attributes


def _validation_behavior(value: Any, report: _Report) -> str:
    if value is None:
        return RELAXED
    if not isinstance(value, str) or value not in VALIDATION_BEHAVIORS:
        report.add(
            "validation_behavior",
            Code.VALUE_INVALID,
            "Must be RELAXED or ENFORCE_RECOMMENDATIONS.",
        )
        return RELAXED
    return value


@dataclass
class _Request:
    client_id: str = ""
    occurred_at: datetime | None = None
    traits: dict[str, Any] = field(default_factory=dict)
    enforce_recommendations: bool = False
    events: list[Any] = field(default_factory=list)


def _request(body: Mapping[str, Any], now: datetime, report: _Report) -> _Request:
    fields = _fields(body, BODY_FIELDS, "", report)
    request = _Request(client_id=_client_id(fields.get("client_id"), report))
    traits: dict[str, Any] = {}
    user_id = _text_field(fields.get("user_id"), "user_id", MAX_USER_ID_LENGTH, report)
    if user_id is not None:
        traits["user_id"] = user_id
    if fields.get("timestamp_micros") is not None:
        request.occurred_at = _timestamp(
            fields["timestamp_micros"], "timestamp_micros", now, report
        )
    for name, prop in _user_properties(fields.get("user_properties"), now, report).items():
        traits[f"user_properties.{name}"] = prop
    for name, state in _consent(fields.get("consent"), report).items():
        traits[f"consent.{name}"] = state
    npa = fields.get("non_personalized_ads")
    if npa is not None:
        if isinstance(npa, bool):
            traits["non_personalized_ads"] = npa
        else:
            report.add("non_personalized_ads", Code.VALUE_INVALID, "Must be true or false.")
    for name, text in _attributes(
        fields.get("user_location"), "user_location", USER_LOCATION_FIELDS, report
    ).items():
        traits[f"user_location.{name}"] = text
    for name, text in _attributes(fields.get("device"), "device", DEVICE_FIELDS, report).items():
        traits[f"device.{name}"] = text
    user_agent = _text_field(fields.get("user_agent"), "user_agent", MAX_USER_AGENT_LENGTH, report)
    if user_agent is not None:
        traits["user_agent"] = user_agent
    behavior = _validation_behavior(fields.get("validation_behavior"), report)
    request.enforce_recommendations = behavior == ENFORCE_RECOMMENDATIONS
    request.traits = traits

    events = fields.get("events")
    if events is None:
        report.add("events", Code.VALUE_REQUIRED, "At least one event is required.")
    elif not isinstance(events, list):
        report.add("events", Code.VALUE_INVALID, "Must be a list of events.")
    elif not events:
        report.add("events", Code.VALUE_REQUIRED, "At least one event is required.")
    elif len(events) > MAX_EVENTS:
        report.add(
            "events", Code.EXCEEDED_MAX_ENTITIES, f"At most {MAX_EVENTS} events per request."
        )
    else:
        request.events = events
    return request


# --- events ---------------------------------------------------------------------------------


@dataclass
class _Event:
    name: str
    params: dict[str, Any]
    occurred_at: datetime | None


def _param_value(name: str, value: Any, path: str, report: _Report) -> bool:
    scalar = _scalar_problem(value)
    if scalar:
        report.add(path, *scalar)
        return False
    limit = PARAM_VALUE_LENGTHS.get(name, MAX_PARAM_VALUE_LENGTH)
    if isinstance(value, str) and len(value) > limit:
        report.add(
            path, Code.VALUE_OUT_OF_BOUNDS, f"'{name}' values are at most {limit} characters."
        )
        return False
    return True


def _param_name(name: str, path: str, report: _Report) -> bool:
    if _reserved(name, RESERVED_PARAM_PREFIXES, RESERVED_PARAM_NAMES):
        report.add(path, Code.NAME_RESERVED, f"'{name}' is a reserved parameter name.")
        return False
    problem = _name_problem(name, MAX_NAME_LENGTH)
    if problem:
        report.add(path, Code.NAME_INVALID, problem)
        return False
    return True


def _items(value: Any, path: str, report: _Report, *, recommend: bool) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        report.add(path, Code.VALUE_INVALID, "items must be a list of objects.")
        return []
    if len(value) > MAX_ITEMS:
        report.add(path, Code.EXCEEDED_MAX_ENTITIES, f"At most {MAX_ITEMS} items per event.")
        return []
    if recommend and not value:
        report.add(path, Code.VALUE_REQUIRED, "items should hold at least one item.")
    items: list[dict[str, Any]] = []
    for index, item in enumerate(value):
        item_path = _join(path, index)
        if not isinstance(item, dict):
            report.add(item_path, Code.VALUE_INVALID, "Each item must be an object.")
            continue
        for key in getattr(item, "duplicates", ()):
            report.add(
                _join(item_path, key), Code.NAME_DUPLICATED, f"'{key}' appears more than once."
            )
        clean: dict[str, Any] = {}
        for name, item_value in item.items():
            name_path = _join(item_path, name)
            if item_value is None:
                continue
            if _param_name(name, name_path, report) and _param_value(
                name, item_value, name_path, report
            ):
                clean[name] = item_value
        if recommend and "item_id" not in item and "item_name" not in item:
            report.add(item_path, Code.VALUE_REQUIRED, "Each item needs item_id or item_name.")
        items.append(clean)
    return items


def _recommendations(params: Mapping[str, Any], path: str, report: _Report) -> None:
    """ENFORCE_RECOMMENDATIONS only: what GA4's Event Builder recommends beyond the limits."""
    currency = params.get("currency")
    if currency is not None and not (
        isinstance(currency, str) and _CURRENCY_RE.fullmatch(currency)
    ):
        report.add(
            _join(path, "currency"),
            Code.VALUE_INVALID,
            "currency should be an uppercase 3-letter ISO 4217 code.",
        )
    if params.get("value") is not None and currency is None:
        report.add(
            _join(path, "currency"), Code.VALUE_REQUIRED, "currency is required when value is set."
        )


def _params(value: Any, path: str, report: _Report, *, recommend: bool) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        report.add(path, Code.VALUE_INVALID, "params must be an object.")
        return {}
    for key in getattr(value, "duplicates", ()):
        report.add(_join(path, key), Code.NAME_DUPLICATED, f"'{key}' appears more than once.")
    if len(value) > MAX_EVENT_PARAMS:
        report.add(
            path, Code.EXCEEDED_MAX_ENTITIES, f"At most {MAX_EVENT_PARAMS} parameters per event."
        )
    params: dict[str, Any] = {}
    for name, param in value.items():
        param_path = _join(path, name)
        if param is None or not _param_name(name, param_path, report):
            continue
        if name == "items":
            params[name] = _items(param, param_path, report, recommend=recommend)
        elif _param_value(name, param, param_path, report):
            params[name] = param
    if recommend:
        _recommendations(value, path, report)
    return params


def _event(
    raw: Any, index: int, now: datetime, report: _Report, *, recommend: bool
) -> _Event | None:
    path = _join("events", index)
    if not isinstance(raw, dict):
        report.add(path, Code.VALUE_INVALID, "Each event must be an object.")
        return None
    fields = _fields(raw, EVENT_FIELDS, path, report)
    name = fields.get("name")
    name_path = _join(path, "name")
    if name is None or name == "":
        report.add(name_path, Code.VALUE_REQUIRED, "Each event needs a name.")
    elif not isinstance(name, str):
        report.add(name_path, Code.VALUE_INVALID, "The event name must be a string.")
    elif _reserved(name, RESERVED_EVENT_PREFIXES, RESERVED_EVENT_NAMES):
        report.add(name_path, Code.NAME_RESERVED, f"'{name}' is a reserved event name.")
    else:
        problem = _name_problem(name, MAX_NAME_LENGTH)
        if problem:
            report.add(name_path, Code.NAME_INVALID, problem)
    params = _params(fields.get("params"), _join(path, "params"), report, recommend=recommend)
    occurred_at = None
    if fields.get("timestamp_micros") is not None:
        occurred_at = _timestamp(
            fields["timestamp_micros"], _join(path, "timestamp_micros"), now, report
        )
    if report:
        return None
    return _Event(name=str(name), params=params, occurred_at=occurred_at)


def _event_in(event: _Event, *, user_pseudo_id: str, occurred_at: datetime) -> EventIn:
    params = event.params
    return EventIn(
        event_name=event.name,
        user_pseudo_id=user_pseudo_id,
        occurred_at=occurred_at,
        event_params=params,
        session_id=str(params.get("session_id", ""))[:100],
        page_location=str(params.get("page_location", "")),
        page_referrer=str(params.get("page_referrer", "")),
    )


# --- dead letters ---------------------------------------------------------------------------


def _reasons(messages: Iterable[ValidationMessage]) -> list[dict[str, str]]:
    return [message.as_reason() for message in messages]


# --- entry point ----------------------------------------------------------------------------


def mp_parse(body: bytes, *, context: str = "mp/collect", now: datetime | None = None) -> MpParse:
    """Validate an /mp/collect body as GA4 does: the events to store, every validation message
    (what /debug/mp/collect answers), and the dead letters for what must not be stored."""
    now = now or datetime.now(tz=UTC)
    result = MpParse()
    data, problem = _load(body)
    if problem is not None:
        result.messages = [problem]
        raw = body.decode("utf-8", errors="replace")
        result.rejected = [
            RejectedIn(payload=json_safe(raw), reasons=_reasons([problem]), context=context)
        ]
        return result

    request_report = _Report()
    request = _request(data, now, request_report)
    result.validation_behavior = (
        ENFORCE_RECOMMENDATIONS if request.enforce_recommendations else RELAXED
    )
    event_reports: list[_Report] = []
    parsed: list[_Event | None] = []
    for index, raw_event in enumerate(request.events):
        report = _Report()
        parsed.append(
            _event(raw_event, index, now, report, recommend=request.enforce_recommendations)
        )
        event_reports.append(report)
    result.messages = request_report.messages + [m for r in event_reports for m in r.messages]

    if request_report:
        # Nothing of a request with a broken envelope is stored: it is one dead letter.
        result.rejected = [
            RejectedIn(payload=json_safe(data), reasons=_reasons(result.messages), context=context)
        ]
        return result

    result.user_pseudo_id = request.client_id
    result.traits = request.traits
    envelope = {key: value for key, value in data.items() if key != "events"}
    for index, (event, report) in enumerate(zip(parsed, event_reports, strict=True)):
        if event is None:
            # The request minus its other events: replayable once the event is fixed.
            payload = {**envelope, "events": [request.events[index]]}
            result.rejected.append(
                RejectedIn(
                    payload=json_safe(payload), reasons=_reasons(report.messages), context=context
                )
            )
            continue
        # Events without a time of their own take the request's, spaced by a microsecond so
        # they keep their order and two alike are not taken for duplicates.
        occurred_at = (
            event.occurred_at or request.occurred_at or now + timedelta(microseconds=index)
        )
        result.events.append(
            _event_in(event, user_pseudo_id=request.client_id, occurred_at=occurred_at)
        )
    return result
