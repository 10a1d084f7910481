from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ops.backups import BackupError, backup_create, backups_list


class Command(BaseCommand):
    help = (
        "Dump the PostgreSQL database (pg_dump custom format) into BACKUP_DIR with a UTC "
        "timestamp, keeping the BACKUP_RETENTION newest. --list shows the archives."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--dir", dest="directory", type=Path, help="Directory (default BACKUP_DIR)."
        )
        parser.add_argument("--keep", type=int, help="Archives to keep (default BACKUP_RETENTION).")
        parser.add_argument(
            "--list", dest="list_only", action="store_true", help="List archives, newest first."
        )

    def handle(
        self,
        *args: object,
        directory: Path | None,
        keep: int | None,
        list_only: bool,
        **options: object,
    ) -> None:
        if list_only:
            for path in backups_list(directory=directory):
                self.stdout.write(f"{path}  {path.stat().st_size} bytes")
            return
        try:
            result = backup_create(directory=directory, keep=keep)
        except BackupError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(
            self.style.SUCCESS(
                f"Backup written: {result.path} ({result.size_bytes} bytes, "
                f"{result.seconds:.1f} s); removed {len(result.removed)} older."
            )
        )
