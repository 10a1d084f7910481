from django.apps import AppConfig


class OpsConfig(AppConfig):
    name = "ops"
    verbose_name = "Operations"

    def ready(self) -> None:
        # Here rather than in settings: web processes and Celery workers both run ready().
        from django.conf import settings

        from . import db_metrics, sentry

        db_metrics.install()
        sentry.init(
            dsn=settings.SENTRY_DSN,
            environment=settings.SENTRY_ENVIRONMENT,
            release=settings.SENTRY_RELEASE,
            traces_sample_rate=settings.SENTRY_TRACES_SAMPLE_RATE,
            traces_sample_rate_hot=settings.SENTRY_TRACES_SAMPLE_RATE_HOT,
            include_local_variables=settings.SENTRY_INCLUDE_LOCALS,
        )
