import os
import time
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from analytics.ga4_export import ImportSummary, import_export_file

SHOWN_ERRORS = 5


def positive_int(value: str) -> int:
    number = int(value)
    if number < 1:
        raise ValueError(value)
    return number


class Command(BaseCommand):
    help = (
        "Import GA4 BigQuery-export NDJSON files (plain or gzip). Idempotent: rows already "
        "stored are counted as duplicates. Bad lines are reported and kept in RejectedEvent."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("files", nargs="+", metavar="FILE", help="NDJSON or NDJSON.gz file.")
        parser.add_argument(
            "--batch-size", type=positive_int, default=20_000, help="Rows per transaction (20000)."
        )
        parser.add_argument("--quiet", action="store_true", help="No progress bar.")

    def handle(
        self, *args: object, files: list[str], batch_size: int, quiet: bool, **options: object
    ) -> None:
        # Check every file first: a typo in the third name should not cost two imports' wait.
        paths = [Path(name) for name in files]
        for path in paths:
            if not path.is_file():
                raise CommandError(f"{path}: no such file")
            if not os.access(path, os.R_OK):
                raise CommandError(f"{path}: not readable")
        total = ImportSummary()
        started = time.monotonic()
        for path in paths:
            file_started = time.monotonic()
            try:
                summary = import_export_file(path, progress=not quiet, batch_size=batch_size)
            except OSError as exc:
                raise CommandError(f"{path}: {exc}") from exc
            self._report(str(path), summary, time.monotonic() - file_started)
            total.rows_read += summary.rows_read
            total.rows_imported += summary.rows_imported
            total.rows_duplicate += summary.rows_duplicate
            total.rows_rejected += summary.rows_rejected
            total.truncated = total.truncated or summary.truncated
        if len(paths) > 1:
            self._counts(f"Total ({len(paths)} files)", total, time.monotonic() - started)

    def _report(self, label: str, summary: ImportSummary, seconds: float) -> None:
        self._counts(label, summary, seconds)
        # The damaged-stream entry, when there is one, is the last.
        bad_lines = summary.errors[:-1] if summary.truncated else summary.errors
        for error in bad_lines[:SHOWN_ERRORS]:
            self.stdout.write(f"  line {error['line']}: {error['error']}")
        if summary.rows_rejected > SHOWN_ERRORS:
            self.stdout.write(
                f"  ... and {summary.rows_rejected - SHOWN_ERRORS:,} more bad lines "
                "(all of them are in RejectedEvent)"
            )
        if summary.truncated:
            damage = summary.errors[-1]
            self.stdout.write(
                self.style.ERROR(f"  stopped at line {damage['line']}: {damage['error']}")
            )

    def _counts(self, label: str, summary: ImportSummary, seconds: float) -> None:
        rate = summary.rows_read / seconds if seconds > 0 else 0.0
        line = (
            f"{label}: {summary.rows_read:,} rows read, {summary.rows_imported:,} imported, "
            f"{summary.rows_duplicate:,} duplicates, {summary.rows_rejected:,} rejected "
            f"in {seconds:.1f} s ({rate:,.0f} rows/s)"
        )
        clean = not summary.rows_rejected and not summary.truncated
        self.stdout.write(self.style.SUCCESS(line) if clean else self.style.WARNING(line))
