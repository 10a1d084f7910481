"""`make bench`: one command, one run, one report in docs/PERFORMANCE.md.

Each figure stands next to its ceiling measured in the same run on the same machine.
Needs the local PostgreSQL and Redis (BENCH_PG_ADMIN_URL, BENCH_REDIS_URL to point elsewhere)
and wrk.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import common

common.django_setup_on_scratch()

from bench import explain, ga4_import, ingest, personalization  # noqa: E402

OUTPUT = common.ROOT / "docs" / "PERFORMANCE.md"


def latency(r: dict[str, Any]) -> str:
    return f"p50 {r['p50_ms']:.1f} / p95 {r['p95_ms']:.1f} / p99 {r['p99_ms']:.1f} ms"


def failures(r: dict[str, Any]) -> str:
    return f"{r['errors']} errors, {r['non2xx']} non-2xx"


def table(header: str, rows: list[tuple[str, ...]]) -> str:
    columns = header.count("|") - 1
    lines = [header, "|" + "---|" * columns]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def ingestion_rows(api: dict[str, Any], imp: dict[str, Any]) -> list[tuple[str, ...]]:
    return [
        (
            "Batch API `POST /api/events` (500/batch, 4 connections)",
            f"{api['events_per_s']:,.0f} events/s",
            f"{api['copy_rows_per_s']:,.0f} rows/s",
            f"{api['events_per_s'] / api['copy_rows_per_s']:.2f}",
            "≥ 5,000 events/s",
        ),
        (
            f"GA4 export import, {imp['rows']:,} rows gzip NDJSON ({imp['file_mib']:.0f} MiB)",
            f"{imp['rows_per_s']:,.0f} rows/s",
            f"{imp['copy_rows_per_s']:,.0f} rows/s",
            f"{imp['rows_per_s'] / imp['copy_rows_per_s']:.2f}",
            "≥ 20,000 rows/s",
        ),
        (
            "GA4 export re-import of the same file (all duplicates)",
            f"{imp['reimport_rows_per_s']:,.0f} rows/s",
            "",
            "",
            "idempotent",
        ),
        (
            f"Import peak RSS: {imp['small_rows']:,} rows vs {imp['rows']:,} rows",
            f"{imp['peak_rss_mib_small']:.0f} MiB vs {imp['peak_rss_mib']:.0f} MiB",
            "",
            "",
            "flat memory",
        ),
    ]


def web_rows(p13n: dict[str, Any], reseg: dict[str, Any]) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    for conns in (64, 256, 1000):
        c, b, r = p13n[f"cached_{conns}"], p13n[f"bare_{conns}"], p13n[f"raw_{conns}"]
        rows.append(
            (
                f"cached personalization, {conns:,} connections (saturating)",
                f"{c['rps']:,.0f} req/s; {latency(c)}; {failures(c)}",
                f"{b['rps']:,.0f} req/s; {latency(b)}; {failures(b)}",
                f"{r['rps']:,.0f} req/s; {latency(r)}; {failures(r)}",
                f"{p13n[f'ratio_{conns}']:.2f}",
                "≥ 1,000 req/s and ≥ 0.7",
            )
        )
    u, paced, many = p13n["uncached_64"], p13n["paced_256"], p13n["conns_1000"]
    rss = p13n["worker_rss_mib"]
    rows += [
        (
            "uncached personalization (every id new), 64 connections",
            f"{u['rps']:,.0f} req/s; {latency(u)}; {failures(u)}",
            "",
            "",
            "",
            "",
        ),
        (
            "cached, 256 connections, fixed 600 req/s offered",
            f"{paced['rps']:,.0f} req/s; {latency(paced)}; {failures(paced)}",
            "",
            "",
            "",
            "p99 < 50 ms",
        ),
        (
            "cached, 1,000 connections, fixed 600 req/s offered",
            f"{many['rps']:,.0f} req/s; {latency(many)}; {failures(many)}",
            "",
            "",
            "",
            "zero errors",
        ),
        (
            "web worker RSS after every run above",
            " / ".join(f"{mib:.0f} MiB" for mib in rss),
            "",
            "",
            "",
            "≤ 150 MB",
        ),
        (
            f"`resegment --all`: {reseg['visitors']:,} visitors / {reseg['events']:,} events",
            f"{reseg['seconds']:.1f} s ({reseg['visitors_per_s']:,.0f} visitors/s)",
            "",
            "",
            "",
            "≤ 60 s",
        ),
    ]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000, help="GA4 export rows")
    parser.add_argument("--batches", type=int, default=200, help="500-event API batches per run")
    parser.add_argument("--runs", type=int, default=5, help="runs per figure (median)")
    parser.add_argument("--seconds", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--import-runs", type=int, default=3, help="GA4 imports (median)")
    parser.add_argument("--visitors", type=int, default=100_000, help="resegment --all size")
    parser.add_argument("--output", default=str(OUTPUT))
    args = parser.parse_args()

    command = "make bench" if len(sys.argv) == 1 else "python -m bench " + shlex.join(sys.argv[1:])
    print("preparing the scratch database", file=sys.stderr)
    common.reset_database()
    print("batch ingestion over HTTP", file=sys.stderr)
    api = ingest.run(runs=args.runs, batches=args.batches)
    print("GA4 export import", file=sys.stderr)
    imp = ga4_import.run(rows=args.rows, runs=args.import_runs)
    print("personalization under wrk", file=sys.stderr)
    p13n = personalization.run(runs=args.runs, seconds=args.seconds)
    print("resegment --all", file=sys.stderr)
    reseg = personalization.resegment_all(visitors=args.visitors, events=args.visitors * 10)
    print("query plans", file=sys.stderr)
    plans = explain.run()  # on the tables resegment_all just filled

    api_runs = ", ".join(f"{figure:,.0f}" for figure in api["runs"])
    import_runs = ", ".join(f"{figure:,.0f}" for figure in imp["runs"])
    ratio_runs = "; ".join(
        f"{conns:,} connections: " + ", ".join(f"{r:.2f}" for r in p13n[f"ratios_{conns}"])
        for conns in personalization.CONNECTIONS
    )
    text = f"""# Performance

