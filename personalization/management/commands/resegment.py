from django.core.management.base import BaseCommand, CommandError, CommandParser

from personalization.recompute import profiles_recompute_all
from personalization.services import visitor_resegment


class Command(BaseCommand):
    help = "Recompute visitor segments: the given visitors, or --all of them in one pass."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("user_pseudo_ids", nargs="*", help="Visitors to re-segment.")
        parser.add_argument("--all", action="store_true", help="Every visitor with events.")
        parser.add_argument("--batch-size", type=int, default=2000)
        parser.add_argument("--quiet", action="store_true", help="No progress bar.")

    def handle(self, *args: object, **options: object) -> None:
        ids = options["user_pseudo_ids"]
        if options["all"] == bool(ids):
            raise CommandError("Give visitor ids, or --all (not both).")
        if options["all"]:
            summary = profiles_recompute_all(
                batch_size=int(options["batch_size"]),  # type: ignore[call-overload]
                progress=not options["quiet"],
            )
            rate = summary.visitors / summary.seconds if summary.seconds else 0.0
            self.stdout.write(
                self.style.SUCCESS(
                    f"Re-segmented {summary.visitors} visitors from {summary.events} events in "
                    f"{summary.seconds:.1f} s ({rate:,.0f} visitors/s)."
                )
            )
            return
        for uid in ids:  # type: ignore[attr-defined]
            profile = visitor_resegment(user_pseudo_id=uid)
            if profile is None:
                self.stdout.write(self.style.WARNING(f"{uid}: no events"))
            else:
                self.stdout.write(f"{uid}: {profile.segment} ({profile.confidence:.0%})")
