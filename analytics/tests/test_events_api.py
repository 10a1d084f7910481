"""Black-box tests of POST /api/events against the contract in docs/API.md."""

import json
import time

import pytest
from django.db import connection
from django_ratelimit.core import _get_window

from analytics.models import Event, Visitor

pytestmark = pytest.mark.django_db

URL = "/api/events"
EXAMPLE = {
    "event_name": "project_click",
    "user_pseudo_id": "abc.123",
    "event_params": {"project_id": "llm-router"},
    "event_timestamp": 1764400000,
    "event_id": "optional client id used to drop duplicates",
}


def post(client, body, **extra):
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return client.post(URL, data=data, content_type="application/json", **extra)


def test_post_event__api_md_example__201_accepted(client):
    response = post(client, EXAMPLE)

    assert response.status_code == 201
    assert response.json() == {"accepted": 1, "duplicates": 0}
    event = Event.objects.get()
    assert event.event_name == "project_click"
    assert event.event_params == {"project_id": "llm-router"}
    assert event.source == "api"
    assert event.occurred_at.timestamp() == 1764400000


def test_post_event__same_event_id_twice__second_is_duplicate(client):
    post(client, EXAMPLE)

    response = post(client, EXAMPLE)

    assert response.status_code == 201
    assert response.json() == {"accepted": 0, "duplicates": 1}
    assert Event.objects.count() == 1


def test_post_batch__mixed_new_and_repeated__counts_each(client):
    events = [
        {**EXAMPLE, "event_id": f"e{i % 3}", "event_timestamp": 1764400000 + i} for i in range(5)
    ]

    response = post(client, {"events": events})

    assert response.json() == {"accepted": 3, "duplicates": 2}
    assert Visitor.objects.get(user_pseudo_id="abc.123").event_count == 3


@pytest.mark.parametrize(
    ("timestamp", "expected"),
    [
        (1764400000, 1764400000.0),
        (1764400000123, 1764400000.123),
        (1764400000123456, 1764400000.123456),
    ],
)
def test_post_event__seconds_millis_micros__normalised(client, timestamp, expected):
    post(client, {"event_name": "deep_read", "user_pseudo_id": "u1", "event_timestamp": timestamp})

    assert Event.objects.get().occurred_at.timestamp() == pytest.approx(expected)


def test_post_event__no_timestamp__received_time(client):
    before = time.time()

    post(client, {"event_name": "download_resume", "user_pseudo_id": "u1"})

    assert before - 1 <= Event.objects.get().occurred_at.timestamp() <= time.time() + 1


def test_post_event__invalid_name__422_naming_the_field(client):
    response = post(client, {**EXAMPLE, "event_name": "invalid@name"})

    body = response.json()
    assert response.status_code == 422
    assert list(body["errors"]) == ["event_name"]
    assert body["detail"].startswith("event_name:")
    assert Event.objects.count() == 0


def test_post_event__params_over_10000_bytes__422(client):
    response = post(client, {**EXAMPLE, "event_params": {"text": "x" * 15_000}})

    assert response.status_code == 422
    assert "10000 bytes" in response.json()["errors"]["event_params"][0]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("event_name", ""),
        ("event_name", "x" * 101),
        ("event_name", 42),
        ("user_pseudo_id", "has space"),
        ("user_pseudo_id", "u" * 201),
        ("user_pseudo_id", None),
        ("event_params", ["not", "an", "object"]),
        ("event_timestamp", "1764400000"),
        ("event_timestamp", True),
        ("event_timestamp", -5),
        ("event_timestamp", 10**30),
        ("event_timestamp", 946684799),  # 1999-12-31
        ("event_id", ""),
        ("event_id", 7),
    ],
)
def test_post_event__bad_field__422_with_that_field(client, field, value):
    body = {**EXAMPLE, field: value}
    if value is None:
        del body[field]

    response = post(client, body)

    assert response.status_code == 422
    assert field in response.json()["errors"]


