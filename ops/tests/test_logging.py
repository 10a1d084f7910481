"""X-Request-ID handling and the structured logs: one JSON object per line, with the request id
from the web request into the tasks it queues, and no personal data."""

from __future__ import annotations

import importlib.util
import io
import json
import logging
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from ops.context import request_id_from
from ops.logging import REDACTED, ContextFilter, JsonFormatter, TextFormatter, logging_config

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]
HEX32 = re.compile(r"[0-9a-f]{32}")


@pytest.fixture
def json_lines() -> Iterator[Callable[[], list[dict]]]:
    """Reads back every record logged so far, as the JSON handler wrote it: each line must be
    one complete JSON object."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)


# --- X-Request-ID ------------------------------------------------------------------------------


def test_request_id__sane_client_id__echoed(client):
    response = client.get("/health", HTTP_X_REQUEST_ID="edge-7f3a9c1e.42")

    assert response["X-Request-ID"] == "edge-7f3a9c1e.42"


def test_request_id__none_sent__generated_uuid4_hex(client):
    first = client.get("/health")["X-Request-ID"]
    second = client.get("/health")["X-Request-ID"]

    assert HEX32.fullmatch(first)
    assert first != second


@pytest.mark.parametrize(
    "sent",
    [
        "x" * 129,
        "short",
        "has space inside",
        'quote"injection',
        "line\nbreak-000000",
        "<script>alert(1)</script>",
        "ünïcödé-12345678",
        "-starts-with-dash",
    ],
)
def test_request_id__insane_client_id__replaced(client, sent):
    response = client.get("/health", HTTP_X_REQUEST_ID=sent)

    assert HEX32.fullmatch(response["X-Request-ID"])


def test_request_id__on_an_error_response__still_echoed(client):
    response = client.get("/no/such/route", HTTP_X_REQUEST_ID="trace-000000001")

    assert response.status_code == 404
    assert response["X-Request-ID"] == "trace-000000001"


def test_request_id_from__bounds():
    assert request_id_from("a" * 128) == "a" * 128
    assert request_id_from("a" * 8) == "a" * 8
    assert HEX32.fullmatch(request_id_from(None))


# --- request log lines -------------------------------------------------------------------------


def test_request_log__json_line__route_status_duration_request_id_no_pii(client, json_lines):
    client.get(
        "/api/personalization?user_id=secret.visitor.42",
        HTTP_X_REQUEST_ID="req-log-test-0001",
        REMOTE_ADDR="203.0.113.77",
    )

    lines = json_lines()
    (line,) = [entry for entry in lines if entry["event"] == "http.request"]
    assert line["request_id"] == "req-log-test-0001"
    assert line["route"] == "api/personalization"
    assert line["method"] == "GET"
    assert line["status"] == 200
    assert isinstance(line["duration_ms"], float)
    assert line["level"] == "INFO"
    assert line["logger"] == "ops.requests"
    assert datetime.fromisoformat(line["time"]).utcoffset() == timedelta(0)
    everything = json.dumps(lines)
    assert "secret.visitor.42" not in everything
    assert "203.0.113.77" not in everything
    assert "user_id=" not in everything


def test_request_log__probe__debug_not_info(client, json_lines):
    client.get("/health")

    (line,) = [entry for entry in json_lines() if entry["event"] == "http.request"]
    assert line["level"] == "DEBUG"
    assert line["route"] == "health"


# Transactional: on_commit then runs inside the request, where it runs in production.
@pytest.mark.django_db(transaction=True)
def test_request_log__task_queued_by_request__task_lines_carry_request_id(
    client, json_lines, settings
):
    settings.RATELIMIT_ENABLE = False
    event = {"event_name": "project_click", "user_pseudo_id": "pii.visitor.7", "event_params": {}}

    response = client.post(
        "/api/events",
        data=json.dumps(event),
        content_type="application/json",
        HTTP_X_REQUEST_ID="req-with-task-0001",
    )

    assert response.status_code == 201
    lines = json_lines()
    task_lines = [entry for entry in lines if entry.get("task_id")]
    assert task_lines, "the eager re-segmentation task logged nothing"
    assert {entry["request_id"] for entry in task_lines} == {"req-with-task-0001"}
    # resegment_drain with Redis as the cache, resegment_visitors with another one
    assert {entry["task_name"] for entry in task_lines} & {
        "personalization.tasks.resegment_drain",
        "personalization.tasks.resegment_visitors",
    }
    # Celery's own trace record carries the task's arguments in `data`: never written.
    assert "pii.visitor.7" not in json.dumps(lines)


def test_request_log__outside_a_request__no_request_id(json_lines):
    logging.getLogger("ops.test").info("ops.test.event")

    (line,) = [entry for entry in json_lines() if entry["logger"] == "ops.test"]
    assert "request_id" not in line
    assert line["event"] == "ops.test.event"


# --- the formatters ----------------------------------------------------------------------------


def _record(**extra: object) -> logging.LogRecord:
    record = logging.LogRecord("ops.test", logging.INFO, __file__, 1, "ops.test.%s", ("ok",), None)
    record.__dict__.update(extra)
    ContextFilter().filter(record)
    return record


def test_json_formatter__personal_extra_fields__redacted():
    line = json.loads(
        JsonFormatter().format(
            _record(user_pseudo_id="abc.1", client_ip="198.51.100.1", Email="a@b.c", count=3)
        )
    )

    assert line["event"] == "ops.test.ok"
    assert line["user_pseudo_id"] == REDACTED
    assert line["client_ip"] == REDACTED
    assert line["Email"] == REDACTED
    assert line["count"] == 3


def test_json_formatter__objects__only_their_type_name():
    class Request:
        def __repr__(self) -> str:
            return "<GET /api/personalization?user_id=abc.1>"

    line = json.loads(JsonFormatter().format(_record(request=Request(), nested={"r": Request()})))

    assert line["request"] == "<Request>"
    assert line["nested"] == {"r": "<Request>"}


def test_json_formatter__exception__one_line_with_traceback():
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())

    text = JsonFormatter().format(record)

    assert "\n" not in text
    assert "ValueError: boom" in json.loads(text)["exception"]


def test_text_formatter__fields_as_key_value():
    text = TextFormatter().format(_record(status=200))

    assert text.endswith("ops.test.ok status=200")


def test_logging_config__requests_off__only_5xx_request_lines():
    assert logging_config(fmt="json", level="INFO", requests=False)["loggers"]["ops.requests"] == {
        "level": "WARNING"
    }
    assert "ops.requests" not in logging_config(fmt="json", level="INFO")["loggers"]


def test_logging_config__unknown_format__refused():
    with pytest.raises(ValueError, match="LOG_FORMAT"):
        logging_config(fmt="xml", level="INFO")


@pytest.mark.parametrize(
    ("env", "formatter"),
    [
        ({"DJANGO_ENV": "production"}, "ops.logging.JsonFormatter"),
        ({"DJANGO_ENV": "production", "LOG_FORMAT": "text"}, "ops.logging.TextFormatter"),
        ({"DJANGO_ENV": "development"}, "ops.logging.TextFormatter"),
        ({"DJANGO_ENV": "development", "LOG_FORMAT": "json"}, "ops.logging.JsonFormatter"),
    ],
)
def test_settings__log_format__json_in_production_text_in_development(env, formatter):
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "from django.conf import settings; "
            "print(settings.LOGGING['formatters']['default']['()'])",
        ],
        cwd=ROOT,
        env={
            **{k: v for k, v in os.environ.items() if k not in {"LOG_FORMAT", "DJANGO_ENV"}},
            "DJANGO_SETTINGS_MODULE": "portfolio.settings",
            "DJANGO_SECRET_KEY": "test-only-" + "k3y-" * 15,
            "ALLOWED_HOSTS": "api.example.com",
            "DATABASE_URL": "sqlite:////tmp/unused.sqlite3",
            **env,
        },
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == formatter


# --- visitor ids and query strings stay out of every line ---------------------------------------

# Distinctive, so that nothing else in a line contains it by chance.
visitor_ids = st.from_regex(r"[A-Za-z0-9._-]{6,60}", fullmatch=True).map(lambda s: "zq" + s)


def _failing_requests(client: Any, visitor: str) -> list[Any]:
    """The routes that carry a visitor id, failing in each way that Django logs with the
    request (ops.tests.sentry_failing_urls): an exception naming the id, a 503, a Host header
    refused."""
    client.raise_request_exception = False
    responses = [
        client.get(f"/api/personalization?user_id={visitor}"),
        client.get(f"/api/personalization?user_id={visitor}&respond=1"),
        client.get(f"/api/admin/visitors/{visitor}"),
        client.get(f"/api/admin/visitors/{visitor}?respond=1"),
        client.get(f"/api/personalization?user_id={visitor}", HTTP_HOST="scanner.example"),
        client.get(f"/api/admin/visitors/{visitor}", HTTP_HOST="scanner.example"),
    ]
    assert [r.status_code for r in responses] == [500, 503, 500, 503, 400, 400]
    return responses


@pytest.mark.urls("ops.tests.sentry_failing_urls")
@hypothesis_settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(visitor=visitor_ids)
def test_logs__random_visitor_ids_in_failing_requests__in_no_line(client, json_lines, visitor):
    before = len(json_lines())

    _failing_requests(client, visitor)

    lines = json_lines()[before:]
    assert {line["logger"] for line in lines} >= {"django.request", "ops.requests"}
    assert any("exception" in line for line in lines)  # tracebacks are still logged
    everything = json.dumps(lines)
    for secret in (visitor, "user_id=", "respond="):
        assert secret not in everything, (secret, everything)
    assert "/api/admin/visitors/<str:user_pseudo_id>" in everything  # the route instead


def _gunicorn_access_logger(path: Path) -> Any:
    from gunicorn.config import Config

    spec = importlib.util.spec_from_file_location("gunicorn_conf", ROOT / "deploy/gunicorn.conf.py")
    assert spec
    assert spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    config = Config()
    config.set("accesslog", str(path))
    return module.JsonAccessLogger(config)


@pytest.mark.urls("ops.tests.sentry_failing_urls")
@hypothesis_settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(visitor=visitor_ids)
def test_gunicorn_access_log__random_visitor_ids__route_pattern_never_path_or_query(
    client, tmp_path, visitor
):
    path = tmp_path / f"access-{uuid.uuid4().hex}.log"
    access_logger = _gunicorn_access_logger(path)
    responses = _failing_requests(client, visitor)
    responses.append(client.get(f"/api/admin/visitors/{visitor}/unknown"))

    for response in responses:
        # What gunicorn hands its access logger: the environ the app was called with (the test
        # client's, as Django's WSGI handler keeps it as request.META) and its response.
        sent = SimpleNamespace(
            status=f"{response.status_code} {response.reason_phrase}",
            headers=list(response.items()),
            sent=len(response.content),
        )
        access_logger.access(sent, None, response.wsgi_request.META, timedelta(milliseconds=3))

    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [line["event"] for line in lines] == ["http.access"] * 7
    assert [line["route"] for line in lines] == [
        "api/personalization",
        "api/personalization",
        "api/admin/visitors/<str:user_pseudo_id>",
        "api/admin/visitors/<str:user_pseudo_id>",
        "unmatched",  # refused before the URL was resolved
        "unmatched",
        "unmatched",
    ]
    everything = path.read_text()
    for secret in (visitor, "user_id=", "respond="):
        assert secret not in everything, (secret, everything)
