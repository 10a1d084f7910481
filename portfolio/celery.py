"""The Celery app: configuration comes from Django settings (CELERY_*); beat schedules live here."""

import os

from celery import Celery
from celery.schedules import crontab
from django.conf import settings

from ops import celery_observability
from ops.kombu_patches import kombu_redis_restore_patch

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portfolio.settings")
# Unacknowledged tasks survive the broker going away (ops/kombu_patches.py).
kombu_redis_restore_patch()

app = Celery("portfolio")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.update(
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    # A task is acknowledged after it ran, and requeued if its worker dies mid-task:
    # every task must therefore be idempotent.
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    task_track_started=True,
    result_expires=24 * 3600,
    # With acks_late on Redis, an unacked task is redelivered after this; keep it above the
    # hard time limit so a long task is not run twice while still running.
    broker_transport_options={"visibility_timeout": 3600},
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
    timezone="UTC",
    # Task modules autodiscovery (each app's tasks.py) does not find.
    imports=("ops.backup_tasks",),
)

# Every periodic task, in one place.
app.conf.beat_schedule = {
    "ops-beat-heartbeat": {
        "task": "ops.tasks.beat_heartbeat",
        "schedule": 60.0,
    },
    "analytics-ga4-data-api-sync": {
        "task": "analytics.tasks.sync_ga4_data_api",
        "schedule": crontab(hour=3, minute=30),
    },
    "ops-nightly-backup": {
        "task": "ops.backup_tasks.nightly_backup",
        "schedule": crontab(hour=2, minute=15),
    },
    "personalization-resegment-stale": {
        "task": "personalization.tasks.resegment_stale",
        "schedule": settings.RESEGMENT_SWEEP_MINUTES * 60.0,
    },
    "analytics-ga4-import-resume": {
        "task": "analytics.tasks.import_uploads_resume",
        "schedule": float(settings.GA4_IMPORT_SWEEP_SECONDS),
    },
    "analytics-retention": {
        "task": "analytics.tasks.retention_apply",
        "schedule": crontab(hour=3, minute=0),
    },
    "ops-purge-stale-task-results": {
        "task": "celery.backend_cleanup",
        "schedule": crontab(hour=4, minute=0),
    },
}


def daily_at(value: str) -> crontab | None:
    """A daily crontab from "HH:MM" (UTC); None for "off" or empty."""
    if value.strip().lower() in ("", "off", "none"):
        return None
    hour, _, minute = value.strip().partition(":")
    return crontab(hour=int(hour), minute=int(minute or 0))


@app.on_after_configure.connect
def _schedules_from_settings(sender: Celery, **kwargs: object) -> None:
    # Django settings are only safe to read once Celery loads its configuration from them.
    from django.conf import settings

    schedule = daily_at(settings.LLM_INSIGHTS_SCHEDULE)
    if schedule is not None:
        sender.conf.beat_schedule["personalization-llm-insights"] = {
            "task": "personalization.tasks.insights_run",
            "schedule": schedule,
        }


app.autodiscover_tasks()
# Task metrics, task ids in log records, the request id across the broker, the metrics port.
celery_observability.install()
