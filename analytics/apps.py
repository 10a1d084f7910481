from django.apps import AppConfig


class AnalyticsConfig(AppConfig):
    name = "analytics"
    verbose_name = "Analytics"

    def ready(self) -> None:
        from ops.signals import database_restored

        from .receivers import on_database_restored

        database_restored.connect(on_database_restored, dispatch_uid="analytics.erasures")
