from django.core.management.base import BaseCommand

from ops.services import admin_ensure


class Command(BaseCommand):
    help = (
        "Create the admin superuser from ADMIN_USERNAME / ADMIN_PASSWORD, or generate a password."
    )

    def handle(self, *args: object, **options: object) -> None:
        result = admin_ensure()
        if result.password:
            self.stdout.write(
                self.style.WARNING(
                    f"Created admin user '{result.username}' with password: {result.password}\n"
                    "It is shown only now. Set ADMIN_PASSWORD to choose your own."
                )
            )
        elif result.created:
            self.stdout.write(self.style.SUCCESS(f"Created admin user '{result.username}'."))
        else:
            self.stdout.write(
                f"Admin user '{result.username}' exists; "
                "password unchanged unless ADMIN_PASSWORD is set."
            )
