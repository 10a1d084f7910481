"""`manage.py migrate` under a PostgreSQL advisory lock: replicas that start together take turns.

The first replica migrates; the others wait on the lock, then run `migrate` and find nothing to
do. On SQLite (one file, one host) there is nothing to coordinate and it is a plain migrate.
"""

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DEFAULT_DB_ALIAS, connections

from ops.locks import LockNotAcquired, advisory_lock

MIGRATE_LOCK = "portfolio:migrate"


class Command(BaseCommand):
    help = "Run `migrate --noinput` while holding a PostgreSQL advisory lock (plain on SQLite)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--noinput", "--no-input", action="store_false", dest="interactive", default=True
        )
        parser.add_argument("--database", default=DEFAULT_DB_ALIAS)
        parser.add_argument(
            "--lock-timeout",
            type=float,
            default=600.0,
            help="Seconds to wait for another replica's migration before failing (600).",
        )

    def handle(
        self,
        *args: object,
        interactive: bool,
        database: str,
        lock_timeout: float,
        **options: object,
    ) -> None:
        verbosity = int(str(options.get("verbosity", 1)))
        if connections[database].vendor != "postgresql":
            self.stdout.write("Not PostgreSQL: running a plain migrate (no lock to take).")
            call_command("migrate", database=database, interactive=interactive, verbosity=verbosity)
            return
        try:
            with advisory_lock(
                MIGRATE_LOCK,
                timeout=lock_timeout,
                using=database,
                on_wait=lambda: self.stdout.write(
                    "Another replica is migrating; waiting for its lock..."
                ),
            ):
                self.stdout.write(f"Holding the migration lock '{MIGRATE_LOCK}'.")
                call_command(
                    "migrate", database=database, interactive=interactive, verbosity=verbosity
                )
        except LockNotAcquired as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(self.style.SUCCESS("Migrations applied; lock released."))
