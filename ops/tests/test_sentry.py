"""Sentry for real: a subprocess with SENTRY_DSN pointing at a loopback server sends the
envelopes the SDK really builds; they carry the error, environment, release and request id,
and none of the visitor's id, address, cookies or query string."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer

from conftest import ROOT, _test_database_url
from ops.sentry import HOT_PATHS, scrub, traces_sampler_for

from .servers import free_port

VISITOR = "abc.sentry.123"
CLIENT_ADDRESS = "203.0.113.9"
FORWARDED = "198.51.100.7"
SESSION = "s3cr3t-session-cookie"

# The app behind a real WSGI server (Sentry hooks Django's WSGI handler, which the test client
# bypasses), requested over HTTP; then a failing task, eager.
SCRIPT = textwrap.dedent(
    f"""
    import os, threading, urllib.error, urllib.request
    from wsgiref.simple_server import WSGIRequestHandler, make_server

    import sentry_sdk
    from django.core.wsgi import get_wsgi_application

    class Quiet(WSGIRequestHandler):
        def log_message(self, *args):
            pass

    port = int(os.environ["APP_PORT"])
    server = make_server("127.0.0.1", port, get_wsgi_application(), handler_class=Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()

    def get(path, **headers):
        request = urllib.request.Request(f"http://127.0.0.1:{{port}}{{path}}", headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status
        except urllib.error.HTTPError as error:
            return error.code

    headers = {{
        "X-Forwarded-For": "{FORWARDED}",
        "X-Real-IP": "{CLIENT_ADDRESS}",
        "Cookie": "sessionid={SESSION}",
        "Authorization": "Bearer some-admin-token",
    }}
    failing = "/sentry-test/fail?user_id={VISITOR}"
    status = get(failing, **headers, **{{"X-Request-ID": "sentry-req-0001"}})
    assert status == 500, status
    status = get("/api/personalization?user_id={VISITOR}", **headers)
    assert status == 200, status

    from ops.tests.sentry_urls import sentry_task_fails
    try:
        sentry_task_fails.apply(args=["{VISITOR}"])
    except ValueError:
        pass
    sentry_sdk.flush(timeout=10)
    server.shutdown()
    """
)


@pytest.fixture
def sentry_server() -> Iterator[HTTPServer]:
    server = HTTPServer(host="127.0.0.1", port=free_port())
    server.expect_request("/api/1/envelope/", method="POST").respond_with_json({})
    server.start()
    try:
        yield server
    finally:
        server.clear()
        server.stop()


def _body(request: Any) -> str:
    data = request.get_data()
    encoding = request.headers.get("Content-Encoding", "")
    if encoding == "gzip":
        data = gzip.decompress(data)
    elif encoding == "br":
        import brotli  # the SDK compresses with it only when it is installed

        data = brotli.decompress(data)
    return data.decode()


def _items(body: str) -> list[dict[str, Any]]:
    """An envelope's JSON lines (its header, each item's header and payload)."""
    items = []
    for line in body.splitlines():
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict):
            items.append(value)
    return items


def _database_url(tmp_path: Path) -> str:
    from django.db import connection

    if connection.vendor == "postgresql":
        return _test_database_url()
    url = f"sqlite:///{tmp_path / 'sentry.sqlite3'}"
    env = {**os.environ, "DATABASE_URL": url}
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v0"],
        cwd=ROOT,
        env=env,
        check=True,
        timeout=180,
    )
    return url


def test_sentry__errors_and_traces__envelopes_arrive_scrubbed(
    sentry_server, tmp_path, django_db_setup
):
    env = {
        **{k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"},
        "DATABASE_URL": _database_url(tmp_path),
        "DJANGO_SETTINGS_MODULE": "portfolio.settings",
        "DJANGO_ROOT_URLCONF": "ops.tests.sentry_urls",
        "SENTRY_DSN": f"http://publickey@127.0.0.1:{sentry_server.port}/1",
        "SENTRY_ENVIRONMENT": "obs-test",
        "SENTRY_RELEASE": "portfolio@1.2.3",
        "SENTRY_TRACES_SAMPLE_RATE": "1.0",
        "SENTRY_TRACES_SAMPLE_RATE_HOT": "1.0",
        "CELERY_TASK_ALWAYS_EAGER": "true",
        "APP_PORT": str(free_port()),
    }

    result = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    bodies = [_body(request) for request, _ in sentry_server.log]
    items = [item for body in bodies for item in _items(body)]
    errors = [item for item in items if "exception" in item]
    transactions = [item for item in items if item.get("type") == "transaction"]
    (view_error,) = [e for e in errors if e["exception"]["values"][-1]["type"] == "RuntimeError"]
    (task_error,) = [e for e in errors if e["exception"]["values"][-1]["type"] == "ValueError"]
    assert view_error["environment"] == "obs-test"
    assert view_error["release"] == "portfolio@1.2.3"
    assert view_error["tags"]["request_id"] == "sentry-req-0001"
    assert view_error["request"]["url"].endswith("/sentry-test/fail")
    assert "cookie" not in {name.lower() for name in view_error["request"]["headers"]}
    assert "user" not in view_error
    assert task_error["extra"]["celery-job"]["task_name"] == "ops.tests.sentry_task_fails"
    assert {t.get("transaction") for t in transactions} >= {"/api/personalization"}
    everything = "\n".join(bodies)
    for secret in (VISITOR, CLIENT_ADDRESS, FORWARDED, SESSION, "user_id=", "some-admin-token"):
        assert secret not in everything, secret


# Random visitor ids through the routes that carry one, failing in each way that reports it (an
# exception naming the id, a 503 that Django logs with the request, a Host header refused, which
# Django logs at ERROR with the request), and a task failing with the id as argument.
# Everything the SDK sends for one id is checked before the next id: hypothesis runs in the
# subprocess, so the SDK, the WSGI server and the envelope collector start once.
SCRUB_SCRIPT = textwrap.dedent(
    """
    import gzip, json, os, threading, urllib.error, urllib.request
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    from wsgiref.simple_server import WSGIRequestHandler, make_server

    envelopes = []

    class Collector(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            encoding = self.headers.get("Content-Encoding", "")
            if encoding == "gzip":
                body = gzip.decompress(body)
            elif encoding == "br":
                import brotli

                body = brotli.decompress(body)
            envelopes.append(body.decode())
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args):
            pass

    collector = ThreadingHTTPServer(("127.0.0.1", 0), Collector)
    threading.Thread(target=collector.serve_forever, daemon=True).start()
    os.environ["SENTRY_DSN"] = f"http://publickey@127.0.0.1:{collector.server_port}/1"

    import sentry_sdk
    from django.core.wsgi import get_wsgi_application
    from hypothesis import given, settings, strategies as st

    class Quiet(WSGIRequestHandler):
        def log_message(self, *args):
            pass

    server = make_server("127.0.0.1", 0, get_wsgi_application(), handler_class=Quiet)
    port = server.server_port
    threading.Thread(target=server.serve_forever, daemon=True).start()

    def get(path, host=None):
        url = f"http://127.0.0.1:{port}{path}"
        headers = {"Cookie": "uid=" + path, **({"Host": host} if host else {})}
        request = urllib.request.Request(url, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status
        except urllib.error.HTTPError as error:
            return error.code

    from ops.tests.sentry_urls import sentry_task_fails_naming

    # Distinctive, so that nothing else in an event contains it by chance.
    visitor_ids = st.from_regex(r"[A-Za-z0-9._-]{6,60}", fullmatch=True).map(lambda s: "zq" + s)

    @settings(max_examples=int(os.environ["EXAMPLES"]), deadline=None, database=None)
    @given(visitor_ids)
    def check(visitor):
        envelopes.clear()
        assert get(f"/api/personalization?user_id={visitor}") == 500
        assert get(f"/api/personalization?user_id={visitor}&respond=1") == 503
        assert get(f"/api/admin/visitors/{visitor}") == 500
        assert get(f"/api/admin/visitors/{visitor}?respond=1") == 503
        # Scanners' requests: Django logs DisallowedHost at ERROR with the request attached.
        assert get(f"/api/personalization?user_id={visitor}", host="scanner.example") == 400
        assert get(f"/api/admin/visitors/{visitor}", host="scanner.example") == 400
        try:
            sentry_task_fails_naming.apply(args=[visitor], throw=True)
        except ValueError:
            pass
        sentry_sdk.flush(timeout=10)
        everything = "\\n".join(envelopes)
        events = [json.loads(line) for body in envelopes for line in body.splitlines()]
        errors = [e for e in events if "exception" in e or "logentry" in e]
        assert len(errors) >= 5, everything[:3000]  # each failure reported
        for secret in (visitor, "user_id=", "respond=", "WSGIRequest"):
            at = everything.find(secret)
            assert at < 0, (secret, everything[max(0, at - 300) : at + 300])
        routes = {e.get("request", {}).get("url", "").split("/", 3)[-1] for e in errors}
        assert "api/admin/visitors/<str:user_pseudo_id>" in routes, routes

    check()
    print("checked")
    server.shutdown()
    collector.shutdown()
    """
)


def test_sentry__random_visitor_ids_in_failing_requests_and_tasks__never_in_what_is_sent(
    tmp_path, django_db_setup
):
    env = {
        **{k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"},
        "DATABASE_URL": _database_url(tmp_path),
        "DJANGO_SETTINGS_MODULE": "portfolio.settings",
        "DJANGO_ROOT_URLCONF": "ops.tests.sentry_failing_urls",
        "SENTRY_TRACES_SAMPLE_RATE": "1.0",
        "SENTRY_TRACES_SAMPLE_RATE_HOT": "1.0",
        "CELERY_TASK_ALWAYS_EAGER": "true",
        "EXAMPLES": "25",
    }

    result = subprocess.run(
        [sys.executable, "-c", SCRUB_SCRIPT],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )

    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-8000:]
    assert "checked" in result.stdout


def test_sentry__no_dsn__not_initialised():
    from ops import sentry

    assert (
        sentry.init(
            dsn="", environment="x", release="", traces_sample_rate=1.0, traces_sample_rate_hot=1.0
        )
        is False
    )


# --- the pieces --------------------------------------------------------------------------------


def _sampling(path: str, parent: bool | None = None) -> dict[str, Any]:
    return {"wsgi_environ": {"PATH_INFO": path}, "parent_sampled": parent}


def test_traces_sampler__hot_path_probes_and_the_rest__own_rates():
    sampler = traces_sampler_for(hot_rate=0.001, rate=0.2)

    assert [sampler(_sampling(path)) for path in sorted(HOT_PATHS)] == [0.001]
    assert sampler(_sampling("/api/events")) == 0.2
    assert sampler(_sampling("/health")) == 0.0
    assert sampler(_sampling("/metrics")) == 0.0
    assert sampler({"celery_job": {"task": "x"}}) == 0.2
    assert sampler(_sampling("/api/personalization", parent=True)) == 1.0
    assert sampler(_sampling("/api/events", parent=False)) == 0.0


def test_scrub__request_user_and_task_arguments__removed():
    event: Any = {
        "user": {"ip_address": CLIENT_ADDRESS, "id": VISITOR},
        "request": {
            "url": f"https://api.example.com/api/personalization?user_id={VISITOR}",
            "query_string": f"user_id={VISITOR}",
            "cookies": {"sessionid": SESSION},
            "data": {"user_pseudo_id": VISITOR},
            "env": {"REMOTE_ADDR": CLIENT_ADDRESS},
            "headers": {"Cookie": SESSION, "X-Forwarded-For": FORWARDED, "User-Agent": "ua"},
        },
        "extra": {"celery-job": {"task_name": "t", "args": [VISITOR], "kwargs": {}}},
        "breadcrumbs": {"values": [{"data": {"url": f"https://x.test/a?id={VISITOR}"}}]},
    }

    scrubbed = scrub(event)

    assert VISITOR not in json.dumps(scrubbed)
    assert CLIENT_ADDRESS not in json.dumps(scrubbed)
    assert scrubbed["request"]["headers"] == {"User-Agent": "ua"}
    assert scrubbed["request"]["url"] == "https://api.example.com/api/personalization"


@pytest.mark.urls("ops.tests.sentry_failing_urls")
def test_scrub_breadcrumb__log_line_with_the_request__route_and_no_visitor_id(rf):
    import logging

    from django.urls import resolve

    from ops.sentry import scrub_breadcrumb

    request = rf.get(f"/api/admin/visitors/{VISITOR}?user_id={VISITOR}")
    request.resolver_match = resolve(request.path_info)
    record = logging.LogRecord(
        "django.security.DisallowedHost", logging.ERROR, "", 0, "Refused: %s", (request.path,), None
    )
    record.request = request
    crumb: Any = {
        "type": "log",
        "category": record.name,
        "message": record.getMessage(),
        "data": {"request": repr(request), "status_code": 400},
    }

    scrubbed = scrub_breadcrumb(crumb, {"log_record": record})

    assert scrubbed["message"] == "Refused: /api/admin/visitors/<str:user_pseudo_id>"
    assert scrubbed["data"] == {"status_code": 400}
    assert VISITOR not in json.dumps(scrubbed)


def test_scrub_breadcrumb__outgoing_http_call__no_query_string():
    from ops.sentry import scrub_breadcrumb

    crumb: Any = {
        "type": "http",
        "data": {
            "url": "https://llm.example/v1?key=api-secret-123",
            "http.query": "key=api-secret-123",
        },
    }

    assert "api-secret-123" not in json.dumps(scrub_breadcrumb(crumb, {}))
