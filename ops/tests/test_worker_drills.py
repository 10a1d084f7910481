"""Worker drills: a real `celery worker` whose broker is a PRIVATE redis-server (killing it
disturbs nothing else on the machine) or the environment's. The worker must outlive the broker
and pick up work again once it is back, and an import whose worker was killed must finish by
itself.

Named to run after test_failure_drills: a transactional GA4 import drill leaves the migrated
rows (segments, signals) missing for the transactional test right after it, and that module's
Redis drill needs them (the same happens after its own import drill)."""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from celery import Celery

from conftest import ROOT, _test_database_url, require_service
from ops.tests.test_failure_drills import private_redis, wait_until

__all__ = ["private_redis"]  # the fixture, used by name

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.services,
    pytest.mark.real_worker,
]


@dataclass
class Worker:
    queue: str
    hostname: str
    process: subprocess.Popen[bytes]
    log: Path
    client: Celery  # an app in this process on the same private broker

    def alive(self) -> bool:
        return self.process.poll() is None

    def ping(self, timeout: float) -> dict[str, str]:
        result = self.client.send_task("ops.tasks.ping", args=["after"], queue=self.queue)
        return result.get(timeout=timeout)


@contextlib.contextmanager
def worker_on(
    broker_url: str, tmp_path: Path, *args: str, queue: str = "", **env: str
) -> Iterator[Worker]:
    """A prefork worker (as production runs it) whose broker and results are `broker_url`;
    the cache stays the environment's."""
    queue = queue or f"drill-{uuid.uuid4().hex[:8]}"
    hostname = f"{queue}@localhost"
    log = tmp_path / f"{queue}.log"
    # Not the current app: shared tasks of later tests would bind to it (and to its broker).
    client = Celery("drill", broker=broker_url, backend=broker_url, set_as_current=False)
    client.conf.broker_connection_retry_on_startup = True
    with log.open("wb") as handle:
        process = subprocess.Popen(
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
                hostname,
                "--loglevel=INFO",
                "--without-gossip",
                "--without-mingle",
                *args,
            ],
            cwd=ROOT,
            env={
                **{k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"},
                "DATABASE_URL": _test_database_url(),
                "CELERY_BROKER_URL": broker_url,
                "CELERY_RESULT_BACKEND": broker_url,
                **env,
            },
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        worker = Worker(queue, hostname, process, log, client)
        try:
            wait_until(
                lambda: worker.alive() and client.control.ping(destination=[hostname], timeout=0.5),
                timeout=60,
            )
            yield worker
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
            client.close()


def ga4_upload(tmp_path: Path, settings, rows: int):  # type: ignore[no-untyped-def]
    from django.core.files.base import ContentFile

    from analytics.models import GA4ExportUpload
    from bench.ga4_import import export_rows

    settings.MEDIA_ROOT = str(tmp_path / "media")
    lines = b"".join(json.dumps(row).encode() + b"\n" for row in export_rows(rows, seed=5))
    return GA4ExportUpload.objects.create(
        file=ContentFile(gzip.compress(lines, compresslevel=1), name="drill.ndjson.gz")
    )


def test_broker_lost_mid_task__worker_survives__takes_the_next_task(
    tmp_path, settings, private_redis
):
    """Issue 18 item 8: Redis (the broker) dies while the worker runs a task (acks_late: the
    message is unacked), then comes back on the same address. The worker process must still
    be there and run the next task it is sent, with nobody restarting it."""
    from analytics.models import Event

    upload = ga4_upload(tmp_path, settings, rows=150_000)
    with worker_on(private_redis.url, tmp_path, MEDIA_ROOT=settings.MEDIA_ROOT) as worker:
        worker.client.send_task(
            "analytics.tasks.import_ga4_upload", args=[upload.pk], queue=worker.queue
        )
        wait_until(lambda: Event.objects.count() >= 2_000, timeout=60, interval=0.05)
        private_redis.kill()  # mid-task, the task's message unacked
        # Long enough for the consumer to notice, try to restore the unacked message and
        # fail its first reconnection attempts.
        wait_until(lambda: "Connection to broker lost" in worker.log.read_text(), timeout=30)
        time.sleep(5)  # a few reconnection attempts fail
        private_redis.start()  # same port, empty: what a restarted Redis without AOF is

        assert worker.alive(), worker.log.read_text()[-3000:]
        reply = wait_until(lambda: worker.ping(timeout=10), timeout=90, interval=1)

        assert reply == {"reply": "after"}
        assert worker.alive(), worker.log.read_text()[-3000:]


def test_worker_killed_mid_import__sweep_requeues__next_worker_finishes(tmp_path, settings):
    """Issue 18 item 9: SIGKILL to the whole worker (main process and pool) during a GA4
    import leaves the upload "running" and its message unacked until the broker's visibility
    timeout (an hour). The sweep (beat's analytics.tasks.import_uploads_resume, called here
    as beat would) sees its heartbeat stop and re-queues it; another worker finishes it, every
    row stored once. Short stale time for the test; the same on both sides."""
    from analytics.ga4_export import uploads_resume_stale
    from analytics.models import Event, GA4ExportUpload, ImportStatus

    require_service("a Celery broker (REDIS_URL)", not settings.CELERY_TASK_ALWAYS_EAGER)
    rows = 150_000
    settings.GA4_IMPORT_STALE_SECONDS = 5  # a heartbeat every 5/6 s
    short = {"GA4_IMPORT_STALE_SECONDS": "5", "MEDIA_ROOT": str(tmp_path / "media")}
    upload = ga4_upload(tmp_path, settings, rows=rows)
    broker = settings.CELERY_BROKER_URL
    with worker_on(broker, tmp_path, **short) as first:
        first.client.send_task(
            "analytics.tasks.import_ga4_upload", args=[upload.pk], queue=first.queue
        )
        wait_until(lambda: Event.objects.count() >= 5_000, timeout=60, interval=0.05)
        os.killpg(first.process.pid, signal.SIGKILL)  # the whole worker, at once
        first.process.wait(timeout=10)
    upload.refresh_from_db()
    assert upload.status == ImportStatus.RUNNING
    assert Event.objects.count() < rows, "the import finished before the kill"

    assert uploads_resume_stale(queue=first.queue) == []  # its heartbeat is still fresh
    time.sleep(settings.GA4_IMPORT_STALE_SECONDS + 1)
    assert uploads_resume_stale(queue=first.queue) == [upload.pk]
    assert uploads_resume_stale(queue=first.queue) == []  # queued once

    with worker_on(broker, tmp_path, queue=first.queue, **short):

        def finished() -> bool:
            upload.refresh_from_db()
            return upload.status == ImportStatus.DONE

        wait_until(finished, timeout=120, interval=0.2)

    assert Event.objects.count() == rows
    assert upload.rows_read == rows
    assert upload.rows_imported + upload.rows_duplicate == rows
    assert upload.rows_duplicate > 0  # the resumed run met the rows the killed one committed
    assert GA4ExportUpload.objects.get(pk=upload.pk).finished_at is not None
