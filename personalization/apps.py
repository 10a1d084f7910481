from django.apps import AppConfig


class PersonalizationConfig(AppConfig):
    name = "personalization"
    verbose_name = "Personalization"

    def ready(self) -> None:
        from analytics.signals import events_stored, visitor_erased, visitors_deleted
        from ops.signals import database_restored

        from .receivers import (
            on_database_restored,
            on_events_stored,
            on_visitor_erased,
            on_visitors_deleted,
        )

        events_stored.connect(on_events_stored, dispatch_uid="personalization.resegment")
        visitor_erased.connect(on_visitor_erased, dispatch_uid="personalization.erase")
        visitors_deleted.connect(on_visitors_deleted, dispatch_uid="personalization.forget")
        # After analytics' receiver (INSTALLED_APPS order): erasures first, then the cache.
        database_restored.connect(on_database_restored, dispatch_uid="personalization.restored")
