"""Celery tasks of the analytics app: thin wrappers that own retries and time limits."""

from __future__ import annotations

import logging

import requests
from celery import Task, shared_task
from google.api_core import exceptions as google_exceptions

logger = logging.getLogger(__name__)

# Quota (429), server-side (5xx) and network failures of the GA4 Data API are worth another
# try. Over gRPC a timeout is DeadlineExceeded; over REST (GA4_DATA_API_ENDPOINT) it surfaces
# as a `requests` exception.
GA4_RETRYABLE = (
    google_exceptions.TooManyRequests,
    google_exceptions.ServerError,
    google_exceptions.ServiceUnavailable,
    google_exceptions.DeadlineExceeded,
    requests.exceptions.Timeout,
    requests.exceptions.ConnectionError,
)


@shared_task(name="analytics.tasks.retention_apply", soft_time_limit=3300, time_limit=3600)
def retention_apply() -> dict[str, int]:
    """Delete events and dead letters past their retention period (daily, from beat)."""
    from .retention import retention_apply as apply

    return apply().as_dict()


@shared_task(
    bind=True, name="analytics.tasks.import_ga4_upload", soft_time_limit=3300, time_limit=3600
)
def import_ga4_upload(self: Task, upload_id: int, resume: bool = False) -> None:
    """Import a GA4 export file uploaded in admin. Idempotent: rows are deduplicated.
    `resume`: sent by the sweep for an import whose worker died; it runs only if that import
    is still unfinished and nobody else is running it. A message the broker redelivers (its
    worker died before acknowledging it) does nothing if the sweep has finished the import
    meanwhile."""
    from .ga4_export import import_upload

    redelivered = bool((self.request.delivery_info or {}).get("redelivered"))
    import_upload(upload_id, resume=resume, redelivered=redelivered)


@shared_task(name="analytics.tasks.import_uploads_resume", ignore_result=True)
def import_uploads_resume() -> list[int]:
    """Re-queue the GA4 imports whose heartbeat stopped (from beat, every minute)."""
    from .ga4_export import uploads_resume_stale

    return uploads_resume_stale()


@shared_task(
    name="analytics.tasks.sync_ga4_data_api",
    autoretry_for=GA4_RETRYABLE,
    retry_backoff=30,
    retry_backoff_max=1800,
    retry_jitter=True,
    max_retries=5,
)
def sync_ga4_data_api(days: int | None = None) -> dict[str, int] | None:
    """Pull the GA4 Data API's daily aggregates; a no-op with a log line when unconfigured."""
    from .ga4_data_api import sync_daily_aggregates

    result = sync_daily_aggregates(days=days)
    return None if result is None else result.as_dict()