Measured by `{command}` on {datetime.now(tz=UTC):%Y-%m-%d %H:%M} UTC: {platform.machine()},
{os.cpu_count()} cores, Python {platform.python_version()}, PostgreSQL and Redis on the same
machine as the load generator and the server, so every figure shares the 2 cores with its own
load. Rerun with `make bench`; it rewrites this part of the file, and `make loadtest` the
load-test part.

## Ingestion

{
        table(
            "| measure | figure | ceiling: PostgreSQL COPY, same rows | ratio | target |",
            ingestion_rows(api, imp),
        )
    }

- API: median of {args.runs} runs ({api_runs} events/s), {api["events"]:,} events each, into
  emptied tables, rate limiting off (it is per IP and the bench is one IP). Ceiling: `COPY` of
  the same rows into a table shaped and indexed like `analytics_event`.
- Import: median of {len(imp["runs"])} runs ({import_runs} rows/s), each
  `manage.py import_ga4_export FILE --quiet` in a fresh process, into emptied tables, after a
  `CHECKPOINT`; peak RSS is that process's `ru_maxrss`. Ceiling: `COPY` of 300,000 of the same
  rows, already transformed.

## Personalization and segmentation

gunicorn {p13n["workers"]} gthread workers x {p13n["threads"]} threads, wrk with 2 threads,
{p13n["seconds"]} s a run; ids spread over 1,000 segmented visitors. Two ceilings on the same
server and configuration: `bench.urls.bare_json`, a Django view with the same middleware and no
cache or database, and `bench.wsgi` answering `/bench/raw` before Django (what gunicorn itself
costs). The saturating rows run in rounds, every kind once a round, {args.runs} rounds; each
figure is the median round's, and the ratio is the median of the rounds' cached/bare ratios
({ratio_runs}). Saturating runs keep every connection busy, so their latency is connections
divided by throughput; the paced rows offer a fixed load for 60 s (long enough that wrk's
opening burst, every connection's first request at once, stays under 1% of the requests) and
show service latency.

{
        table(
            "| measure | figure | bare Django JSON view | raw WSGI app | ratio to bare | target |",
            web_rows(p13n, reseg),
        )
    }
"""
    text += (
        "\n## Query plans\n\n`EXPLAIN ANALYZE` on the tables the `resegment --all` run left "
        f"({reseg['events']:,} events, {reseg['visitors']:,} visitors and profiles), so index "
        "use is checked at that size.\n"
    )
    for name, plan in plans:
        text += f"\n{name}:\n\n```\n{plan}\n```\n"
    common.report_section_write(Path(args.output), "bench", text)
    print(text)


if __name__ == "__main__":
    main()
