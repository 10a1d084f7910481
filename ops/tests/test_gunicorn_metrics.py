"""The web role for real: gunicorn with deploy/gunicorn.conf.py, two worker processes, the
prometheus multiprocess directory. Whichever worker answers a scrape reports the sum of both
workers' counts, with route-pattern labels; every log line is JSON and carries request ids;
probes answer a pod-IP Host header.

The database is the test database on PostgreSQL, else a migrated SQLite file of its own.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import ROOT, _test_database_url

from .servers import free_port, http_get, labels, parse_samples, wait_for

VISITOR = "gunicorn.visitor.1"


@dataclass
class Web:
    base: str
    log: Path
    multiprocess_dir: Path
    process: subprocess.Popen[bytes]

    def get(self, path: str, **headers: str) -> tuple[int, dict[str, str], str]:
        return http_get(self.base + path, headers)

    def writer_pids(self) -> set[str]:
        return {path.stem.rsplit("_", 1)[1] for path in self.multiprocess_dir.glob("counter_*.db")}


@pytest.fixture
def web(tmp_path: Path, django_db_setup: None) -> Iterator[Web]:
    from django.db import connection

    env = {k: v for k, v in os.environ.items() if k not in {"DJANGO_SETTINGS_MODULE"}}
    if connection.vendor == "postgresql":
        env["DATABASE_URL"] = _test_database_url()
    else:
        env["DATABASE_URL"] = f"sqlite:///{tmp_path / 'web.sqlite3'}"
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "--noinput", "-v0"],
            cwd=ROOT,
            env=env,
            check=True,
            timeout=180,
        )
    port = free_port()
    multiprocess_dir = tmp_path / "prometheus"
    multiprocess_dir.mkdir()
    env.update(
        PORT=str(port),
        BIND_HOST="127.0.0.1",
        WEB_CONCURRENCY="2",
        GUNICORN_THREADS="2",
        GUNICORN_MAX_REQUESTS="0",
        PROMETHEUS_MULTIPROC_DIR=str(multiprocess_dir),
        LOG_FORMAT="json",
        LOG_LEVEL="INFO",
        GUNICORN_ACCESS_LOG="json",
        DJANGO_DEBUG="false",
        # Nothing this test does may leave messages on a shared broker.
        CELERY_TASK_ALWAYS_EAGER="true",
        RATELIMIT_ENABLE="false",
    )
    log = tmp_path / "gunicorn.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "--config",
                "deploy/gunicorn.conf.py",
                "portfolio.wsgi:application",
            ],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    web = Web(f"http://127.0.0.1:{port}", log, multiprocess_dir, process)
    try:
        if not wait_for(lambda: _answers(web), timeout=60, interval=0.3):
            raise RuntimeError(f"gunicorn did not start:\n{log.read_text()}")
        yield web
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


def _answers(web: Web) -> bool:
    try:
        return web.get("/metrics")[0] == 200
    except OSError:
        return False


def test_gunicorn_two_workers__scrapes__every_count_summed_across_workers(web):
    sent = 0
    started = time.monotonic()
    # Fresh connections spread over both workers; go on until both have written samples.
    while sent < 20 or (len(web.writer_pids()) < 2 and time.monotonic() - started < 60):
        assert web.get(f"/api/personalization?user_id={VISITOR}")[0] == 200
        assert web.get("/api/personalization?user_id=bad%20id")[0] == 422
        assert web.get(f"/no/such/page/{VISITOR}")[0] == 404
        assert web.get("/ready")[0] == 200
        sent += 1
    assert len(web.writer_pids()) >= 2, "one gunicorn worker served everything"

    scrapes = [parse_samples(web.get("/metrics")[2]) for _ in range(6)]

    hot = {"method": "GET", "endpoint": "api/personalization"}
    for number, samples in enumerate(scrapes):
        requests = samples["api_requests_total"]
        assert requests[labels(**hot, status="200")] == sent
        assert requests[labels(**hot, status="422")] == sent
        assert requests[labels(method="GET", endpoint="unmatched", status="404")] == sent
        assert requests[labels(method="GET", endpoint="ready", status="200")] == sent
        # Scrapes count themselves once answered: the earlier ones, plus the start-up probes.
        assert requests[labels(method="GET", endpoint="metrics", status="200")] >= number + 1
        durations = samples["api_request_duration_seconds_count"]
        assert durations[labels(**hot)] == 2 * sent
        assert {dict(key)["endpoint"] for key in requests} <= {
            "api/personalization",
            "unmatched",
            "ready",
            "metrics",
        }
        assert samples["db_queries_total"][()] >= sent  # /ready runs SELECT 1 each time
        assert samples["active_db_connections"][()] >= 1
        hits = samples["cache_hits_total"][labels(cache="personalization")]
        misses = samples["cache_misses_total"][labels(cache="personalization")]
        assert hits + misses >= sent
    counts = [s["api_requests_total"][labels(**hot, status="200")] for s in scrapes]
    assert counts == [sent] * 6


def test_gunicorn__log_lines__json_with_request_ids_and_no_visitor_ids(web):
    web.get(f"/api/personalization?user_id={VISITOR}", **{"X-Request-ID": "gunicorn-req-0001"})
    status, headers, _ = web.get("/health")

    assert status == 200
    assert headers["X-Request-ID"]

    def logged() -> bool:
        return "gunicorn-req-0001" in web.log.read_text()

    assert wait_for(logged, timeout=10)
    lines = [line for line in web.log.read_text().splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line, gunicorn's own included
    access, request = sorted(
        (r for r in records if r.get("request_id") == "gunicorn-req-0001"),
        key=lambda r: r["event"],
    )
    assert request["event"] == "http.request"
    assert request["route"] == "api/personalization"
    assert request["status"] == 200
    assert request["duration_ms"] > 0
    assert access["event"] == "http.access"  # gunicorn's own access line, same id
    assert access["route"] == "api/personalization"  # the pattern, never the path or query
    assert "path" not in access
    assert any(r["logger"] == "gunicorn.error" for r in records)
    assert "127.0.0.1" not in json.dumps([access, request])  # no client address
    assert VISITOR not in web.log.read_text()


def test_gunicorn__pod_ip_host__probes_answer_others_refused(web):
    assert web.get("/health", Host="10.244.3.9:8000")[0] == 200
    assert web.get("/metrics", Host="10.244.3.9:8000")[0] == 200
    assert web.get("/api/personalization?user_id=a", Host="10.244.3.9:8000")[0] == 400
