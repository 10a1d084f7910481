from django.core.management.base import BaseCommand, CommandError, CommandParser

from analytics.services import erasures_reapply, visitor_erase
from analytics.validation import USER_ID_MESSAGE, USER_PSEUDO_ID_RE
from ops.erasure import ledger_merge


class Command(BaseCommand):
    help = (
        "Erase visitors (a data-subject request): their events, visitor row, dead letters, "
        "profile and cache entries, recorded in the erasure ledger so that restoring an older "
        "backup erases them again. --reapply-ledger re-applies every recorded erasure (the "
        "ledger table and BACKUP_DIR/erasures.jsonl; after a restore made by hand with "
        "pg_restore)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("user_pseudo_ids", nargs="*", metavar="ID")
        parser.add_argument("--reapply-ledger", action="store_true")

    def handle(
        self, *args: object, user_pseudo_ids: list[str], reapply_ledger: bool, **options: object
    ) -> None:
        if not user_pseudo_ids and not reapply_ledger:
            raise CommandError("Name at least one visitor ID, or pass --reapply-ledger.")
        bad = [uid for uid in user_pseudo_ids if not USER_PSEUDO_ID_RE.fullmatch(uid)]
        if bad:
            raise CommandError(f"Not a visitor ID: {bad[0]!r}. {USER_ID_MESSAGE}")
        for uid in user_pseudo_ids:
            counts = visitor_erase(user_pseudo_id=uid)
            self.stdout.write(
                f"{uid}: {counts.events} events, {counts.profiles} profile, "
                f"{counts.rejected_events} rejected events erased"
            )
        if reapply_ledger:
            ledger = set(ledger_merge())  # erasures.jsonl entries the table lacks go into it
            erased = erasures_reapply(ledger=ledger)
            self.stdout.write(f"Ledger re-applied: {erased} visitors erased again.")
