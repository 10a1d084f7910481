from django.apps import AppConfig


class PersonalizationConfig(AppConfig):
    name = "personalization"
    verbose_name = "Personalization"

    def ready(self) -> None:
        from analytics.signals import events_stored, visitors_deleted

        from .receivers import on_events_stored, on_visitors_deleted

        events_stored.connect(on_events_stored, dispatch_uid="personalization.resegment")
        visitors_deleted.connect(on_visitors_deleted, dispatch_uid="personalization.forget")
