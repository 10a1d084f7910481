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


@shared_task(
    name="ops.erasure_ledger_export",
    ignore_result=True,
    autoretry_for=(OSError,),
    max_retries=5,
    retry_backoff=30,
)
def erasure_ledger_export() -> int:
    """Rewrite BACKUP_DIR/erasures.jsonl from the ledger table (queued by every erasure): a
    restore after losing the whole database still finds recent erasures. Runs on the worker,
    the role with BACKUP_DIR; idempotent (the file is the union of itself and the table)."""
    from .erasure import ledger_export

    return ledger_export()
