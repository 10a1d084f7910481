from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ops.backups import BackupError, backup_restore, backups_list


class Command(BaseCommand):
    help = (
        "Restore a pg_dump archive made by `backup` over the current PostgreSQL database, in one "
        "transaction. Destructive: needs --yes. Stop web, worker and beat first."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", nargs="?", type=Path, help="The archive (.dump) to restore.")
        parser.add_argument("--latest", action="store_true", help="The newest in BACKUP_DIR.")
        parser.add_argument(
            "--yes", action="store_true", help="Confirm: replace the database's tables."
        )

    def handle(
        self, *args: object, file: Path | None, latest: bool, yes: bool, **options: object
    ) -> None:
        if latest:
            archives = backups_list()
            if not archives:
                raise CommandError("No backups in BACKUP_DIR.")
            file = archives[0]
        if file is None:
            raise CommandError("Name a backup file, or pass --latest.")
        if not yes:
            raise CommandError(
                f"Refusing to restore {file} without --yes: it replaces every table it holds "
                "in the current database."
            )
        try:
            result = backup_restore(path=file)
        except BackupError as exc:
            raise CommandError(str(exc)) from exc
        for note in result.notes:
            self.stdout.write(note)
        self.stdout.write(
            self.style.SUCCESS(
                f"Restored {file} in {result.seconds:.1f} s. Run `manage.py migrate` if the code "
                "is newer than the backup, then start the services."
            )
        )
