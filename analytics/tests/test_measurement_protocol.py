"""The Measurement Protocol parser: one test per GA4 rule, with exact fieldPath and code."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analytics.measurement_protocol import (
    RESERVED_EVENT_NAMES,
    VISITOR_ID_RE,
    Code,
    mp_parse,
)

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
NOW_MICROS = int(NOW.timestamp()) * 1_000_000
HOUR_MICROS = 3_600 * 1_000_000


def valid_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "client_id": "123456.7654321",
        "events": [{"name": "project_click", "params": {"project_id": "llm-router"}}],
    }
    body.update(overrides)
    return body


def event(**overrides: Any) -> dict[str, Any]:
    return {"name": "project_click", "params": {"project_id": "llm-router"}, **overrides}


def parse(payload: Any) -> Any:
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return mp_parse(raw, now=NOW)


def codes(payload: Any) -> list[tuple[str, str]]:
    return [(m.field_path, m.validation_code) for m in parse(payload).messages]


def test_mp_parse__valid_body__no_messages_one_event():
    result = parse(valid_body())

    assert result.messages == []
    assert result.rejected == []
    assert [e.event_name for e in result.events] == ["project_click"]


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        pytest.param(
            {"events": [event()]}, [("client_id", Code.VALUE_REQUIRED)], id="client_id-missing"
        ),
        pytest.param(
            valid_body(client_id=""), [("client_id", Code.VALUE_REQUIRED)], id="client_id-empty"
        ),
        pytest.param(
            valid_body(client_id="12 34"), [("client_id", Code.VALUE_INVALID)], id="client_id-rule"
        ),
        pytest.param(
            valid_body(client_id=12.34), [("client_id", Code.VALUE_INVALID)], id="client_id-number"
        ),
        pytest.param(
            valid_body(user_id="u" * 257), [("user_id", Code.VALUE_OUT_OF_BOUNDS)], id="user_id-257"
        ),
        pytest.param(
            valid_body(user_id=["u"]), [("user_id", Code.VALUE_INVALID)], id="user_id-not-text"
        ),
        pytest.param(
            valid_body(timestamp_micros=NOW_MICROS - 73 * HOUR_MICROS),
            [("timestamp_micros", Code.VALUE_OUT_OF_BOUNDS)],
            id="timestamp-backdated-73h",
        ),
        pytest.param(
            valid_body(timestamp_micros=NOW_MICROS + HOUR_MICROS),
            [("timestamp_micros", Code.VALUE_OUT_OF_BOUNDS)],
            id="timestamp-future-1h",
        ),
        pytest.param(
            valid_body(timestamp_micros="soon"),
            [("timestamp_micros", Code.VALUE_INVALID)],
            id="timestamp-not-a-number",
        ),
        pytest.param(
            valid_body(timestamp_micros=10**40),
            [("timestamp_micros", Code.VALUE_OUT_OF_BOUNDS)],
            id="timestamp-huge",
        ),
        pytest.param(
            valid_body(events=[event(timestamp_micros=NOW_MICROS - 73 * HOUR_MICROS)]),
            [("events.0.timestamp_micros", Code.VALUE_OUT_OF_BOUNDS)],
            id="event-timestamp-backdated",
        ),
        pytest.param(
            valid_body(user_properties={f"p{i}": {"value": i} for i in range(26)}),
            [("user_properties", Code.EXCEEDED_MAX_ENTITIES)],
            id="user-properties-26",
        ),
        pytest.param(
            valid_body(user_properties={"p" * 25: {"value": 1}}),
            [("user_properties." + "p" * 25, Code.NAME_INVALID)],
            id="user-property-name-25-chars",
        ),
        pytest.param(
            valid_body(user_properties={"1plan": {"value": 1}}),
            [("user_properties.1plan", Code.NAME_INVALID)],
            id="user-property-name-pattern",
        ),
        pytest.param(
            valid_body(user_properties={"plan": {"value": "v" * 37}}),
            [("user_properties.plan.value", Code.VALUE_OUT_OF_BOUNDS)],
            id="user-property-value-37-chars",
        ),
        pytest.param(
            valid_body(user_properties={"plan": {}}),
            [("user_properties.plan.value", Code.VALUE_REQUIRED)],
            id="user-property-value-missing",
        ),
        pytest.param(
            valid_body(user_properties={"plan": "pro"}),
            [("user_properties.plan", Code.VALUE_INVALID)],
            id="user-property-not-object",
        ),
        pytest.param(
            valid_body(consent={"ad_user_data": "YES"}),
            [("consent.ad_user_data", Code.VALUE_INVALID)],
            id="consent-ad-user-data",
        ),
        pytest.param(
            valid_body(consent={"ad_personalization": "granted"}),
            [("consent.ad_personalization", Code.VALUE_INVALID)],
            id="consent-ad-personalization",
        ),
        pytest.param(
            valid_body(non_personalized_ads="yes"),
            [("non_personalized_ads", Code.VALUE_INVALID)],
            id="non-personalized-ads-not-bool",
        ),
        pytest.param(
            valid_body(device={"category": 3}),
            [("device.category", Code.VALUE_INVALID)],
            id="device-not-text",
        ),
        pytest.param(
            valid_body(user_location={"city": "c" * 101}),
            [("user_location.city", Code.VALUE_OUT_OF_BOUNDS)],
            id="user-location-too-long",
        ),
        pytest.param(
            valid_body(validation_behavior="STRICT"),
            [("validation_behavior", Code.VALUE_INVALID)],
            id="validation-behavior-snake",
        ),
        pytest.param(
            valid_body(validationBehavior="STRICT"),
            [("validation_behavior", Code.VALUE_INVALID)],
            id="validation-behavior-camel",
        ),
        pytest.param({"client_id": "1.2"}, [("events", Code.VALUE_REQUIRED)], id="events-missing"),
        pytest.param(valid_body(events=[]), [("events", Code.VALUE_REQUIRED)], id="events-empty"),
        pytest.param(
            valid_body(events={"name": "a"}), [("events", Code.VALUE_INVALID)], id="events-object"
        ),
        pytest.param(
            valid_body(events=[event() for _ in range(26)]),
            [("events", Code.EXCEEDED_MAX_ENTITIES)],
            id="events-26",
        ),
        pytest.param(
            valid_body(events=["project_click"]),
            [("events.0", Code.VALUE_INVALID)],
            id="event-text",
        ),
        pytest.param(
            valid_body(events=[{"params": {}}]),
            [("events.0.name", Code.VALUE_REQUIRED)],
            id="event-name-missing",
        ),
        pytest.param(
            valid_body(events=[event(name="e" * 41)]),
            [("events.0.name", Code.NAME_INVALID)],
            id="event-name-41-chars",
        ),
        pytest.param(
            valid_body(events=[event(name="project-click")]),
            [("events.0.name", Code.NAME_INVALID)],
            id="event-name-pattern",
        ),
        pytest.param(
            valid_body(events=[event(name="9lives")]),
            [("events.0.name", Code.NAME_INVALID)],
            id="event-name-starts-with-digit",
        ),
        pytest.param(
            valid_body(events=[event(params={f"p{i}": i for i in range(26)})]),
            [("events.0.params", Code.EXCEEDED_MAX_ENTITIES)],
            id="params-26",
        ),
        pytest.param(
            valid_body(events=[event(params={"p" * 41: 1})]),
            [("events.0.params." + "p" * 41, Code.NAME_INVALID)],
            id="param-name-41-chars",
        ),
        pytest.param(
            valid_body(events=[event(params={"project id": 1})]),
            [("events.0.params.project id", Code.NAME_INVALID)],
            id="param-name-pattern",
        ),
        pytest.param(
            valid_body(events=[event(params="project_id=1")]),
            [("events.0.params", Code.VALUE_INVALID)],
            id="params-not-object",
        ),
        pytest.param(
            valid_body(events=[event(params={"nested": {"a": 1}})]),
            [("events.0.params.nested", Code.VALUE_INVALID)],
            id="param-value-object",
        ),
        pytest.param(
            valid_body(events=[event(params={"big": 2**64})]),
            [("events.0.params.big", Code.VALUE_OUT_OF_BOUNDS)],
            id="param-value-past-int64",
        ),
        pytest.param(
            valid_body(events=[event(params={"text": "a\u0000b"})]),
            [("events.0.params.text", Code.VALUE_INVALID)],
            id="param-value-nul",
        ),
        pytest.param(
            valid_body(events=[event(params={"items": "sku-1"})]),
            [("events.0.params.items", Code.VALUE_INVALID)],
            id="items-not-a-list",
        ),
        pytest.param(
            valid_body(events=[event(params={"items": [{"item_id": "i"}] * 201})]),
            [("events.0.params.items", Code.EXCEEDED_MAX_ENTITIES)],
            id="items-201",
        ),
    ],
)
def test_mp_parse__rule_broken__exact_field_path_and_code(payload, expected):
    assert codes(payload) == expected


@pytest.mark.parametrize("name", sorted(RESERVED_EVENT_NAMES))
def test_mp_parse__reserved_event_name__name_reserved(name):
    assert codes(valid_body(events=[event(name=name)])) == [("events.0.name", Code.NAME_RESERVED)]


@pytest.mark.parametrize(
    "name", ["_private", "firebase_x", "ga_session_id", "google_x", "gtag.x", "firebase_conversion"]
)
def test_mp_parse__reserved_param_name__name_reserved(name):
    assert codes(valid_body(events=[event(params={name: 1})])) == [
        (f"events.0.params.{name}", Code.NAME_RESERVED)
    ]


@pytest.mark.parametrize(
    "name", ["_x", "firebase_x", "ga_x", "google_x", "user_id", "first_open_time"]
)
def test_mp_parse__reserved_user_property__name_reserved(name):
    assert codes(valid_body(user_properties={name: {"value": 1}})) == [
        (f"user_properties.{name}", Code.NAME_RESERVED)
    ]


@pytest.mark.parametrize(
    ("name", "limit"),
    [("project_id", 100), ("page_title", 300), ("page_referrer", 420), ("page_location", 1000)],
)
def test_mp_parse__param_value_lengths__limit_ok_one_more_out_of_bounds(name, limit):
    at_limit = valid_body(events=[event(params={name: "x" * limit})])
    over = valid_body(events=[event(params={name: "x" * (limit + 1)})])

    assert codes(at_limit) == []
    assert codes(over) == [(f"events.0.params.{name}", Code.VALUE_OUT_OF_BOUNDS)]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param(
            b'{"client_id": "1.2", "events": [{"name": "a", "params": {"x": 1, "x": 2}}]}',
            [("events.0.params.x", Code.NAME_DUPLICATED)],
            id="param-twice",
        ),
        pytest.param(
            b'{"client_id": "1.2", "user_properties": {"p": {"value": 1}, "p": {"value": 2}},'
            b' "events": [{"name": "a"}]}',
            [("user_properties.p", Code.NAME_DUPLICATED)],
            id="user-property-twice",
        ),
        pytest.param(
            b'{"client_id": "1.2", "client_id": "3.4", "events": [{"name": "a"}]}',
            [("client_id", Code.NAME_DUPLICATED)],
            id="body-field-twice",
        ),
        pytest.param(
            b'{"client_id": "1.2", "validation_behavior": "RELAXED",'
            b' "validationBehavior": "RELAXED", "events": [{"name": "a"}]}',
            [("validation_behavior", Code.NAME_DUPLICATED)],
            id="both-spellings",
        ),
        pytest.param(
            b'{"client_id": "1.2", "events": [{"name": "a", "name": "b"}]}',
            [("events.0.name", Code.NAME_DUPLICATED)],
            id="event-field-twice",
        ),
    ],
)
def test_mp_parse__repeated_name__name_duplicated(raw, expected):
    assert codes(raw) == expected


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        pytest.param(b"", Code.VALUE_REQUIRED, id="empty"),
        pytest.param(b"{not json", Code.VALUE_INVALID, id="malformed"),
        pytest.param(b'[{"client_id": "1.2"}]', Code.VALUE_INVALID, id="not-an-object"),
        pytest.param(b'{"client_id": "\xff\xfe"}', Code.VALUE_INVALID, id="not-utf8"),
        pytest.param(b'{"client_id": NaN}', Code.VALUE_INVALID, id="nan-literal"),
        pytest.param(b"[" * 100_000 + b"]" * 100_000, Code.VALUE_INVALID, id="nested-deep"),
    ],
)
def test_mp_parse__unusable_body__root_message_whole_body_rejected(raw, code):
    result = mp_parse(raw, now=NOW)

    assert [(m.field_path, m.validation_code) for m in result.messages] == [("", code)]
    assert result.events == []
    assert len(result.rejected) == 1
    assert result.rejected[0].reasons[0]["code"] == code


@pytest.mark.parametrize("spelling", ["validation_behavior", "validationBehavior"])
def test_mp_parse__enforce_recommendations_either_spelling__recommendations_checked(spelling):
    payload = valid_body(
        **{spelling: "ENFORCE_RECOMMENDATIONS"},
        events=[
            event(name="purchase", params={"value": 9.5}),
            event(name="purchase", params={"value": 9.5, "currency": "eur"}),
            event(name="view_item", params={"items": []}),
            event(name="view_item", params={"items": [{"price": 1}]}),
        ],
    )

    result = parse(payload)

    assert result.validation_behavior == "ENFORCE_RECOMMENDATIONS"
    assert [(m.field_path, m.validation_code) for m in result.messages] == [
        ("events.0.params.currency", Code.VALUE_REQUIRED),
        ("events.1.params.currency", Code.VALUE_INVALID),
        ("events.2.params.items", Code.VALUE_REQUIRED),
        ("events.3.params.items.0", Code.VALUE_REQUIRED),
    ]


@pytest.mark.parametrize("behavior", [None, "RELAXED"])
def test_mp_parse__relaxed__recommendations_not_enforced(behavior):
    payload = valid_body(events=[event(name="purchase", params={"value": 9.5, "currency": "eur"})])
    if behavior:
        payload["validation_behavior"] = behavior

    result = parse(payload)

    assert result.messages == []
    assert result.validation_behavior == "RELAXED"


def test_mp_parse__camel_case_fields__read_like_snake_case():
    payload = {
        "clientId": "1.2",
        "userId": "member-7",
        "timestampMicros": NOW_MICROS - HOUR_MICROS,
        "events": [{"name": "a", "timestampMicros": NOW_MICROS - 2 * HOUR_MICROS}],
    }

    result = parse(payload)

    assert result.messages == []
    assert result.events[0].user_pseudo_id == "1.2"
    assert result.events[0].occurred_at == NOW - timedelta(hours=2)
    assert result.traits == {"user_id": "member-7"}


def test_mp_parse__event_mapping__client_id_params_session_and_pages():
    params = {
        "session_id": "1764400000",
        "page_location": "https://portfolio.example/projects",
        "page_referrer": "https://www.linkedin.com/",
        "engagement_time_msec": 1200,
        "empty": None,
    }

    (result,) = parse(valid_body(events=[event(name="page_view", params=params)])).events

    assert result.user_pseudo_id == "123456.7654321"
    assert result.event_name == "page_view"
    assert result.event_params == {k: v for k, v in params.items() if v is not None}
    assert result.session_id == "1764400000"
    assert result.page_location == "https://portfolio.example/projects"
    assert result.page_referrer == "https://www.linkedin.com/"


@pytest.mark.parametrize(
    "value",
    [
        NOW_MICROS - HOUR_MICROS,
        (NOW_MICROS - HOUR_MICROS) // 1000,
        (NOW_MICROS - HOUR_MICROS) // 10**6,
    ],
    ids=["micros", "millis", "seconds"],
)
def test_mp_parse__timestamp_units__normalised(value):
    (result,) = parse(valid_body(events=[event(timestamp_micros=value)])).events

    assert result.occurred_at == NOW - timedelta(hours=1)


def test_mp_parse__event_then_body_then_now__occurred_at_precedence():
    body_time = NOW_MICROS - 2 * HOUR_MICROS
    payload = valid_body(
        timestamp_micros=body_time,
        events=[event(timestamp_micros=NOW_MICROS - HOUR_MICROS), event()],
    )

    first, second = parse(payload).events
    without_times = parse(valid_body(events=[event(), event()])).events

    assert first.occurred_at == NOW - timedelta(hours=1)
    assert second.occurred_at == NOW - timedelta(hours=2)
    assert without_times[0].occurred_at == NOW
    # alike events of one request stay distinct and in order
    assert without_times[1].occurred_at == NOW + timedelta(microseconds=1)


def test_mp_parse__one_bad_event__others_kept_bad_one_dead_lettered_replayable():
    payload = valid_body(
        user_id="member-7",
        events=[event(), event(name="session_start"), event(name="deep_read")],
    )

    result = parse(payload)

    assert [e.event_name for e in result.events] == ["project_click", "deep_read"]
    (rejected,) = result.rejected
    assert rejected.payload == {
        "client_id": "123456.7654321",
        "user_id": "member-7",
        "events": [event(name="session_start")],
    }
    assert rejected.reasons == [
        {
            "field": "events.1.name",
            "message": "'session_start' is a reserved event name.",
            "code": "NAME_RESERVED",
        }
    ]


def test_mp_parse__request_level_error__nothing_kept_whole_body_one_dead_letter():
    payload = valid_body(user_id="u" * 300, events=[event(), event(name="session_start")])

    result = parse(payload)

    assert result.events == []
    (rejected,) = result.rejected
    assert rejected.payload == payload
    assert [r["field"] for r in rejected.reasons] == ["user_id", "events.1.name"]


def test_mp_parse__request_properties__traits_for_the_visitor():
    payload = valid_body(
        user_id="member-7",
        user_properties={"favorite_stack": {"value": "django"}, "visits": {"value": 3}},
        consent={"ad_user_data": "GRANTED", "ad_personalization": "DENIED"},
        non_personalized_ads=False,
        user_location={"city": "Oslo", "country_id": "NO"},
        device={"category": "desktop", "language": "en"},
        user_agent="Mozilla/5.0",
    )

    result = parse(payload)

    assert result.traits_by_visitor == {
        "123456.7654321": {
            "user_id": "member-7",
            "user_properties.favorite_stack": "django",
            "user_properties.visits": 3,
            "consent.ad_user_data": "GRANTED",
            "consent.ad_personalization": "DENIED",
            "non_personalized_ads": False,
            "user_location.city": "Oslo",
            "user_location.country_id": "NO",
            "device.category": "desktop",
            "device.language": "en",
            "user_agent": "Mozilla/5.0",
        }
    }


def test_mp_parse__all_events_invalid__no_traits_to_merge():
    result = parse(valid_body(user_id="member-7", events=[event(name="error")]))

    assert result.traits_by_visitor == {}


def test_mp_parse__unstorable_names__messages_made_storable():
    result = mp_parse(
        b'{"client_id": "1.2", "events": [{"name": "a", "params": {"k\\u0000\\udc00": 1}}]}',
        now=NOW,
    )

    (message,) = result.messages
    assert message.field_path == "events.0.params.k\ufffd\ufffd"
    assert message.validation_code == Code.NAME_INVALID


def test_mp_parse__huge_name__message_shortened():
    (message,) = parse(valid_body(events=[event(params={"p" * 5000: 1})])).messages

    assert len(message.field_path) == 300
    assert message.field_path.endswith("…")


def test_mp_parse__unstorable_text__dead_letter_payload_made_storable():
    result = mp_parse(
        b'{"client_id": "1.2", "events": [{"name": "a", "params": {"t": "x\\u0000\\ud800"}}]}',
        now=NOW,
    )

    (rejected,) = result.rejected
    assert rejected.payload["events"][0]["params"]["t"] == "x\ufffd\ufffd"


# --- fuzz -------------------------------------------------------------------------------------

odd_text = st.text(st.characters() | st.sampled_from(["\x00", "\ud800", "\udfff"]), max_size=50)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | odd_text,
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(odd_text, children, max_size=5)
    ),
    max_leaves=12,
)
names = (
    st.sampled_from(
        ["project_click", "page_view", "session_start", "_x", "ga_id", "x" * 41, "a-b", "", "items"]
    )
    | odd_text
)
good_names = st.sampled_from(["project_click", "page_view", "deep_read", "purchase"])
good_values = st.text(max_size=20) | st.integers(-1000, 1000) | st.booleans()
good_params = st.dictionaries(
    st.sampled_from(["project_id", "page_location", "session_id", "value", "currency"])
    | st.from_regex(r"[a-z][a-z0-9_]{0,10}", fullmatch=True),
    good_values,
    max_size=6,
)
timestamps = st.integers(NOW_MICROS - 100 * HOUR_MICROS, NOW_MICROS + HOUR_MICROS)
Strategies = dict[str, st.SearchStrategy[Any]]
good_event = st.fixed_dictionaries(
    Strategies(name=good_names),
    optional=Strategies(params=good_params, timestamp_micros=timestamps),
)
wild_event = st.fixed_dictionaries(
    {},
    optional={
        "name": names | json_values,
        "params": st.dictionaries(names, json_values, max_size=30) | json_values,
        "timestamp_micros": timestamps | json_values,
    },
)
# Mostly GA4-shaped: a valid envelope with some bad events, now and then a bad field.
mp_bodies = st.fixed_dictionaries(
    Strategies(
        client_id=st.sampled_from(["123456.7654321", "abc-DEF_9"]),
        events=st.lists(good_event | wild_event | json_values, min_size=1, max_size=26),
    ),
    optional={
        "user_id": st.text(max_size=300) | json_values,
        "timestamp_micros": timestamps,
        "user_properties": st.dictionaries(
            names, st.fixed_dictionaries({"value": good_values | json_values}), max_size=26
        ),
        "consent": st.fixed_dictionaries(
            {}, optional={"ad_user_data": st.sampled_from(["GRANTED", "DENIED", "MAYBE"])}
        ),
        "device": st.dictionaries(st.sampled_from(["category", "language", "x"]), good_values),
        "validationBehavior": st.sampled_from(["RELAXED", "ENFORCE_RECOMMENDATIONS", "X"]),
    },
)
# Anything at all where the fields go.
wild_bodies = st.fixed_dictionaries(
    {},
    optional={
        "client_id": json_values,
        "user_id": json_values,
        "timestamp_micros": json_values,
        "user_properties": json_values,
        "consent": json_values,
        "user_location": json_values,
        "device": json_values,
        "validation_behavior": json_values,
        "events": st.lists(wild_event | json_values, max_size=30) | json_values,
    },
)


def assert_storable(value: Any) -> None:
    text = json.dumps(value, allow_nan=False, ensure_ascii=False)
    text.encode("utf-8")  # no lone surrogates
    assert "\x00" not in text


def assert_well_formed(result: Any, payload: Any = None) -> None:
    assert all(m.validation_code in set(Code) for m in result.messages)
    assert all(m.as_ga4()["fieldPath"] is not None for m in result.messages)
    assert bool(result.messages) == bool(result.rejected)
    for item in result.rejected:
        assert item.reasons
        assert_storable(item.payload)
        assert_storable(item.reasons)
    for e in result.events:
        assert VISITOR_ID_RE.fullmatch(e.user_pseudo_id)
        assert_storable(e.event_params)
        assert_storable([e.event_name, e.session_id, e.page_location, e.page_referrer])
    assert_storable(result.traits)
    if isinstance(payload, dict) and isinstance(payload.get("events"), list):
        # a bad envelope is one dead letter; a good one keeps or dead-letters every event
        whole_body = not result.events and len(result.rejected) <= 1
        assert whole_body or len(result.events) + len(result.rejected) == len(payload["events"])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2_000))
def test_mp_parse__arbitrary_bytes__never_raises(raw):
    assert_well_formed(mp_parse(raw, now=NOW))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(json_values)
def test_mp_parse__arbitrary_json__never_raises(value):
    assert_well_formed(mp_parse(json.dumps(value).encode(), now=NOW), value)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mp_bodies)
def test_mp_parse__mostly_valid_bodies__never_raises_every_event_accounted(payload):
    assert_well_formed(mp_parse(json.dumps(payload).encode(), now=NOW), payload)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(wild_bodies)
def test_mp_parse__garbage_in_every_field__never_raises(payload):
    assert_well_formed(mp_parse(json.dumps(payload).encode(), now=NOW), payload)
