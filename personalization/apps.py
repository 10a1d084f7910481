from django.apps import AppConfig


class PersonalizationConfig(AppConfig):
    name = "personalization"
    verbose_name = "Personalization"

    def ready(self) -> None:
        from analytics.signals import events_stored, visitor_erased
        from ops.signals import database_restored

        from .receivers import on_database_restored, on_events_stored, on_visitor_erased

        events_stored.connect(on_events_stored, dispatch_uid="personalization.resegment")
        visitor_erased.connect(on_visitor_erased, dispatch_uid="personalization.erase")
        # After analytics' receiver (INSTALLED_APPS order): erasures first, then the cache.
        database_restored.connect(on_database_restored, dispatch_uid="personalization.restored")
