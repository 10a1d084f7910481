"""Deeply nested JSON bodies: every endpoint that parses JSON refuses nesting past
JSON_MAX_DEPTH with its documented answer (400 {"detail"} for the JSON APIs, GA4's 204 and a
validation message for the Measurement Protocol), before any recursive walk can fail."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

import pytest
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analytics.models import MeasurementStream, RejectedEvent
from analytics.validation import has_unstorable_text
from portfolio.api.json_depth import json_too_deep

pytestmark = pytest.mark.django_db

LIMIT = 32  # JSON_MAX_DEPTH's default
FUZZ = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
depths = st.integers(min_value=1, max_value=6000)
patterns = st.integers(min_value=0, max_value=2**16 - 1)


def nested_text(depth: int, pattern: int) -> str:
    """`depth` containers, each a list or an object as the pattern's bits say, around 1."""
    opens, closes = [], []
    for level in range(depth):
        if pattern >> (level % 16) & 1:
            opens.append('{"k":')
            closes.append("}")
        else:
            opens.append("[")
            closes.append("]")
    return "".join(opens) + "1" + "".join(reversed(closes))


@pytest.fixture
def client() -> Client:
    # A 500 must show as a status here, not as an exception raised into the test.
    return Client(raise_request_exception=False)


@pytest.fixture
def no_rate_limit(settings: Any) -> None:
    settings.RATELIMIT_ENABLE = False


def assert_json_detail(response: Any) -> dict[str, Any]:
    assert response["Content-Type"].startswith("application/json"), response.content[:200]
    body = response.json()
    assert isinstance(body["detail"], str)
    assert body["detail"]
    return body


# --- item 4: the examples the issue names -----------------------------------------------------


@pytest.mark.parametrize("depth", [330, 989, 5000])
def test_events__event_params_nested_hundreds_deep__400_json_not_500(client, depth):
    body = (
        '{"event_name": "project_click", "user_pseudo_id": "abc.123", "event_params": {"p": '
        + nested_text(depth, 0b1010)
        + "}}"
    )

    response = client.post("/api/events", body, content_type="application/json")

    assert response.status_code == 400, response.content[:300]
    assert "nested deeper than 32" in assert_json_detail(response)["detail"]


def test_admin_login__json_nested_5000_deep__400_json_not_500(client):
    body = '{"username": ' + nested_text(5000, 0) + ', "password": "x"}'

    response = client.post("/api/admin/login", body, content_type="application/json")

    assert response.status_code == 400, response.content[:300]
    assert "nested deeper than 32" in assert_json_detail(response)["detail"]


def test_has_unstorable_text__100000_levels__answers_without_recursion():
    deep: Any = "fine"
    for level in range(100_000):
        deep = [deep] if level % 2 else {"k": deep}
    assert has_unstorable_text(deep) is False
    deep = {"k": [deep, "nul\x00"]}
    assert has_unstorable_text(deep) is True


# --- the depth check itself -------------------------------------------------------------------


@FUZZ
@given(depth=st.integers(min_value=0, max_value=80), pattern=patterns, limit=st.integers(1, 40))
def test_json_too_deep__any_nesting__true_exactly_past_the_limit(depth, pattern, limit):
    text = nested_text(depth, pattern)
    # Brackets, quotes and escapes inside strings are text, not structure.
    decoy = '"[[[{{\\"\\\\" '
    body = f'{{"s": {json.dumps(decoy * 5)}, "v": {text}}}'.encode()

    assert json_too_deep(body, limit=limit) is (depth + 1 > limit)


# --- every JSON endpoint, nesting 1..6000 deep ------------------------------------------------


@FUZZ
@given(depth=depths, pattern=patterns)
def test_post_events__event_params_any_depth__201_400_422_never_500(
    client, no_rate_limit, depth, pattern
):
    body = (
        '{"event_name": "deep_read", "user_pseudo_id": "deep.visitor", "event_params": {"p": '
        + nested_text(depth, pattern)
        + "}}"
    )

    response = client.post("/api/events", body, content_type="application/json")

    assert response.status_code in (201, 400, 413, 422), response.content[:300]
    if response.status_code != 201:
        assert_json_detail(response)
    # The body's own object, event_params and "p"'s containers.
    if depth + 2 > LIMIT:
        assert response.status_code == 400
    else:
        assert response.status_code in (201, 422)


@FUZZ
@given(depth=depths, pattern=patterns)
def test_admin_login__username_any_depth__400_or_422_never_500(
    client, no_rate_limit, depth, pattern
):
    body = '{"username": ' + nested_text(depth, pattern) + ', "password": "x"}'

    response = client.post("/api/admin/login", body, content_type="application/json")

    assert response.status_code == (400 if depth + 1 > LIMIT else 422), response.content[:300]
    assert_json_detail(response)


@FUZZ
@given(depth=depths, pattern=patterns)
def test_mp_collect__params_any_depth__204_and_deep_bodies_rejected(
    client, no_rate_limit, depth, pattern
):
    MeasurementStream.objects.get_or_create(
        measurement_id="G-DEPTH", defaults={"name": "depth", "api_secret": "depth-secret"}
    )
    query = urlencode({"measurement_id": "G-DEPTH", "api_secret": "depth-secret"})
    body = (
        '{"client_id": "1.2", "events": [{"name": "deep_read", "params": {"p": '
        + nested_text(depth, pattern)
        + "}}]}"
    )
    rejected_before = RejectedEvent.objects.count()

    response = client.post(f"/mp/collect?{query}", body, content_type="application/json")
    debug = client.post(f"/debug/mp/collect?{query}", body, content_type="application/json")

    assert response.status_code == 204, response.content[:300]
    assert debug.status_code == 200, debug.content[:300]
    if depth + 4 > LIMIT:  # body, events, the event, params
        assert RejectedEvent.objects.count() == rejected_before + 1
        [message] = debug.json()["validationMessages"]
        assert message["validationCode"] == "VALUE_INVALID"
        assert "nested deeper than 32" in message["description"]


@pytest.mark.parametrize("depth", [40, 300, 1000, 5000])
@pytest.mark.parametrize("where", ["event_params", "extra"])
def test_ga4_export_import__line_nested_deep__dead_letter_and_the_rest_imported(
    tmp_path, depth, where
):
    from analytics.ga4_export import import_export_file
    from analytics.models import Event

    deep = nested_text(depth, 0b0110)
    row = {
        "event_name": "page_view",
        "user_pseudo_id": "deep.1",
        "event_timestamp": "1764400000000000",
    }
    good = json.dumps({**row, "user_pseudo_id": "shallow.1"})
    if where == "event_params":
        bad = (
            json.dumps(row)[:-1]
            + ', "event_params": [{"key": "k", "value": {"string_value": '
            + deep
            + "}}]}"
        )
    else:
        bad = json.dumps({**row, "event_name": "bad name"})[:-1] + ', "extra": ' + deep + "}"
    path = tmp_path / "export.ndjson"
    path.write_text(f"{good}\n{bad}\n{good}\n")

    summary = import_export_file(path, use_copy=False, read_in_process=True)

    assert Event.objects.filter(user_pseudo_id="shallow.1").count() == 1
    assert not Event.objects.filter(user_pseudo_id="deep.1").exists()
    rejected = RejectedEvent.objects.get()
    assert rejected.line_number == 2
    assert "nested deeper than 32" in json.dumps(rejected.reasons)
    assert summary.rows_rejected == 1
