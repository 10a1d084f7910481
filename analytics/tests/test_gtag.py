"""The gtag.js /g/collect hit parser: query + body lines → events, traits, per-line errors."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analytics.gtag import MAX_EVENTS_PER_HIT, MAX_FIELDS_PER_LINE, gtag_parse
from analytics.measurement_protocol import VISITOR_ID_RE, Code

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
QUERY = urlencode(
    {
        "v": "2",
        "tid": "G-TEST123",
        "cid": "123456.7654321",
        "sid": "1764400000",
        "sct": "3",
        "seg": "1",
        "dl": "https://portfolio.example/",
        "dt": "Portfolio",
        "dr": "https://www.linkedin.com/",
        "ul": "en-us",
        "sr": "1920x1080",
        "_p": "123",
        "_s": "2",
    }
)


def parse(body: bytes = b"", query: str = QUERY) -> Any:
    return gtag_parse(query=query, body=body, now=NOW)


def line(**fields: str) -> bytes:
    return urlencode(fields).encode()


def codes(result: Any) -> dict[int | None, list[tuple[str, str]]]:
    return {
        number: [(r["field"], r["code"]) for r in reasons]
        for number, reasons in result.errors_by_line.items()
    }


def test_gtag_parse__multi_line_body__one_event_per_line_sharing_query_fields():
    body = b"\n".join(
        [
            line(en="page_view"),
            line(en="project_click", **{"ep.project_id": "llm-router"}),
            line(en="scroll_depth", dl="https://portfolio.example/projects"),
        ]
    )

    result = parse(body)

    assert result.rejected == []
    assert [e.event_name for e in result.events] == ["page_view", "project_click", "scroll_depth"]
    first, second, third = result.events
    assert {e.user_pseudo_id for e in result.events} == {"123456.7654321"}
    assert {e.session_id for e in result.events} == {"1764400000"}
    assert first.event_params == {
        "ga_session_id": 1764400000,
        "ga_session_number": 3,
        "session_engaged": 1,
        "page_location": "https://portfolio.example/",
        "page_title": "Portfolio",
        "page_referrer": "https://www.linkedin.com/",
    }
    assert second.event_params["project_id"] == "llm-router"
    # a line's fields override the query's
    assert third.page_location == "https://portfolio.example/projects"
    assert third.event_params["page_location"] == "https://portfolio.example/projects"
    assert first.page_referrer == "https://www.linkedin.com/"
    # gtag sends no time per event: now, lines a microsecond apart in body order
    assert [e.occurred_at for e in result.events] == [
        NOW + timedelta(microseconds=i) for i in range(3)
    ]
    assert result.measurement_id == "G-TEST123"


def test_gtag_parse__crlf_and_blank_lines__split_and_numbered_by_body_line():
    body = line(en="a") + b"\r\n\r\n" + line(en="b") + b"\r\n"

    result = parse(body)

    assert [e.event_name for e in result.events] == ["a", "b"]


def test_gtag_parse__ep_epn_up_upn__params_numbers_and_user_properties():
    body = line(
        en="deep_read",
        uid="member-7",
        **{
            "ep.project_id": "llm-router",
            "ep.count": "12",
            "epn.duration": "4200",
            "epn.ratio": "0.75",
            "up.favorite_stack": "django",
            "upn.visits": "3",
            "_et": "1500",
        },
    )

    result = parse(body)

    (event,) = result.events
    assert event.event_params["project_id"] == "llm-router"
    assert event.event_params["count"] == "12"  # ep. is a string, even when it looks numeric
    assert event.event_params["duration"] == 4200
    assert event.event_params["ratio"] == 0.75
    assert event.event_params["engagement_time_msec"] == 1500
    assert "favorite_stack" not in event.event_params
    assert result.traits_by_visitor == {
        "123456.7654321": {
            "user_properties.favorite_stack": "django",
            "user_properties.visits": 3,
            "user_id": "member-7",
            "device.language": "en-us",
            "device.screen_resolution": "1920x1080",
        }
    }


def test_gtag_parse__bad_lines__errors_by_line_number_good_lines_kept():
    body = b"\n".join(
        [
            line(en="page_view"),  # 1
            line(en="deep_read", **{"epn.duration": "long"}),  # 2
            b"",  # 3
            line(**{"ep.project_id": "x"}),  # 4: no event name
            line(en="bad name!"),  # 5
            line(en="ok", **{"ep.bad-name": "x"}),  # 6
            line(en="project_click"),  # 7
        ]
    )

    result = parse(body)

    assert [e.event_name for e in result.events] == ["page_view", "project_click"]
    assert codes(result) == {
        2: [("epn.duration", Code.VALUE_INVALID)],
        4: [("en", Code.VALUE_REQUIRED)],
        5: [("en", Code.NAME_INVALID)],
        6: [("ep.bad-name", Code.NAME_INVALID)],
    }
    rejected = {r.line_number: r for r in result.rejected}
    assert rejected[4].payload == {"query": QUERY, "line": "ep.project_id=x"}
    assert rejected[4].context == "g/collect"


def test_gtag_parse__empty_body__query_string_is_the_event():
    result = parse(b"", query=QUERY + "&en=page_view")

    (event,) = result.events
    assert event.event_name == "page_view"
    assert event.page_location == "https://portfolio.example/"


def test_gtag_parse__query_only_hit_invalid__dead_letter_without_line_number():
    result = parse(b"\n\n", query="v=2&tid=G-TEST123&en=page_view")

    assert codes(result) == {None: [("cid", Code.VALUE_REQUIRED)]}
    assert result.rejected[0].payload == {"query": "v=2&tid=G-TEST123&en=page_view"}


def test_gtag_parse__query_lacks_client_id__every_line_rejected():
    result = parse(line(en="a") + b"\n" + line(en="b"), query="v=2&tid=G-TEST123")

    assert result.events == []
    assert codes(result) == {1: [("cid", Code.VALUE_REQUIRED)], 2: [("cid", Code.VALUE_REQUIRED)]}


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        pytest.param({"v": "1"}, [("v", Code.VALUE_INVALID)], id="protocol-v1"),
        pytest.param({"tid": "G-OTHER"}, [("tid", Code.VALUE_INVALID)], id="other-stream"),
        pytest.param({"cid": "a b"}, [("cid", Code.VALUE_INVALID)], id="client-id-rule"),
        pytest.param({"sid": "9" * 101}, [("sid", Code.VALUE_OUT_OF_BOUNDS)], id="long-session"),
        pytest.param({"sct": "three"}, [("sct", Code.VALUE_INVALID)], id="session-count"),
        pytest.param({"_et": "1.5s"}, [("_et", Code.VALUE_INVALID)], id="engagement"),
        pytest.param({"upn.visits": "many"}, [("upn.visits", Code.VALUE_INVALID)], id="upn"),
        pytest.param({"epn.x": "inf"}, [("epn.x", Code.VALUE_INVALID)], id="epn-infinite"),
        pytest.param({"epn.x": "1e999"}, [("epn.x", Code.VALUE_INVALID)], id="epn-overflow"),
        pytest.param({"uid": "u" * 257}, [("uid", Code.VALUE_OUT_OF_BOUNDS)], id="user-id-257"),
        pytest.param({"ep." + "p" * 41: "x"}, [("ep." + "p" * 41, Code.NAME_INVALID)], id="name"),
    ],
)
def test_gtag_parse__field_rule_broken__line_error_with_code(fields, expected):
    result = parse(line(en="page_view", **fields))

    assert result.events == []
    assert codes(result) == {1: expected}


@pytest.mark.parametrize(
    "raw_line",
    [
        pytest.param(b"en=page_view&ep.title=caf\xe9", id="latin-1-byte"),
        pytest.param(b"en=page_view&ep.title=%E9t%E9", id="percent-encoded-latin-1"),
        pytest.param(b"en=page_view&ep.title=a%00b", id="nul"),
        pytest.param(b"en=page_view&ep.title=%ED%A0%80", id="encoded-surrogate"),
    ],
)
def test_gtag_parse__undecodable_text__value_invalid_payload_storable(raw_line):
    result = parse(raw_line)

    assert codes(result) == {1: [("ep.title", Code.VALUE_INVALID)]}
    assert "\x00" not in json.dumps(result.rejected[0].payload)


def test_gtag_parse__too_many_fields__exceeded_max_entities():
    raw_line = b"&".join(b"ep.p%d=1" % i for i in range(MAX_FIELDS_PER_LINE + 1))

    result = parse(raw_line)

    assert result.events == []
    assert codes(result)[1][0] == ("", Code.EXCEEDED_MAX_ENTITIES)


def test_gtag_parse__more_lines_than_allowed__rest_one_dead_letter():
    body = b"\n".join(line(en="e", **{"epn.i": str(i)}) for i in range(MAX_EVENTS_PER_HIT + 3))

    result = parse(body)

    assert len(result.events) == MAX_EVENTS_PER_HIT
    (overflow,) = result.rejected
    assert overflow.line_number == MAX_EVENTS_PER_HIT + 1
    assert overflow.reasons[0]["code"] == Code.EXCEEDED_MAX_ENTITIES
    assert overflow.payload["lines"].count("en=e") == 3


def test_gtag_parse__repeated_field__last_wins():
    (event,) = parse(b"en=a&ep.x=1&ep.x=2").events

    assert event.event_params["x"] == "2"


def test_gtag_parse__plus_and_percent_encoding__decoded():
    (event,) = parse(b"en=a&ep.q=hello+w%C3%B6rld%26more").events

    assert event.event_params["q"] == "hello wörld&more"


def test_gtag_parse__latin1_wsgi_query_string__decoded_as_utf8():
    # WSGI hands Django the raw query bytes decoded as Latin-1
    query = "v=2&cid=1.2&en=a&dt=" + "Wörld".encode().decode("latin-1")

    (event,) = parse(b"", query=query).events

    assert event.event_params["page_title"] == "Wörld"


def test_gtag_parse__ga_prefixed_params__allowed_unlike_mp():
    (event,) = parse(line(en="session_start", **{"ep.ga_custom": "x"})).events

    assert event.event_name == "session_start"
    assert event.event_params["ga_custom"] == "x"


# --- fuzz -------------------------------------------------------------------------------------

field_names = st.sampled_from(
    [
        *("v", "tid", "cid", "sid", "sct", "seg", "_et", "en", "dl", "dr", "dt", "uid", "ul", "sr"),
        *("ep.a", "epn.b", "up.c", "upn.d", "ep.", "epn.bad-name", "x"),
    ]
)
field_values = st.sampled_from(
    ["2", "1.2", "page_view", "12", "-3.5", "1e999", "", "%00", "%ff", "a b"]
) | st.text(max_size=20)
base_fields = st.sampled_from(
    [[("en", "page_view"), ("cid", "1.2")], [("en", "deep_read")], [("cid", "1.2")], []]
)
hit_lines = st.tuples(base_fields, st.lists(st.tuples(field_names, field_values), max_size=8)).map(
    lambda parts: urlencode(parts[0] + parts[1]).encode()
)
bodies = st.lists(hit_lines | st.binary(max_size=60), max_size=8).map(b"\n".join) | st.binary(
    max_size=500
)
queries = st.sampled_from([QUERY, "", "v=2&cid=1.2", "cid=%ZZ&en=%ff", "en=a&cid=1.2"]) | st.text(
    max_size=80
)


def assert_storable(value: Any) -> None:
    text = json.dumps(value, allow_nan=False, ensure_ascii=False)
    text.encode("utf-8")
    assert "\x00" not in text


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(queries, bodies)
def test_gtag_parse__arbitrary_query_and_body__never_raises_every_line_accounted(query, body):
    result = gtag_parse(query=query, body=body, now=NOW)

    non_blank = [raw for raw in body.split(b"\n") if raw.strip()]
    assert len(result.events) + len(result.rejected) == max(1, len(non_blank))
    for item in result.rejected:
        assert item.reasons
        assert all(reason["code"] in set(Code) for reason in item.reasons)
        assert_storable(item.payload)
        assert_storable(item.reasons)
    for event in result.events:
        assert VISITOR_ID_RE.fullmatch(event.user_pseudo_id)
        assert_storable(event.event_params)
        assert_storable([event.event_name, event.session_id, event.page_location])
    assert_storable(result.traits_by_visitor)