def test_post_event__more_than_72h_ahead__422(client):
    response = post(client, {**EXAMPLE, "event_timestamp": int(time.time()) + 73 * 3600})

    assert response.status_code == 422
    assert "72 hours" in response.json()["errors"]["event_timestamp"][0]


def test_post_batch__one_bad_event__422_and_nothing_stored(client):
    events = [
        EXAMPLE,
        {**EXAMPLE, "event_id": "2", "event_name": "bad name"},
        {"user_pseudo_id": "u"},
    ]

    response = post(client, {"events": events})

    errors = response.json()["errors"]
    assert response.status_code == 422
    assert set(errors) == {"events.1.event_name", "events.2.event_name"}
    assert Event.objects.count() == 0
    assert Visitor.objects.count() == 0


@pytest.mark.parametrize(
    "single",
    [{"event_name": "page_view"}, {"user_pseudo_id": "abc.123"}, {"event_id": "x"}],
    ids=["event_name", "user_pseudo_id", "event_id"],
)
def test_post__single_event_fields_beside_events__422_naming_them_nothing_stored(client, single):
    # The schema's oneOf: one event XOR a batch. Which one a mixture meant is a guess.
    response = post(client, {**single, "events": [EXAMPLE]})

    assert response.status_code == 422
    body = response.json()
    assert set(body["errors"]) == set(single)
    assert "not both" in body["detail"]
    assert Event.objects.count() == 0


@pytest.mark.parametrize("events", [[], [EXAMPLE] * 501, "nope", {"a": 1}])
def test_post_batch__wrong_size_or_type__422_on_events(client, events):
    response = post(client, {"events": events})

    assert response.status_code == 422
    assert "events" in response.json()["errors"]


def test_post_batch__500_events__accepted(client):
    events = [{**EXAMPLE, "event_id": str(i)} for i in range(500)]

    response = post(client, {"events": events})

    assert response.json() == {"accepted": 500, "duplicates": 0}


@pytest.mark.parametrize(
    "body", [b"{not json", b"\xff\xfe\x00", b"", b'{"event_name": NaN}', b"[" * 100_000]
)
def test_post__malformed_body__400_json_detail(client, body):
    response = post(client, body)

    assert response.status_code == 400
    assert response.json()["detail"]


def test_post__json_not_an_object__422(client):
    response = post(client, [1, 2, 3])

    assert response.status_code == 422
    assert response.json()["errors"] == {"non_field_errors": ["Each event must be a JSON object."]}


def test_post__body_over_limit__413(client, settings):
    settings.EVENTS_MAX_BODY_BYTES = 2_000
    events = [{**EXAMPLE, "event_id": str(i)} for i in range(30)]

    response = post(client, {"events": events})

    assert response.status_code == 413
    assert "detail" in response.json()
    assert Event.objects.count() == 0


def test_post__text_plain_beacon__accepted(client):
    response = client.post(URL, data=json.dumps(EXAMPLE), content_type="text/plain")

    assert response.status_code == 201


def steady_ip(prefix: str, seconds_needed: int = 20) -> str:
    """An address whose rate-limit window (django-ratelimit offsets each key's minute by a hash
    of the key) will not roll over during the test, so the count cannot reset mid-test."""
    for last in range(1, 255):
        ip = f"{prefix}.{last}"
        if _get_window(ip, 60) - int(time.time()) >= seconds_needed:
            return ip
    raise AssertionError("no steady address")


def test_post__101_requests_in_a_minute__429_with_retry_after(client, settings):
    settings.RATELIMIT_EVENTS = "100/m"
    ip = steady_ip("10.3.0")
    for i in range(100):
        assert post(client, {**EXAMPLE, "event_id": str(i)}, REMOTE_ADDR=ip).status_code == 201

    response = post(client, {**EXAMPLE, "event_id": "101"}, REMOTE_ADDR=ip)

    assert response.status_code == 429
    assert response.json() == {"detail": "Rate limit exceeded. Try again later."}
    assert 1 <= int(response["Retry-After"]) <= 60
    assert Event.objects.count() == 100


