"""Shared plumbing for `make bench`: a scratch PostgreSQL database, a gunicorn server, COPY."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import psycopg
import redis

ROOT = Path(__file__).resolve().parent.parent
PG_ADMIN_URL = os.environ.get("BENCH_PG_ADMIN_URL", "postgres://postgres@127.0.0.1:5432/postgres")
BENCH_DB = os.environ.get("BENCH_DB", "portfolio_bench")
BENCH_DATABASE_URL = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{BENCH_DB}"
BENCH_REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/2")


def bench_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"DJANGO_ENV", "DJANGO_SETTINGS_MODULE"}}
    env.update(
        DATABASE_URL=BENCH_DATABASE_URL,
        REDIS_URL=BENCH_REDIS_URL,
        DJANGO_DEBUG="false",
        LOG_LEVEL="WARNING",
        DJANGO_SETTINGS_MODULE="portfolio.settings",
    )
    env.update(extra)
    return env


def manage(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=bench_env(**env),
        check=True,
        capture_output=True,
        text=True,
    )


def django_setup_on_scratch() -> None:
    """Start Django in this process on the scratch database and Redis db: the bench and the
    load test seed data themselves, and must never write to DATABASE_URL's database."""
    import django

    os.environ.update(
        DJANGO_SETTINGS_MODULE="portfolio.settings",
        DATABASE_URL=BENCH_DATABASE_URL,
        REDIS_URL=BENCH_REDIS_URL,
    )
    os.environ.pop("DJANGO_ENV", None)
    django.setup()


def reset_database() -> None:
    """A fresh scratch database with the current schema, and an empty scratch Redis db.

    The Redis db is the bench stack's cache and Celery broker: an earlier run leaves queued
    tasks there (re-segmentation of every visitor it wrote, with no worker to run them), and
    the load test's worker would spend the run draining them beside the traffic it measures.
    """
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{BENCH_DB}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{BENCH_DB}"')
    redis.Redis.from_url(BENCH_REDIS_URL).flushdb()
    manage("migrate", "--noinput")


def truncate(*tables: str) -> None:
    with psycopg.connect(BENCH_DATABASE_URL, autocommit=True) as conn:
        conn.execute(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY")
        conn.execute("VACUUM ANALYZE")


def checkpoint() -> None:
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute("CHECKPOINT")


EVENT_COLUMNS = (
    "event_name, user_pseudo_id, event_params, occurred_at, received_at, source, session_id, "
    "page_location, page_referrer, dedupe_key"
)


def copy_ceiling(rows: Sequence[tuple[object, ...]]) -> float:
    """Rows/s of PostgreSQL's own COPY of `rows` (EVENT_COLUMNS) into a table shaped and indexed
    like analytics_event: the ceiling any ingestion path can approach."""
    with psycopg.connect(BENCH_DATABASE_URL) as conn:
        conn.execute("DROP TABLE IF EXISTS bench_copy_event")
        conn.execute("CREATE TABLE bench_copy_event (LIKE analytics_event INCLUDING ALL)")
        conn.commit()
        started = time.perf_counter()
        with (
            conn.cursor() as cursor,
            cursor.copy(f"COPY bench_copy_event ({EVENT_COLUMNS}) FROM STDIN") as copy,
        ):
            for row in rows:
                copy.write_row(row)
        conn.commit()
        elapsed = time.perf_counter() - started
        conn.execute("DROP TABLE bench_copy_event")
        conn.commit()
    return len(rows) / elapsed


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def gunicorn(
    *, workers: int = 2, threads: int = 4, extra_env: dict[str, str] | None = None
) -> Iterator[Server]:
    """A gunicorn server on the bench database (bench.wsgi: the product plus its baselines)."""
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "bench.wsgi:application",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(workers),
            "--worker-class",
            "gthread",
            "--threads",
            str(threads),
            "--log-level",
            "warning",
            "--max-requests",
            "0",
            # Idle keep-alive connections must outlive a paced client's pause (default 2 s).
            "--keep-alive",
            "30",
        ],
        cwd=ROOT,
        env=bench_env(RATELIMIT_ENABLE="false", **(extra_env or {})),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{base}/health", timeout=1) as response:  # noqa: S310  # nosec B310
                    if response.status == 200:
                        break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    output = process.stderr.read() if process.stderr else b""
                    raise RuntimeError(f"gunicorn did not start: {output!r}") from None
                time.sleep(0.2)
        yield Server(base=base, pid=process.pid)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)


@dataclass(frozen=True)
class Server:
    base: str
    pid: int  # gunicorn's master

    def worker_rss_mib(self) -> list[float]:
        """Resident memory of each worker (the master's children), from /proc."""
        sizes = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
                if int(fields[1]) != self.pid:
                    continue
                status = (stat.parent / "status").read_text()
            except (OSError, IndexError, ValueError):
                continue  # a process that ended while we looked
            for line in status.splitlines():
                if line.startswith("VmRSS:"):
                    sizes.append(int(line.split()[1]) / 1024)
        return sorted(sizes)


def median_of(runs: int, measure: Callable[[int], float]) -> tuple[float, list[float]]:
    figures = [measure(run) for run in range(runs)]
    return statistics.median(figures), figures


def peak_rss_mib_of_children() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def report_section_write(path: Path, name: str, text: str) -> None:
    """Put `text` between `<!-- name:start -->` and `<!-- name:end -->` in the report at
    `path`, replacing what was there or appending it: `make bench` and `make loadtest` each
    rewrite their own part of docs/PERFORMANCE.md and keep the other's."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    block = f"{start}\n{text.strip()}\n{end}\n"
    current = path.read_text() if path.exists() else ""
    if start in current and end in current:
        before, rest = current.split(start, 1)
        after = rest.split(end, 1)[1].lstrip("\n")
        updated = before + block + ("\n" + after if after else "")
    else:
        updated = (current.rstrip() + "\n\n" if current.strip() else "") + block
    path.write_text(updated)
