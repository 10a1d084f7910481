import time

from celery import shared_task
from django.core.cache import cache

BEAT_HEARTBEAT_KEY = "ops:beat:last_heartbeat"


@shared_task(name="ops.tasks.ping")
def ping(payload: str = "pong") -> dict[str, str]:
    """Round trip through the broker and a worker; used by tests and smoke checks."""
    return {"reply": payload}


@shared_task(name="ops.tasks.beat_heartbeat", ignore_result=True)
def beat_heartbeat() -> None:
    """Written every minute by beat, so operators can tell that the scheduler is alive."""
    cache.set(BEAT_HEARTBEAT_KEY, time.time(), timeout=None)
