"""Black-box tests of /mp/collect, /debug/mp/collect and /g/collect (API.md, INTEGRATIONS.md)."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import pytest
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analytics.models import Event, MeasurementStream, RejectedEvent, Visitor

pytestmark = pytest.mark.django_db

MEASUREMENT_ID = "G-TEST123"
SECRET = "s3cret-value"
CLIENT_ID = "123456.7654321"


@pytest.fixture
def stream() -> MeasurementStream:
    return MeasurementStream.objects.create(
        name="portfolio", measurement_id=MEASUREMENT_ID, api_secret=SECRET
    )


@pytest.fixture
def no_rate_limit(settings):
    settings.RATELIMIT_ENABLE = False


def mp_url(debug: bool = False, measurement_id: str = MEASUREMENT_ID, secret: str = SECRET) -> str:
    query = urlencode({"measurement_id": measurement_id, "api_secret": secret})
    return f"{'/debug' if debug else ''}/mp/collect?{query}"


def post_mp(client, body: Any, *, debug: bool = False, content_type="application/json", **kw):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return client.post(mp_url(debug, **kw), data=data, content_type=content_type)


def micros_ago(hours: float) -> int:
    return int((time.time() - hours * 3600) * 1_000_000)


def mp_body(**overrides: Any) -> dict[str, Any]:
    return {
        "client_id": CLIENT_ID,
        "events": [{"name": "project_click", "params": {"project_id": "llm-router"}}],
        **overrides,
    }


# --- /mp/collect ------------------------------------------------------------------------------


def test_mp_collect__valid_events__204_stored_as_mp_with_normalised_times(client, stream):
    at = micros_ago(1) // 1_000_000 * 1_000_000 + 123_456
    body = mp_body(
        user_id="member-7",
        user_properties={"favorite_stack": {"value": "django"}},
        consent={"ad_user_data": "DENIED"},
        events=[
            {
                "name": "page_view",
                "timestamp_micros": at,
                "params": {
                    "session_id": "1764400000",
                    "page_location": "https://portfolio.example/",
                    "page_referrer": "https://www.linkedin.com/",
                },
            },
            {"name": "deep_read", "params": {"project_id": "llm-router", "duration": 4200}},
        ],
    )

    response = post_mp(client, body)

    assert response.status_code == 204
    assert response.content == b""
    page_view = Event.objects.get(event_name="page_view")
    assert page_view.source == "mp"
    assert page_view.user_pseudo_id == CLIENT_ID
    assert page_view.occurred_at == datetime.fromtimestamp(at // 1_000_000, tz=UTC).replace(
        microsecond=123_456
    )
    assert page_view.session_id == "1764400000"
    assert page_view.page_location == "https://portfolio.example/"
    assert page_view.page_referrer == "https://www.linkedin.com/"
    deep_read = Event.objects.get(event_name="deep_read")
    assert deep_read.event_params == {"project_id": "llm-router", "duration": 4200}
    assert abs(deep_read.occurred_at.timestamp() - time.time()) < 60
    visitor = Visitor.objects.get(user_pseudo_id=CLIENT_ID)
    assert visitor.event_count == 2
    assert visitor.traits == {
        "user_id": "member-7",
        "user_properties.favorite_stack": "django",
        "consent.ad_user_data": "DENIED",
    }
    assert not RejectedEvent.objects.exists()


def test_mp_collect__body_timestamp__applies_to_events_without_their_own(client, stream):
    at = micros_ago(2)

    post_mp(client, mp_body(timestamp_micros=at))

    assert Event.objects.get().occurred_at.timestamp() == pytest.approx(at / 1e6, abs=1e-6)


def test_mp_collect__invalid_event_among_valid__valid_stored_invalid_dead_lettered(client, stream):
    body = mp_body(
        events=[
            {"name": "project_click"},
            {"name": "session_start"},
            {"name": "deep_read", "params": {"_secret": 1}},
        ]
    )

    response = post_mp(client, body)

    assert response.status_code == 204
    assert list(Event.objects.values_list("event_name", flat=True)) == ["project_click"]
    rejected = list(RejectedEvent.objects.order_by("id"))
    assert [r.source for r in rejected] == ["mp", "mp"]
    assert [r.reasons[0]["field"] for r in rejected] == ["events.1.name", "events.2.params._secret"]
    assert [r.reasons[0]["code"] for r in rejected] == ["NAME_RESERVED", "NAME_RESERVED"]
    assert rejected[0].payload == {"client_id": CLIENT_ID, "events": [{"name": "session_start"}]}
    assert rejected[0].context == f"mp/collect {MEASUREMENT_ID}"


def test_mp_collect__malformed_json__204_and_dead_letter(client, stream):
    response = post_mp(client, b'{"client_id": "1.2", "events": [')

    assert response.status_code == 204
    assert not Event.objects.exists()
    rejected = RejectedEvent.objects.get()
    assert rejected.source == "mp"
    assert rejected.payload == {"raw": '{"client_id": "1.2", "events": ['}
    assert rejected.reasons[0]["code"] == "VALUE_INVALID"
    assert rejected.reasons[0]["field"] == ""


def test_mp_collect__request_level_error__nothing_stored_whole_body_dead_lettered(client, stream):
    body = mp_body(client_id="not a valid id")

    response = post_mp(client, body)

    assert response.status_code == 204
    assert not Event.objects.exists()
    rejected = RejectedEvent.objects.get()
    assert rejected.payload == body
    assert rejected.reasons == [
        {
            "field": "client_id",
            "message": "Must be 1-200 characters: letters, digits, '.', '_' and '-' only.",
            "code": "VALUE_INVALID",
        }
    ]


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b"\xff\xfe\x00garbage", id="not-utf8"),
        pytest.param(
            b'{"client_id": "1.2", "events": [{"name": "a", "params": {"t": "\\u0000\\ud800"}}]}',
            id="nul-and-surrogate",
        ),
        pytest.param(b'{"client_id": "1.2", "events": [{"name": "a", "params": {"n": 1e999}}]}'),
        pytest.param(b"[" * 50_000, id="deep-nesting"),
        pytest.param(b'{"client_id": "1.2", "events": [{"name": "a", "timestamp_micros": 1e300}]}'),
    ],
)
def test_mp_collect__hostile_body__204_and_dead_letter_never_500(client, stream, raw):
    response = post_mp(client, raw)

    assert response.status_code == 204
    assert RejectedEvent.objects.count() == 1


def test_mp_collect__text_plain_without_csrf_token__accepted(stream):
    client = Client(enforce_csrf_checks=True)

    response = post_mp(client, mp_body(), content_type="text/plain;charset=UTF-8")

    assert response.status_code == 204
    assert Event.objects.count() == 1


@pytest.mark.parametrize("spelling", ["validation_behavior", "validationBehavior"])
@pytest.mark.parametrize("behavior", ["RELAXED", "ENFORCE_RECOMMENDATIONS"])
def test_mp_collect__either_validation_behavior_spelling__accepted(
    client, stream, spelling, behavior
):
    response = post_mp(client, mp_body(**{spelling: behavior}))

    assert response.status_code == 204
    assert Event.objects.count() == 1
    assert not RejectedEvent.objects.exists()


def test_mp_collect__enforce_recommendations__unrecommended_event_dead_lettered(client, stream):
    body = mp_body(
        validationBehavior="ENFORCE_RECOMMENDATIONS",
        events=[{"name": "purchase", "params": {"value": 10}}, {"name": "page_view"}],
    )

    post_mp(client, body)

    assert list(Event.objects.values_list("event_name", flat=True)) == ["page_view"]
    assert RejectedEvent.objects.get().reasons[0]["field"] == "events.0.params.currency"


@pytest.mark.parametrize(
    "query",
    [
        pytest.param({"secret": "wrong"}, id="wrong-secret"),
        pytest.param({"secret": ""}, id="no-secret"),
        pytest.param({"measurement_id": "G-UNKNOWN"}, id="unknown-stream"),
        pytest.param({"measurement_id": "G-\x00"}, id="nul-in-id"),
        pytest.param({"measurement_id": ""}, id="no-measurement-id"),
    ],
)
@pytest.mark.parametrize("debug", [False, True], ids=["collect", "debug"])
def test_mp_collect__bad_credentials__403_json_nothing_stored(client, stream, query, debug):
    response = post_mp(client, mp_body(), debug=debug, **query)

    assert response.status_code == 403
    assert response.json() == {"detail": "Unknown or inactive measurement_id, or wrong api_secret."}
    assert not Event.objects.exists()
    assert not RejectedEvent.objects.exists()


def test_mp_collect__inactive_stream__403(client, stream):
    stream.is_active = False
    stream.save()

    assert post_mp(client, mp_body()).status_code == 403


@pytest.mark.parametrize("debug", [False, True], ids=["collect", "debug"])
def test_mp_collect__body_over_limit__413_json(client, stream, settings, debug):
    settings.MP_MAX_BODY_BYTES = 200
    body = mp_body(user_id="u" * 200)

    response = post_mp(client, body, debug=debug)

    assert response.status_code == 413
    assert response.json() == {"detail": "Request body over 200 bytes."}
    assert not Event.objects.exists()


def test_mp_collect__rate_limit__429_with_retry_after(client, stream, settings):
    settings.RATELIMIT_EVENTS = "2/m"

    statuses = [post_mp(client, mp_body()).status_code for _ in range(3)]

    assert statuses[:2] == [204, 204]
    assert statuses[2] == 429


# --- /debug/mp/collect ------------------------------------------------------------------------


def test_debug_mp_collect__clean_payload__empty_messages_nothing_stored(client, stream):
    response = post_mp(client, mp_body(), debug=True)

    assert response.status_code == 200
    assert response.json() == {"validationMessages": []}
    assert not Event.objects.exists()
    assert not RejectedEvent.objects.exists()


def test_debug_mp_collect__invalid_payload__ga4_messages_nothing_stored(client, stream):
    body = mp_body(events=[{"name": "first_visit"}, {"name": "ok", "params": {"x": "y" * 101}}])

    response = post_mp(client, body, debug=True)

    assert response.status_code == 200
    assert response.json() == {
        "validationMessages": [
            {
                "fieldPath": "events.0.name",
                "description": "'first_visit' is a reserved event name.",
                "validationCode": "NAME_RESERVED",
            },
            {
                "fieldPath": "events.1.params.x",
                "description": "'x' values are at most 100 characters.",
                "validationCode": "VALUE_OUT_OF_BOUNDS",
            },
        ]
    }
    assert not RejectedEvent.objects.exists()


def test_debug_mp_collect__malformed_json__200_value_invalid(client, stream):
    response = post_mp(client, b"not json", debug=True)

    assert response.status_code == 200
    (message,) = response.json()["validationMessages"]
    assert (message["fieldPath"], message["validationCode"]) == ("", "VALUE_INVALID")


@pytest.mark.parametrize("spelling", ["validation_behavior", "validationBehavior"])
def test_debug_mp_collect__enforce_either_spelling__recommendation_reported(
    client, stream, spelling
):
    body = mp_body(
        **{spelling: "ENFORCE_RECOMMENDATIONS"},
        events=[{"name": "purchase", "params": {"value": 5, "currency": "usd"}}],
    )

    messages = post_mp(client, body, debug=True).json()["validationMessages"]

    assert [(m["fieldPath"], m["validationCode"]) for m in messages] == [
        ("events.0.params.currency", "VALUE_INVALID")
    ]


def test_debug_mp_collect__unstorable_param_name__200_and_message_storable(client, stream):
    raw = b'{"client_id": "1.2", "events": [{"name": "a", "params": {"k\\u0000\\udc00": 1}}]}'

    debug = post_mp(client, raw, debug=True)
    collect = post_mp(client, raw)

    assert debug.status_code == 200
    assert debug.json()["validationMessages"][0]["fieldPath"] == "events.0.params.k\ufffd\ufffd"
    assert collect.status_code == 204
    assert RejectedEvent.objects.get().reasons[0]["field"] == "events.0.params.k\ufffd\ufffd"


def test_debug_mp_collect__any_accept_header__json_not_406(client, stream):
    response = client.post(
        mp_url(debug=True),
        data=json.dumps(mp_body()),
        content_type="application/json",
        HTTP_ACCEPT="text/html",
    )

    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"


# --- /g/collect -------------------------------------------------------------------------------

GTAG_QUERY = urlencode(
    {
        "v": "2",
        "tid": MEASUREMENT_ID,
        "cid": CLIENT_ID,
        "sid": "1764400000",
        "dl": "https://portfolio.example/",
        "ul": "en-us",
    }
)


def post_gtag(client, body: bytes, query: str = GTAG_QUERY):
    return client.post(f"/g/collect?{query}", data=body, content_type="text/plain;charset=UTF-8")


def test_gtag_collect__multi_line_hit__204_events_stored_bad_line_dead_lettered(client, stream):
    body = b"\r\n".join(
        [
            b"en=page_view&_et=10",
            b"en=project_click&ep.project_id=llm-router&epn.position=2&up.favorite_stack=django",
            b"en=deep_read&epn.duration=long",
        ]
    )

    response = post_gtag(client, body)

    assert response.status_code == 204
    events = {e.event_name: e for e in Event.objects.all()}
    assert set(events) == {"page_view", "project_click"}
    click = events["project_click"]
    assert click.source == "gtag"
    assert click.user_pseudo_id == CLIENT_ID
    assert click.session_id == "1764400000"
    assert click.page_location == "https://portfolio.example/"
    assert click.event_params["project_id"] == "llm-router"
    assert click.event_params["position"] == 2
    assert events["page_view"].event_params["engagement_time_msec"] == 10
    rejected = RejectedEvent.objects.get()
    assert rejected.source == "gtag"
    assert rejected.line_number == 3
    assert rejected.context == f"g/collect {MEASUREMENT_ID}"
    assert rejected.reasons == [
        {"field": "epn.duration", "message": "Must be a number.", "code": "VALUE_INVALID"}
    ]
    assert Visitor.objects.get().traits == {
        "user_properties.favorite_stack": "django",
        "device.language": "en-us",
    }


def test_gtag_collect__get_single_hit__query_is_the_event(client, stream):
    response = client.get(f"/g/collect?{GTAG_QUERY}&en=page_view")

    assert response.status_code == 204
    assert Event.objects.get().event_name == "page_view"


def test_gtag_collect__head__405_nothing_stored(client, stream):
    response = client.head(f"/g/collect?{GTAG_QUERY}&en=page_view")

    assert response.status_code == 405
    assert not Event.objects.exists()


def test_gtag_collect__post_empty_body__query_is_the_event(client, stream):
    response = post_gtag(client, b"", query=f"{GTAG_QUERY}&en=scroll_depth&ep.milestone=50%25")

    assert response.status_code == 204
    assert Event.objects.get().event_params["milestone"] == "50%"


def test_gtag_collect__no_stream_configured__any_tid_accepted(client):
    response = post_gtag(client, b"en=page_view", query=GTAG_QUERY.replace(MEASUREMENT_ID, "G-X"))

    assert response.status_code == 204
    assert Event.objects.count() == 1


@pytest.mark.parametrize("method", ["get", "post"])
@pytest.mark.parametrize(
    "tid", ["G-X%00", "%00", "G-%ED%A0%80X"], ids=["nul", "only-nul", "surrogate"]
)
def test_gtag_collect__unstorable_tid_no_stream_configured__204_and_dead_letter_with_reason(
    client, method, tid
):
    # Issue 18 item 5: the tid went into the dead letter's context as sent, and PostgreSQL
    # refused the NUL (DataError, 500). GA4 answers 204 to any hit: so do we, keeping a reason.
    query = GTAG_QUERY.replace(f"tid={MEASUREMENT_ID}", f"tid={tid}")
    if method == "get":
        response = client.get(f"/g/collect?{query}")
    else:
        response = post_gtag(client, b"en=page_view", query=query)

    assert response.status_code == 204
    assert not Event.objects.exists()
    letter = RejectedEvent.objects.get()
    assert letter.reasons[0]["field"] == "tid"
    assert "\x00" not in letter.context
    assert letter.context.startswith("g/collect")
    assert "\\u0000" not in json.dumps(letter.payload)


@pytest.mark.parametrize("method", ["get", "post"])
def test_gtag_collect__nul_tid_stream_configured__403_nothing_stored(client, stream, method):
    query = GTAG_QUERY.replace(f"tid={MEASUREMENT_ID}", "tid=G-TEST123%00")
    if method == "get":
        response = client.get(f"/g/collect?{query}")
    else:
        response = post_gtag(client, b"en=page_view", query=query)

    assert response.status_code == 403
    assert not Event.objects.exists()
    assert not RejectedEvent.objects.exists()


@pytest.mark.parametrize(
    "query",
    [
        pytest.param(GTAG_QUERY.replace(MEASUREMENT_ID, "G-UNKNOWN"), id="unknown-tid"),
        pytest.param(GTAG_QUERY.replace(f"tid={MEASUREMENT_ID}&", ""), id="no-tid"),
    ],
)
def test_gtag_collect__stream_configured_tid_not_active__403(client, stream, query):
    response = post_gtag(client, b"en=page_view", query=query)

    assert response.status_code == 403
    assert response.json() == {"detail": "Unknown or inactive measurement id (tid)."}
    assert not Event.objects.exists()


def test_gtag_collect__inactive_stream__403(client, stream):
    stream.is_active = False
    stream.save()

    assert post_gtag(client, b"en=page_view").status_code == 403


def test_gtag_collect__body_over_limit__413_json(client, stream, settings):
    settings.GTAG_MAX_BODY_BYTES = 100

    response = post_gtag(client, b"en=page_view&ep.x=" + b"y" * 100)

    assert response.status_code == 413
    assert response.json() == {"detail": "Request body over 100 bytes."}


def test_gtag_collect__without_csrf_token__accepted(stream):
    client = Client(enforce_csrf_checks=True)

    assert post_gtag(client, b"en=page_view").status_code == 204


# --- never 500 --------------------------------------------------------------------------------


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    raw=st.binary(max_size=300)
    | st.text(max_size=100).map(str.encode)
    | st.sampled_from(
        [
            b'{"client_id": "1.2", "events": [{"name": "a", "params": {"s": "\\u0000"}}]}',
            b'{"client_id": "1.2", "events": [{"name": "a", "params": {"n": 1e400}}]}',
            b'{"client_id": "1.2", "events": [{"name": "a", "params": {"n": 99999999999999999}}]}',
        ]
    )
)
def test_mp_collect__arbitrary_body__never_500(client, stream, no_rate_limit, raw):
    assert post_mp(client, raw).status_code == 204
    assert post_mp(client, raw, debug=True).status_code == 200


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    query=st.text(max_size=60).map(lambda q: f"{GTAG_QUERY}&{q}"),
    body=st.binary(max_size=300) | st.sampled_from([b"en=a&ep.x=%00", b"en=a&ep.x=%ff", b"\n\n"]),
)
def test_gtag_collect__arbitrary_hit__never_500(client, stream, no_rate_limit, query, body):
    assert post_gtag(client, body, query=query).status_code in (204, 403)
