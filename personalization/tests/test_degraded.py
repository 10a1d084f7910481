"""Decisions degrade, never fail: with the database unreachable, GET /api/personalization
answers the default (CASUAL) experience with `X-Personalization-Degraded: database`, and the
public endpoints that need the database answer 503 JSON with Retry-After, never a 500 page.

A real gunicorn serves the app against a database it cannot reach (a closed port, or an
SQLite file in a missing directory), or against PostgreSQL through a proxy the test cuts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from ops.tests.test_failure_drills import database_proxy, free_port, gunicorn

__all__ = ["database_proxy"]  # a fixture, used by name below

DEGRADED = "X-Personalization-Degraded"


def unreachable_database_url(tmp_path: Path) -> str:
    from django.db import connection

    if connection.vendor == "postgresql":
        return f"postgres://postgres@127.0.0.1:{free_port()}/nowhere"  # nothing listens there
    return f"sqlite:///{tmp_path / 'missing-directory' / 'db.sqlite3'}"


def assert_default_answer(headers: dict[str, str], body: Any, visitor: str) -> None:
    assert headers[DEGRADED] == "database"
    assert headers["Content-Type"].startswith("application/json")
    assert "no-store" in headers["Cache-Control"]
    assert body["user_id"] == visitor
    assert body["segment"] == "CASUAL"
    assert body["segmented_at"] is None
    for key in ("confidence", "scores", "priority_sections", "featured_projects"):
        assert key in body
    assert body["explanation"]["what"]


def test_database_unreachable__personalization_default_answer__collect_503_json(tmp_path):
    url = unreachable_database_url(tmp_path)
    mp = urlencode({"measurement_id": "G-DOWN", "api_secret": "secret"})
    with gunicorn(tmp_path, DATABASE_URL=url, DB_CONNECT_TIMEOUT="2", REDIS_URL="") as server:
        status, headers, body = server.call("GET", "/api/personalization?user_id=new.visitor")
        assert status == 200, (body, server.log.read_text()[-3000:])
        assert_default_answer(headers, body, "new.visitor")

        for method, path, payload in [
            ("POST", "/api/events", {"event_name": "x", "user_pseudo_id": "a"}),
            ("POST", f"/mp/collect?{mp}", {"client_id": "1.2", "events": [{"name": "x"}]}),
            ("POST", f"/debug/mp/collect?{mp}", {"client_id": "1.2", "events": [{"name": "x"}]}),
            ("GET", "/g/collect?v=2&tid=G-DOWN&cid=1.2&en=page_view", None),
            ("POST", "/api/admin/login", {"username": "a", "password": "b"}),
        ]:
            status, headers, body = server.call(method, path, payload)
            assert status == 503, (method, path, status, body)
            assert int(headers["Retry-After"]) >= 1
            assert isinstance(body, dict), body
            assert body["detail"]

        status, _, ready = server.call("GET", "/ready")
        assert status == 503
        assert "database" in ready["failing"]
        assert server.call("GET", "/health")[0] == 200
    assert "Traceback" not in server.log.read_text()


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_postgres_cut__uncached_visitor_gets_the_casual_rule_marked_degraded__then_recovers(
    tmp_path, database_proxy
):
    from personalization.services import catalog_load_demo

    catalog_load_demo()
    proxy, url = database_proxy
    with gunicorn(tmp_path, DATABASE_URL=url, DB_CONNECT_TIMEOUT="2", REDIS_URL="") as server:
        status, headers, normal = server.call("GET", "/api/personalization?user_id=before.cut")
        assert status == 200
        assert DEGRADED not in headers

        proxy.cut()
        status, headers, degraded = server.call("GET", "/api/personalization?user_id=during.cut")
        assert status == 200, (degraded, server.log.read_text()[-3000:])
        assert_default_answer(headers, degraded, "during.cut")
        # The CASUAL rule this process last loaded: what an unknown visitor gets normally.
        for key in ("priority_sections", "featured_projects", "highlight_skills", "rule_version"):
            assert degraded[key] == normal[key], key

        proxy.restore()
        status, headers, after = server.call("GET", "/api/personalization?user_id=during.cut")
        assert status == 200
        assert DEGRADED not in headers
        assert json.dumps(after["explanation"]) != json.dumps(degraded["explanation"])
