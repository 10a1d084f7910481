from django.core.management.base import BaseCommand, CommandParser

from ops.services import DEMO_SEED, demo_seed


class Command(BaseCommand):
    help = "Load the demo catalog and synthetic visitors (idempotent: a second run adds nothing)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--visitors", type=int, default=300, help="How many visitors (300).")
        parser.add_argument("--seed", type=int, default=DEMO_SEED, help="Random seed.")

    def handle(self, *args: object, visitors: int, seed: int, **options: object) -> None:
        result = demo_seed(visitors=visitors, seed=seed)
        self.stdout.write(
            self.style.SUCCESS(
                f"Demo catalog: {result.catalog.sections} sections, {result.catalog.projects} "
                f"projects, {result.catalog.skills} skills. Visitors: {result.visitors}; events "
                f"added: {result.events_accepted}, already present: {result.events_existing}."
            )
        )
