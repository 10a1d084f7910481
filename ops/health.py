"""Readiness checks: can this process reach the database, the cache and the Celery broker?

Each check returns "ok" or "error: <ExceptionClass>" (never the message: it may hold a URL
with credentials), and each is bounded by a short timeout so a probe never hangs.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable

from django.conf import settings
from django.core.cache import cache
from django.db import connection

from portfolio.celery import app as celery_app

logger = logging.getLogger(__name__)

OK = "ok"


def check_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


def check_cache() -> None:
    key = f"ops:ready:{uuid.uuid4().hex}"
    cache.set(key, "1", timeout=5)
    if cache.get(key) != "1":
        raise RuntimeError("cache did not return the value just written")
    cache.delete(key)


def check_broker() -> None:
    if settings.CELERY_TASK_ALWAYS_EAGER:
        return  # tasks run in-process; there is no broker to reach
    with celery_app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=2)


CHECKS: dict[str, Callable[[], None]] = {
    "database": check_database,
    "cache": check_cache,
    "broker": check_broker,
}


def readiness() -> dict[str, str]:
    results: dict[str, str] = {}
    for name, check in CHECKS.items():
        try:
            check()
        except Exception as exc:  # a probe reports every failure, whatever its kind
            logger.warning(
                "ops.ready.check_failed", extra={"check": name, "error": type(exc).__name__}
            )
            results[name] = f"error: {type(exc).__name__}"
        else:
            results[name] = OK
    return results
