from django.apps import AppConfig


class PersonalizationConfig(AppConfig):
    name = "personalization"
    verbose_name = "Personalization"

    def ready(self) -> None:
        from analytics.signals import events_stored

        from .receivers import on_events_stored

        events_stored.connect(on_events_stored, dispatch_uid="personalization.resegment")
