"""`make bench`: one command, one run, one table in docs/PERFORMANCE.md.

Each figure stands next to its ceiling measured in the same run on the same machine.
Needs the local PostgreSQL and Redis (BENCH_PG_ADMIN_URL, BENCH_REDIS_URL to point elsewhere).
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import sys
from datetime import UTC, datetime

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portfolio.settings")
django.setup()

from bench import common, ga4_import, ingest  # noqa: E402

OUTPUT = common.ROOT / "docs" / "PERFORMANCE.md"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000, help="GA4 export rows (1,000,000)")
    parser.add_argument("--batches", type=int, default=200, help="500-event API batches per run")
    parser.add_argument("--runs", type=int, default=3, help="runs per API figure (median)")
    parser.add_argument("--output", default=str(OUTPUT))
    args = parser.parse_args()

    command = "make bench" if len(sys.argv) == 1 else "python -m bench " + shlex.join(sys.argv[1:])
    print("preparing the scratch database", file=sys.stderr)
    common.reset_database()
    print("batch ingestion over HTTP", file=sys.stderr)
    api = ingest.run(runs=args.runs, batches=args.batches)
    print("GA4 export import", file=sys.stderr)
    imp = ga4_import.run(rows=args.rows)

    rows = [
        (
            "Batch API `POST /api/events` (500/batch, 4 connections; "
            "gunicorn: 2 gthread workers x 4 threads)",
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
    table = [
        "| measure | figure | ceiling: PostgreSQL COPY, same rows | ratio | target |",
        "|---|---|---|---|---|",
    ]
    table += [f"| {' | '.join(row)} |" for row in rows]
    runs = ", ".join(f"{figure:,.0f}" for figure in api["runs"])
    text = f"""# Performance

Measured by `{command}` on {datetime.now(tz=UTC):%Y-%m-%d %H:%M} UTC: {platform.machine()},
{os.cpu_count()} cores, Python {platform.python_version()}, PostgreSQL and Redis on the same
machine as the load generator and the server (so every figure shares the 2 cores with its load).
Rerun it with `make bench`; it rewrites this file.

{chr(10).join(table)}

- API figure: median of {args.runs} runs ({runs} events/s), {api["events"]:,} events each, into
  emptied tables, rate limiting off (it is per-IP and the bench is one IP). The ceiling is
  `COPY` of the same rows into a table shaped and indexed like `analytics_event`.
- Import figure: `manage.py import_ga4_export FILE --quiet` in a fresh process, into emptied
  tables; peak RSS is that process's `ru_maxrss`. The ceiling is `COPY` of 300,000 of the same
  rows, already transformed.
"""
    with open(args.output, "w") as handle:
        handle.write(text)
    print(text)


if __name__ == "__main__":
    main()
