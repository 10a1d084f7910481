"""Wait until the database answers, within a bound: container start-up before migrate or serve."""

import time

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DEFAULT_DB_ALIAS, connections

from ops.health import check_database


class Command(BaseCommand):
    help = "Retry `SELECT 1` until the database answers or --timeout seconds have passed."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--timeout", type=float, default=60.0, help="Give up after (60 s).")
        parser.add_argument("--interval", type=float, default=1.0, help="Between tries (1 s).")

    def handle(self, *args: object, timeout: float, interval: float, **options: object) -> None:
        deadline = time.monotonic() + timeout
        attempt = 0
        while True:
            attempt += 1
            try:
                check_database()
            except Exception as exc:  # any failure to connect is "not yet"
                # Never print the message: it may hold the URL with its password.
                error = type(exc).__name__
                connections[DEFAULT_DB_ALIAS].close()
                if time.monotonic() + interval > deadline:
                    raise CommandError(
                        f"Database not reachable after {attempt} attempts in {timeout:g} s "
                        f"(last error: {error}). Check DATABASE_URL and that the server is up."
                    ) from None
                self.stderr.write(f"Database not ready ({error}); retrying in {interval:g} s...")
                time.sleep(interval)
            else:
                self.stdout.write(f"Database ready (attempt {attempt}).")
                return
