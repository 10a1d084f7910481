"""Property-based fuzzing of every parser that reads what strangers send: the Measurement
Protocol body, gtag hits, the events API payload and GA4 export lines.

Whatever the input: no exception escapes, every event that comes out is one we can store
(valid name and visitor id, finite numbers, text PostgreSQL accepts), and every refusal is
reported with a reason, at line level where the format has lines.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analytics import ga4_export
from analytics.gtag import gtag_parse
from analytics.measurement_protocol import mp_parse
from analytics.services import EventIn, RejectedIn
from analytics.validation import (
    EVENT_NAME_RE,
    USER_PSEUDO_ID_RE,
    has_unstorable_text,
    validate_payload,
)

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# JSON-shaped values with the awkward corners: NUL and surrogates in text, huge and negative
# numbers, deep nesting, wrong types where objects are expected.
json_scalars = (
    st.text(max_size=40)
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.booleans()
    | st.none()
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)
names = st.sampled_from(
    ["page_view", "project_click", "", "x" * 41, "bad name", "_reserved", "ga_x"]
)


def assert_storable_event(event: EventIn) -> None:
    assert EVENT_NAME_RE.fullmatch(event.event_name)
    assert USER_PSEUDO_ID_RE.fullmatch(event.user_pseudo_id)
    assert isinstance(event.event_params, dict)
    assert not has_unstorable_text(event.event_params)
    json.dumps(event.event_params, allow_nan=False)  # finite numbers only
    assert event.occurred_at.tzinfo is not None


def assert_reported(item: RejectedIn) -> None:
    assert item.reasons
    for reason in item.reasons:
        assert reason["message"]
        assert reason["code"]
    json.dumps(item.payload, allow_nan=False)
    assert not has_unstorable_text(item.payload)


# --- Measurement Protocol --------------------------------------------------------------------
@FUZZ
@given(st.binary(max_size=400))
def test_mp_parse_survives_any_bytes(body):
    result = mp_parse(body, now=NOW)
    assert result.events or result.messages  # a refusal always says why
    for event in result.events:
        assert_storable_event(event)
    for item in result.rejected:
        assert_reported(item)


@FUZZ
@given(
    st.fixed_dictionaries(
        {},
        optional={
            "client_id": json_scalars,
            "user_id": json_scalars,
            "timestamp_micros": json_scalars,
            "user_properties": json_values,
            "consent": json_values,
            "events": st.lists(
                st.fixed_dictionaries(
                    {"name": names | json_scalars},
                    optional={
                        "params": st.dictionaries(st.text(max_size=12), json_values, max_size=5)
                    },
                ),
                max_size=4,
            )
            | json_values,
        },
    )
)
def test_mp_parse_survives_any_request_shape(request_body):
    body = json.dumps(request_body).encode()
    result = mp_parse(body, now=NOW)
    for event in result.events:
        assert_storable_event(event)
    for item in result.rejected:
        assert_reported(item)
    for message in result.messages:
        assert message.description
        assert str(message.validation_code)


# --- gtag.js hits -------------------------------------------------------------------------------
query_keys = st.sampled_from(
    [
        "v",
        "tid",
        "cid",
        "en",
        "_et",
        "ep.project_id",
        "epn.value",
        "up.role",
        "dl",
        "dr",
        "_p",
        "sid",
        "x",
    ]
)
query_values = st.text(max_size=20) | st.sampled_from(
    ["2", "G-TEST123", "123.456", "page_view", "%", "%ZZ", "%00", "1e400"]
)


@FUZZ
@given(
    st.lists(st.tuples(query_keys, query_values), max_size=8),
    st.lists(st.lists(st.tuples(query_keys, query_values), max_size=5), max_size=5),
    st.binary(max_size=60),
)
def test_gtag_parse_survives_any_hit_and_refuses_line_by_line(query_pairs, body_lines, noise):
    from urllib.parse import urlencode

    query = urlencode(query_pairs)
    body = b"\n".join(urlencode(line).encode() for line in body_lines)
    for raw in (body, body + b"\n" + noise):
        result = gtag_parse(query=query, body=raw, now=NOW)
        for event in result.events:
            assert_storable_event(event)
        lines_in_body = [line for line in raw.split(b"\n") if line.strip()]
        for item in result.rejected:
            assert_reported(item)
            if item.line_number is not None:
                assert 1 <= item.line_number <= len(raw.split(b"\n"))
        # Every line is either an event or its own dead letter (query-only hits count as one).
        assert len(result.events) + len(result.rejected) >= min(1, len(lines_in_body))


@FUZZ
@given(st.binary(max_size=200), st.binary(max_size=200))
def test_gtag_parse_survives_raw_bytes(query, body):
    result = gtag_parse(query=query, body=body, now=NOW)
    for event in result.events:
        assert_storable_event(event)
    for item in result.rejected:
        assert_reported(item)


# --- the events API -----------------------------------------------------------------------------
@FUZZ
@given(
    json_values
    | st.fixed_dictionaries(
        {  # type: ignore[misc]  # hypothesis cannot name this dict's value type
            "event_name": names | json_scalars,
            "user_pseudo_id": json_scalars | st.just("abc.123"),
        },
        optional={
            "event_params": json_values,
            "event_timestamp": json_scalars,
            "event_id": json_scalars,
        },
    )
    | st.fixed_dictionaries({"events": st.lists(json_values, max_size=3) | json_scalars})
)
def test_events_payload_validation_survives_any_json(data):
    result = validate_payload(data, max_batch=500, max_future=timedelta(hours=72), now=NOW)
    assert bool(result.errors) != bool(result.events) or (result.errors and result.is_batch)
    for event in result.events:
        assert_storable_event(event)
    for field, messages in result.errors.items():
        assert isinstance(field, str)
        assert messages
        assert all(isinstance(message, str) and message for message in messages)


# --- GA4 export lines ---------------------------------------------------------------------------
export_rows = st.fixed_dictionaries(
    {},
    optional={
        "event_name": names | json_scalars,
        "user_pseudo_id": st.just("123.456") | json_scalars,
        "event_timestamp": st.just("1764400000000000") | json_scalars,
        "event_params": st.lists(
            st.fixed_dictionaries(
                {"key": st.text(max_size=10) | json_scalars, "value": json_values}
            ),
            max_size=4,
        )
        | json_values,
        "user_properties": json_values,
        "device": json_values,
    },
)


@FUZZ
@given(
    st.lists(
        export_rows.map(lambda row: json.dumps(row).encode()) | st.binary(max_size=80), max_size=8
    )
)
def test_export_lines_each_become_an_event_or_their_own_dead_letter(lines):
    batch = ga4_export._Batch()
    copy_batch = ga4_export._Batch(copy=True)
    taken = 0
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        taken += 1
        ga4_export._take_line(batch, line + b"\n", number, context="fuzz")
        ga4_export._take_line(copy_batch, line + b"\n", number, context="fuzz")
    assert len(batch.events) == batch.event_count
    assert batch.event_count + len(batch.rejects) == taken
    summary = ga4_export.ImportSummary()
    ga4_export._account(batch, summary)
    assert summary.rows_rejected == len(batch.rejects)
    for event in batch.events:
        assert_storable_event(event)
    for item in batch.rejects:
        assert_reported(item)
        assert item.line_number is not None
    # The COPY path takes and refuses the same lines.
    assert copy_batch.event_count == batch.event_count
    assert copy_batch.rejects == batch.rejects
