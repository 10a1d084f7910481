"""Failure drills on real services: take a dependency away from a running server and check
that it degrades as documented, loses nothing it accepted, and recovers without a restart.

Each drill runs its own disposable service (a private redis-server, a TCP proxy in front of
PostgreSQL) so stopping it disturbs nothing else on the machine, and serves the app with a
real gunicorn on the test database.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from conftest import ROOT, _test_database_url, require_service

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.services]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(check: Any, timeout: float = 20.0, interval: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = check()
            if result:
                return result
        except Exception:
            if time.monotonic() > deadline:
                raise
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout} s: {check}")
        time.sleep(interval)


@dataclass
class PrivateRedis:
    port: int
    directory: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.directory),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until(lambda: socket.create_connection(("127.0.0.1", self.port), timeout=0.5))

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)


@pytest.fixture
def private_redis(tmp_path: Path, postgres: None) -> Iterator[PrivateRedis]:
    require_service("redis-server on PATH", shutil.which("redis-server") is not None)
    redis = PrivateRedis(port=free_port(), directory=tmp_path)
    redis.start()
    yield redis
    if redis.process and redis.process.poll() is None:
        redis.kill()


@dataclass
class Server:
    base: str
    process: subprocess.Popen[bytes]
    log: Path
    timeouts: list[float] = field(default_factory=list)

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, dict[str, str], Any]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(  # noqa: S310 - loopback test server
            f"{self.base}{path}",
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        started = time.monotonic()
        try:
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310  # nosec B310
                status, headers, raw = response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as error:
            status, headers, raw = error.code, dict(error.headers), error.read()
        self.timeouts.append(time.monotonic() - started)
        try:
            payload = json.loads(raw) if raw else None
        except ValueError:
            payload = raw.decode(errors="replace")
        return status, headers, payload


@contextlib.contextmanager
def gunicorn(tmp_path: Path, **env: str) -> Iterator[Server]:
    port = free_port()
    log = tmp_path / "gunicorn.log"
    with log.open("wb") as handle:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "portfolio.wsgi:application",
                "--bind",
                f"127.0.0.1:{port}",
                "--workers",
                "1",
                "--threads",
                "4",
                "--worker-class",
                "gthread",
                "--timeout",
                "60",
            ],
            cwd=ROOT,
            env={
                # Not PROMETHEUS_MULTIPROC_DIR, even empty: prometheus_client would write its
                # files into the working directory.
                **{
                    k: v
                    for k, v in os.environ.items()
                    if k not in ("DJANGO_ENV", "PROMETHEUS_MULTIPROC_DIR")
                },
                "DATABASE_URL": _test_database_url(),
                "DJANGO_SETTINGS_MODULE": "portfolio.settings",
                "CELERY_TASK_ALWAYS_EAGER": "false",
                "REDIS_SOCKET_TIMEOUT": "0.5",
                "REDIS_SOCKET_CONNECT_TIMEOUT": "0.5",
                "CELERY_BROKER_CONNECTION_TIMEOUT": "0.5",
                **env,
            },
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        server = Server(base=f"http://127.0.0.1:{port}", process=process, log=log)
        try:
            wait_until(lambda: server.call("GET", "/health")[0] == 200, timeout=30)
            yield server
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)


def ml_events(visitor: str, start: int, count: int) -> dict[str, Any]:
    now = int(time.time())
    return {
        "events": [
            {
                "event_name": "deep_read",
                "user_pseudo_id": visitor,
                "event_params": {"project_id": "llm-router", "read_seconds": 90},
                "event_timestamp": now - 100 + i,
                "event_id": f"{visitor}-{i}",
            }
            for i in range(start, start + count)
        ]
    }


def test_redis_down__personalization_from_the_database__ingestion_stores__ready_names_it(
    tmp_path, private_redis
):
    from analytics.models import Event
    from personalization.services import catalog_load_demo, visitor_resegment

    catalog_load_demo()
    visitor = "drill.redis"
    with gunicorn(tmp_path, REDIS_URL=private_redis.url) as server:
        status, _, body = server.call("POST", "/api/events", ml_events(visitor, 0, 6))
        assert status == 201, body
        visitor_resegment(user_pseudo_id=visitor)  # what the worker would do
        status, _, before = server.call("GET", f"/api/personalization?user_id={visitor}")
        assert status == 200
        assert before["segment"] == "ML_ENGINEER"

        private_redis.kill()

        status, _, during = server.call("GET", f"/api/personalization?user_id={visitor}")
        assert status == 200, during
        assert during["segment"] == "ML_ENGINEER"  # the profile, read from PostgreSQL
        assert during["rule_version"] == before["rule_version"]

        status, _, body = server.call("POST", "/api/events", ml_events(visitor, 6, 3))
        assert status == 201, (body, server.log.read_text()[-3000:])
        assert body["accepted"] == 3
        assert Event.objects.filter(user_pseudo_id=visitor).count() == 9

        status, _, ready = server.call("GET", "/ready")
        assert status == 503
        assert "cache" in ready["failing"]
        # Every call answered within the configured timeouts: nothing hangs on a dead Redis.
        assert max(server.timeouts[-3:]) < 10

        private_redis.start()  # same port: the server reconnects by itself

        assert wait_until(lambda: server.call("GET", "/ready")[0] == 200, timeout=30)
        status, _, after = server.call("GET", f"/api/personalization?user_id={visitor}")
        assert status == 200
        assert after["segment"] == "ML_ENGINEER"

    # The events stored while the broker was down queued no re-segmentation; the sweep does.
    from personalization.models import VisitorProfile
    from personalization.tasks import resegment_stale

    assert VisitorProfile.objects.get(user_pseudo_id=visitor).event_count == 6
    assert resegment_stale.delay().get() == 1
    assert VisitorProfile.objects.get(user_pseudo_id=visitor).event_count == 9


class CuttableProxy:
    """A TCP proxy to PostgreSQL that can be cut (every connection dropped, new ones refused)
    and restored: the database 'goes away' for one server without stopping it for others."""

    def __init__(self, target: tuple[str, int]) -> None:
        import threading

        self.target = target
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.up = threading.Event()
        self.up.set()
        self.closing = False
        self.lock = threading.Lock()
        self.sockets: set[socket.socket] = set()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        import threading

        while not self.closing:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.up.is_set():
                client.close()  # refused, as a stopped server would
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self.lock:
                self.sockets |= {client, upstream}
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        self.up.clear()
        with self.lock:
            for sock in self.sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            self.sockets.clear()

    def restore(self) -> None:
        self.up.set()

    def close(self) -> None:
        self.closing = True
        self.cut()
        self.listener.close()


@pytest.fixture
def database_proxy(postgres: None) -> Iterator[tuple[CuttableProxy, str]]:
    from django.db import connection

    cfg = connection.settings_dict
    proxy = CuttableProxy((cfg["HOST"] or "127.0.0.1", int(cfg["PORT"] or 5432)))
    url = _test_database_url().replace(f":{cfg['PORT'] or 5432}/", f":{proxy.port}/")
    assert str(proxy.port) in url
    yield proxy, url
    proxy.close()


def test_postgres_down__ingestion_503_retry_after__all_or_nothing__recovers_by_itself(
    tmp_path, database_proxy
):
    import threading

    from analytics.models import Event

    proxy, url = database_proxy
    with gunicorn(tmp_path, DATABASE_URL=url, DB_CONNECT_TIMEOUT="2") as server:
        status, _, body = server.call("POST", "/api/events", ml_events("drill.pg.a", 0, 3))
        assert status == 201, body

        proxy.cut()
        status, headers, body = server.call("POST", "/api/events", ml_events("drill.pg.b", 0, 3))
        assert status == 503, body
        assert int(headers["Retry-After"]) >= 1
        assert body["detail"]
        assert server.call("GET", "/health")[0] == 200  # liveness does not need the database
        status, _, ready = server.call("GET", "/ready")
        assert status == 503
        assert "database" in ready["failing"]
        assert not Event.objects.filter(user_pseudo_id="drill.pg.b").exists()

        proxy.restore()  # no restart: the next request reconnects
        status, _, body = wait_until(
            lambda: (
                (r := server.call("POST", "/api/events", ml_events("drill.pg.b", 0, 3)))[0] == 201
                and r
            ),
            timeout=20,
        )
        assert body["accepted"] == 3

        # Cut while a 500-event batch is being written: whatever the client hears, the batch
        # is stored whole or not at all.
        outcome: dict[str, Any] = {}
        batch = ml_events("drill.pg.c", 0, 500)
        sender = threading.Thread(
            target=lambda: outcome.update(
                zip(
                    ("status", "headers", "body"),
                    server.call("POST", "/api/events", batch),
                    strict=True,
                )
            )
        )
        sender.start()
        time.sleep(0.05)
        proxy.cut()
        sender.join(timeout=60)
        stored = Event.objects.filter(user_pseudo_id="drill.pg.c").count()
        assert stored in (0, 500), stored
        assert outcome["status"] in (201, 503)
        if outcome["status"] == 201:
            assert stored == 500
        # A 503 with the batch stored is possible (the commit landed, the answer did not): the
        # client retries, and the events' ids drop the repeats.
        proxy.restore()
        assert wait_until(lambda: server.call("GET", "/ready")[0] == 200, timeout=20)


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(stat.parent.name))
    return found


@pytest.mark.real_worker
def test_worker_killed_mid_import__the_task_runs_again__every_row_stored_once(
    tmp_path, settings, redis_url
):
    """SIGKILL to the pool process running a GA4 import, after some of its batches are
    committed: the task is requeued (acks_late + reject_on_worker_lost), runs again in a new
    process, and the file's rows end up stored exactly once."""
    import gzip
    import uuid

    from django.core.files.base import ContentFile

    from analytics.models import Event, GA4ExportUpload, ImportStatus
    from analytics.tasks import import_ga4_upload
    from bench.ga4_import import export_rows

    require_service("a Celery broker (REDIS_URL)", not settings.CELERY_TASK_ALWAYS_EAGER)
    rows = 60_000
    settings.MEDIA_ROOT = str(tmp_path / "media")
    lines = b"".join(json.dumps(row).encode() + b"\n" for row in export_rows(rows, seed=11))
    upload = GA4ExportUpload.objects.create(
        file=ContentFile(gzip.compress(lines, compresslevel=1), name="drill.ndjson.gz")
    )

    queue = f"drill-{uuid.uuid4().hex[:8]}"
    log = tmp_path / "worker.log"
    with log.open("wb") as handle:
        worker = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "portfolio",
                "worker",
                "--pool=prefork",
                "--concurrency=1",
                "-Q",
                queue,
                "-n",
                f"{queue}@localhost",
                "--loglevel=INFO",
                "--without-gossip",
                "--without-mingle",
            ],
            cwd=ROOT,
            env={
                **{k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"},
                "DATABASE_URL": _test_database_url(),
                "MEDIA_ROOT": settings.MEDIA_ROOT,
            },
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            import_ga4_upload.apply_async(args=[upload.pk], queue=queue)
            # Some batches committed, the import still running: kill the process doing it.
            wait_until(lambda: Event.objects.count() >= 5_000, timeout=60, interval=0.05)
            upload.refresh_from_db()
            assert upload.status == ImportStatus.RUNNING
            assert Event.objects.count() < rows, "the import finished before the kill"
            (child,) = _children(worker.pid)
            os.kill(child, signal.SIGKILL)

            def finished() -> bool:
                upload.refresh_from_db()
                return upload.status == ImportStatus.DONE

            wait_until(finished, timeout=120, interval=0.2)
        finally:
            os.killpg(worker.pid, signal.SIGTERM)
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(worker.pid, signal.SIGKILL)

    text = log.read_text()
    assert "WorkerLostError" in text or "SIGKILL" in text, text[-2000:]
    assert Event.objects.count() == rows  # every row once: the re-run added only the rest
    assert upload.rows_read == rows
    assert upload.rows_imported + upload.rows_duplicate == rows
    assert upload.rows_duplicate > 0  # the re-run met the rows the killed run had committed
