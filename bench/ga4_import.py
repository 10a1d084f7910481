"""GA4 BigQuery-export import: `manage.py import_ga4_export` on a generated gzip NDJSON file, in
a fresh process so its peak RSS is its own, next to PostgreSQL's COPY of the same rows."""

from __future__ import annotations

import gzip
import json
import random
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from analytics.services import dedupe_key

from . import common

CACHE = common.ROOT / "var" / "bench"
EVENT_NAMES = [
    "page_view",
    "project_click",
    "deep_read",
    "section_view",
    "skill_hover",
    "scroll_depth",
    "contact_intent",
    "download_resume",
]


def export_rows(count: int, *, seed: int = 1) -> Iterator[dict]:
    rng = random.Random(seed)
    base = 1_764_000_000_000_000
    for i in range(count):
        user = f"{rng.randrange(50_000)}.{1_700_000_000 + rng.randrange(1000)}"
        micros = base + i * 1_000_000 + rng.randrange(1_000_000)
        yield {
            "event_date": datetime.fromtimestamp(micros / 1e6, tz=UTC).strftime("%Y%m%d"),
            "event_timestamp": str(micros),
            "event_name": rng.choice(EVENT_NAMES),
            "event_params": [
                {"key": "ga_session_id", "value": {"int_value": str(1_764_000_000 + i // 20)}},
                {
                    "key": "page_location",
                    "value": {"string_value": "https://portfolio.example.com/"},
                },
                {"key": "project_id", "value": {"string_value": f"project-{rng.randrange(12)}"}},
                {"key": "engagement_time_msec", "value": {"int_value": str(rng.randrange(60_000))}},
            ],
            "user_pseudo_id": user,
            "user_id": None,
            "device": {"category": rng.choice(["desktop", "mobile"]), "operating_system": "Linux"},
            "geo": {"country": rng.choice(["France", "Germany", "United States"])},
            "traffic_source": {"name": "(direct)", "medium": "(none)", "source": "(direct)"},
            "stream_id": "1234567890",
            "platform": "WEB",
        }


def export_file(count: int) -> Path:
    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / f"ga4-export-{count}.ndjson.gz"
    if not path.exists():
        partial = path.with_suffix(".partial")
        with gzip.open(partial, "wt", compresslevel=1) as handle:
            for row in export_rows(count):
                handle.write(json.dumps(row, separators=(",", ":")) + "\n")
        partial.rename(path)
    return path


def run_import(path: Path) -> tuple[float, float]:
    """(seconds, peak RSS MiB) of one import in its own process. The import reads the file in
    a child process: the peak is the importing process's plus its child's (an upper bound,
    the pages they share counting twice)."""
    code = (
        "import resource, sys, django; django.setup(); "
        "from django.core.management import call_command; "
        "call_command('import_ga4_export', sys.argv[1], '--quiet'); "
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss"
        " + resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    )
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", code, str(path)],
        cwd=common.ROOT,
        env=common.bench_env(),
        check=True,
        capture_output=True,
        text=True,
    )
    elapsed = time.perf_counter() - started
    peak_kib = int(done.stdout.strip().splitlines()[-1])
    return elapsed, peak_kib / 1024


def copy_rows(count: int) -> list[tuple[object, ...]]:
    now = datetime.now(tz=UTC)
    rows: list[tuple[object, ...]] = []
    for row in export_rows(count):
        params = {p["key"]: next(iter(p["value"].values())) for p in row["event_params"]}
        occurred = datetime.fromtimestamp(int(row["event_timestamp"]) / 1e6, tz=UTC)
        rows.append(
            (
                row["event_name"],
                row["user_pseudo_id"],
                json.dumps(params),
                occurred,
                now,
                "ga4_export",
                str(params["ga_session_id"]),
                params["page_location"],
                "",
                dedupe_key(
                    user_pseudo_id=row["user_pseudo_id"],
                    event_name=row["event_name"],
                    occurred_at=occurred,
                    event_params=params,
                ),
            )
        )
    return rows


def run(*, rows: int = 1_000_000, small_rows: int = 100_000, runs: int = 1) -> dict[str, Any]:
    big, small = export_file(rows), export_file(small_rows)
    common.truncate("analytics_event", "analytics_visitor", "analytics_rejectedevent")
    _, small_rss = run_import(small)
    figures = []
    big_rss = 0.0
    for _ in range(runs):
        common.truncate("analytics_event", "analytics_visitor", "analytics_rejectedevent")
        # Every run starts from the same WAL state: without it a run that begins just before
        # a checkpoint writes full-page images for every index page it touches after it.
        common.checkpoint()
        seconds, rss = run_import(big)
        figures.append(rows / seconds)
        big_rss = max(big_rss, rss)
    reimport_seconds, _ = run_import(big)  # idempotent: everything is a duplicate now
    common.truncate("analytics_event", "analytics_visitor", "analytics_rejectedevent")
    ceiling = common.copy_ceiling(copy_rows(min(rows, 300_000)))
    figures.sort()
    return {
        "rows": rows,
        "rows_per_s": figures[len(figures) // 2],
        "runs": figures,
        "peak_rss_mib": big_rss,
        "peak_rss_mib_small": small_rss,
        "small_rows": small_rows,
        "reimport_rows_per_s": rows / reimport_seconds,
        "copy_rows_per_s": ceiling,
        "file_mib": big.stat().st_size / 2**20,
    }
