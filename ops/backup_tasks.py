"""Scheduled backups. Beat runs `ops.backup_tasks.nightly_backup` (see portfolio/celery.py);
the worker that runs it needs the PostgreSQL client tools and a persistent BACKUP_DIR."""

from __future__ import annotations

import logging
from typing import Any

from celery import Task, shared_task
from django.db import connection

from .backups import BackupError, UploadNotAvailable, backup_create

logger = logging.getLogger(__name__)


@shared_task(
    bind=True,
    name="ops.backup_tasks.nightly_backup",
    max_retries=2,
    default_retry_delay=300,
    soft_time_limit=2700,
    time_limit=3000,  # below the broker's 3600 s visibility timeout: never run twice at once
)
def nightly_backup(self: Task) -> dict[str, Any]:
    """Back up the database and rotate old archives. Retried twice, 5 minutes apart, if the
    dump fails (say the database restarted); a configured-but-unavailable upload is not."""
    if connection.vendor != "postgresql":
        logger.warning("ops.backup.skipped", extra={"reason": f"database is {connection.vendor}"})
        return {"skipped": f"database is {connection.vendor}, not PostgreSQL"}
    try:
        return backup_create().as_dict()
    except UploadNotAvailable:
        raise
    except BackupError as exc:
        raise self.retry(exc=exc) from exc
