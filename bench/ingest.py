"""Batch ingestion over HTTP: POST /api/events with 500-event batches against gunicorn on
PostgreSQL, next to PostgreSQL's own COPY of the same rows."""

from __future__ import annotations

import http.client
import json
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from analytics.services import dedupe_key

from . import common

EVENT_NAMES = ["project_click", "deep_read", "section_view", "skill_hover", "scroll_depth"]


def make_batches(
    run: int, *, batches: int, size: int = 500, visitors: int = 2_000
) -> list[list[dict]]:
    rng = random.Random(run)
    base = int(time.time()) - 3_600
    return [
        [
            {
                "event_name": rng.choice(EVENT_NAMES),
                "user_pseudo_id": f"{rng.randrange(visitors)}.{1_700_000_000 + run}",
                "event_params": {
                    "project_id": f"p{rng.randrange(12)}",
                    "duration": rng.randrange(9_000),
                },
                "event_timestamp": (base + b * size + i) * 1000,
                "event_id": f"r{run}-b{b}-e{i}",
            }
            for i in range(size)
        ]
        for b in range(batches)
    ]


def post_all(base_url: str, bodies: list[bytes], *, concurrency: int) -> float:
    """Seconds to POST every body, `concurrency` keep-alive connections at a time."""
    url = urlsplit(base_url)
    local = threading.local()
    failures: list[int] = []

    def send(body: bytes) -> None:
        if not hasattr(local, "conn"):
            local.conn = http.client.HTTPConnection(
                url.hostname or "127.0.0.1", url.port, timeout=60
            )
        local.conn.request("POST", "/api/events", body, {"Content-Type": "application/json"})
        response = local.conn.getresponse()
        response.read()
        if response.status != 201:
            failures.append(response.status)

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        list(pool.map(send, bodies))
    elapsed = time.perf_counter() - started
    if failures:
        raise RuntimeError(f"{len(failures)} batches failed: {sorted(set(failures))}")
    return elapsed


def copy_rows(batches: list[list[dict]]) -> list[tuple[object, ...]]:
    now = datetime.now(tz=UTC)
    rows: list[tuple[object, ...]] = []
    for batch in batches:
        for e in batch:
            occurred = datetime.fromtimestamp(e["event_timestamp"] / 1000, tz=UTC)
            rows.append(
                (
                    e["event_name"],
                    e["user_pseudo_id"],
                    json.dumps(e["event_params"]),
                    occurred,
                    now,
                    "api",
                    "",
                    "",
                    "",
                    dedupe_key(
                        user_pseudo_id=e["user_pseudo_id"],
                        event_name=e["event_name"],
                        occurred_at=occurred,
                        event_params=e["event_params"],
                        event_id=e["event_id"],
                    ),
                )
            )
    return rows


def run(*, runs: int = 3, batches: int = 200, concurrency: int = 4) -> dict[str, Any]:
    figures = []
    with common.gunicorn() as server:
        base_url = server.base
        for number in range(runs):
            common.truncate("analytics_event", "analytics_visitor")
            data = make_batches(number, batches=batches)
            bodies = [json.dumps({"events": batch}).encode() for batch in data]
            elapsed = post_all(base_url, bodies, concurrency=concurrency)
            figures.append(batches * 500 / elapsed)
    common.truncate("analytics_event", "analytics_visitor")
    ceiling = common.copy_ceiling(copy_rows(make_batches(99, batches=batches)))
    figures.sort()
    return {
        "events_per_s": figures[len(figures) // 2],
        "runs": figures,
        "copy_rows_per_s": ceiling,
        "events": batches * 500,
        "concurrency": concurrency,
    }
