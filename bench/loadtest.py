"""`make loadtest`: the production-mode stack on this machine (gunicorn through the container
entrypoint with production settings, a Celery worker, PostgreSQL, Redis), 1,000 locust users
of loadtests/locustfile.py for a fixed time, and the outcome in docs/PERFORMANCE.md.

    python -m bench.loadtest [--users 1000] [--spawn-rate 100] [--run-time 120]
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import os
import platform
import secrets
import shlex
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import common

common.django_setup_on_scratch()

from bench import personalization  # noqa: E402

OUTPUT = common.ROOT / "docs" / "PERFORMANCE.md"
RESULTS = common.ROOT / "var" / "loadtest"
ADMIN = "loadtest-admin"


def production_env(password: str, port: int) -> dict[str, str]:
    """What the compose stack sets, pointed at the scratch database and Redis db."""
    return common.bench_env(
        DJANGO_ENV="production",
        DJANGO_SETTINGS_MODULE="portfolio.settings.production",
        DJANGO_SECRET_KEY=secrets.token_urlsafe(64),
        ALLOWED_HOSTS="127.0.0.1,localhost",
        SECURE_SSL_REDIRECT="false",
        PORT=str(port),
        BIND_HOST="127.0.0.1",
        WEB_CONCURRENCY=os.environ.get("WEB_CONCURRENCY", "2"),
        # All locust users come from one address: per-IP limits would answer 429 to most of
        # them. The limits have their own tests; here they would only measure themselves.
        RATELIMIT_ENABLE="false",
        ADMIN_USERNAME=ADMIN,
        ADMIN_PASSWORD=password,
        PROMETHEUS_MULTIPROC_DIR=str(RESULTS / "prometheus"),
        LOG_LEVEL="WARNING",
    )


@contextlib.contextmanager
def role(name: str, env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    handle = log.open("wb")
    process = subprocess.Popen(
        ["bash", "deploy/entrypoint.sh", name],
        cwd=common.ROOT,
        env={**env, "PATH": f"{Path(sys.executable).parent}:{env.get('PATH', '')}"},
        stdout=handle,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        yield process
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
        handle.close()


def wait_ready(base: str, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the web role exited with {process.returncode}")
        with (
            contextlib.suppress(OSError),
            urllib.request.urlopen(f"{base}/ready", timeout=2) as response,  # noqa: S310  # nosec B310
        ):
            if response.status == 200:
                return
        time.sleep(0.5)
    raise RuntimeError("the stack never became ready")


def aggregated(stats_csv: Path) -> dict[str, Any]:
    rows = {row["Name"]: row for row in csv.DictReader(stats_csv.open())}
    return rows


def figures(row: dict[str, str]) -> str:
    return (
        f"{int(row['Request Count']):,} | {int(row['Failure Count']):,} | "
        f"{float(row['Requests/s']):,.0f} | {row['50%']} | {row['95%']} | {row['99%']} | "
        f"{row['Max Response Time'].split('.')[0]}"
    )


def report(
    rows: dict[str, Any], *, users: int, spawn_rate: int, run_time: int, command: str
) -> str:
    total = rows["Aggregated"]
    p95 = float(total["95%"])
    failures = int(total["Failure Count"])
    verdict = "met" if p95 < 200 and failures == 0 else "NOT met"
    lines = [
        "## Load test",
        "",
        f"Measured by `{command}` on {datetime.now(tz=UTC):%Y-%m-%d %H:%M} UTC: "
        f"{platform.machine()}, {os.cpu_count()} cores. The production-mode stack on this "
        "machine (`deploy/entrypoint.sh web` with production settings: gunicorn "
        f"{os.environ.get('WEB_CONCURRENCY', '2')} gthread workers x "
        f"{os.environ.get('GUNICORN_THREADS', '4')} threads; one Celery "
        "worker; PostgreSQL; Redis), with locust (loadtests/locustfile.py, FastHttpUser) on the "
        f"same 2 cores: {users:,} users, spawned at {spawn_rate}/s, {run_time} s, each waiting "
        "1-3 s between requests; personalization 3 : event 1 : admin event search 1, visitor ids "
        "spread over 1,000 segmented visitors. Rate limits off (one client address).",
        "",
        "| request | requests | failures | req/s | p50 ms | p95 ms | p99 ms | max ms |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name in (
        "/api/personalization",
        "/api/events",
        "/api/admin/events/search",
        "/api/admin/login",
        "Aggregated",
    ):
        if name in rows:
            lines.append(f"| {name} | {figures(rows[name])} |")
    lines += [
        "",
        f"Target: p95 < 200 ms and zero failures with {users:,} users: **{verdict}** "
        f"(p95 {p95:.0f} ms, {failures} failures).",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--spawn-rate", type=int, default=100)
    parser.add_argument("--run-time", type=int, default=120, help="seconds")
    parser.add_argument("--output", default=str(OUTPUT))
    args = parser.parse_args()
    command = (
        "make loadtest"
        if len(sys.argv) == 1
        else "python -m bench.loadtest " + shlex.join(sys.argv[1:])
    )

    RESULTS.mkdir(parents=True, exist_ok=True)
    password = secrets.token_urlsafe(24)
    port = common.free_port()
    env = production_env(password, port)
    print("preparing the scratch database", file=sys.stderr)
    common.reset_database()
    common.manage("ensure_admin", **{k: env[k] for k in ("ADMIN_USERNAME", "ADMIN_PASSWORD")})
    common.truncate("analytics_event", "analytics_visitor", "personalization_visitorprofile")
    personalization.seed_visitors(prefix="lt")
    base = f"http://127.0.0.1:{port}"
    with (
        role("web", env, RESULTS / "web.log") as web,
        role("worker", env, RESULTS / "worker.log"),
    ):
        wait_ready(base, web)
        print(f"locust: {args.users} users for {args.run_time} s", file=sys.stderr)
        locust = subprocess.run(
            [
                sys.executable,
                "-m",
                "locust",
                "-f",
                "loadtests/locustfile.py",
                "--headless",
                "--host",
                base,
                "--users",
                str(args.users),
                "--spawn-rate",
                str(args.spawn_rate),
                "--run-time",
                f"{args.run_time}s",
                "--csv",
                str(RESULTS / "locust"),
                "--only-summary",
                "--stop-timeout",
                "10",
            ],
            cwd=common.ROOT,
            env={
                **os.environ,
                "LOADTEST_ADMIN_USERNAME": ADMIN,
                "LOADTEST_ADMIN_PASSWORD": password,
                "LOADTEST_PREFIX": "lt",
            },
            check=False,
        )
    rows = aggregated(RESULTS / "locust_stats.csv")
    text = report(
        rows,
        users=args.users,
        spawn_rate=args.spawn_rate,
        run_time=args.run_time,
        command=command,
    )
    common.report_section_write(Path(args.output), "loadtest", text)
    print(text)
    sys.exit(locust.returncode)


if __name__ == "__main__":
    main()