def test_rate_limit__other_client_ip__own_budget(client, settings):
    settings.RATELIMIT_EVENTS = "2/m"
    first, second = steady_ip("10.1.1"), steady_ip("10.1.2")
    for _ in range(2):
        post(client, EXAMPLE, REMOTE_ADDR=first)

    assert post(client, EXAMPLE, REMOTE_ADDR=first).status_code == 429
    assert post(client, EXAMPLE, REMOTE_ADDR=second).status_code == 201


def test_rate_limit__forwarded_for_from_untrusted_peer__ignored(client, settings):
    settings.RATELIMIT_EVENTS = "1/m"
    settings.TRUSTED_PROXIES = []
    peer = steady_ip("10.4.0")
    post(client, EXAMPLE, REMOTE_ADDR=peer, HTTP_X_FORWARDED_FOR="1.1.1.1")

    spoofed = post(client, EXAMPLE, REMOTE_ADDR=peer, HTTP_X_FORWARDED_FOR="2.2.2.2")

    assert spoofed.status_code == 429


def test_rate_limit__behind_trusted_proxy__limits_forwarded_client(client, settings):
    settings.RATELIMIT_EVENTS = "1/m"
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]
    client_ip, other_ip = steady_ip("203.0.113"), steady_ip("198.51.100")
    post(client, EXAMPLE, REMOTE_ADDR="10.0.0.5", HTTP_X_FORWARDED_FOR=client_ip)

    other = post(client, EXAMPLE, REMOTE_ADDR="10.0.0.5", HTTP_X_FORWARDED_FOR=other_ip)
    same = post(
        client, EXAMPLE, REMOTE_ADDR="10.0.0.6", HTTP_X_FORWARDED_FOR=f"9.9.9.9, {client_ip}"
    )

    assert other.status_code == 201
    assert same.status_code == 429


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_post__database_unreachable__503_retry_after_nothing_half_written(client, postgres):
    # Point the live connection at a closed port: the next query has to reconnect and fails.
    good_port = connection.settings_dict["PORT"]
    connection.close()
    connection.settings_dict["PORT"] = "1"
    try:
        response = post(client, {"events": [{**EXAMPLE, "event_id": str(i)} for i in range(3)]})
    finally:
        connection.close()
        connection.settings_dict["PORT"] = good_port

    assert response.status_code == 503
    assert response["Retry-After"]
    assert "detail" in response.json()
    assert Event.objects.count() == 0
    # recovery without a restart
    assert post(client, EXAMPLE).status_code == 201


def test_post__rate_limit_cache_unreachable__fails_open_and_stores(client, settings):
    settings.CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",
            "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 0.2, "SOCKET_TIMEOUT": 0.2},
        }
    }

    response = post(client, EXAMPLE)

    assert response.status_code == 201
    assert Event.objects.count() == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (
            b'{"event_name": "a", "user_pseudo_id": "u", "event_params": {"x": "\\u0000"}}',
            "event_params",
        ),
        (
            b'{"event_name": "a", "user_pseudo_id": "u", "event_params": {"x": "\\ud800"}}',
            "event_params",
        ),
        (b'{"event_name": "a", "user_pseudo_id": "u", "event_id": "\\u0000"}', "event_id"),
    ],
)
def test_post__text_postgres_cannot_store__422(client, body, field):
    response = post(client, body)

    assert response.status_code == 422
    assert field in response.json()["errors"]
    assert Event.objects.count() == 0


def test_post__number_out_of_range__400(client):
    body = b'{"event_name": "a", "user_pseudo_id": "u", "event_params": {"x": 1e400}}'

    response = post(client, body)

    assert response.status_code == 400
    assert "out of range" in response.json()["detail"]
