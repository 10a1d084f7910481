"""Celery: task metrics, task context in log records, the web request id carried into tasks,
and each worker node's metrics port.

`install()` is called by portfolio/celery.py, so every process that loads the Celery app (web,
worker, beat) has the signal receivers; the metrics port opens only in a worker node with
CELERY_METRICS_PORT set, once, in its main process. Prefork children write their samples to
PROMETHEUS_MULTIPROC_DIR (the entrypoint's worker role sets it), which the main process reads at
each scrape; without it only the main process's own samples (the solo and threads pools) show.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from contextvars import Token
from typing import Any

from celery import Celery, signals
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from .context import REQUEST_ID_TASK_HEADER, request_id_var, task_var
from .db_metrics import connections_recount
from .metrics import CELERY_TASK_DURATION, CELERY_TASKS

logger = logging.getLogger("ops.celery")

# Celery's final states, as the `state` label says them. An eager task whose exception
# propagated to its caller ends with no state: it failed.
_STATES = {
    "SUCCESS": "succeeded",
    "FAILURE": "failed",
    "RETRY": "retried",
    "REJECTED": "rejected",
    "IGNORED": "ignored",
}

_running: dict[str, tuple[float, Token[str | None], Token[tuple[str, str] | None]]] = {}
_server: Any = None


def _propagate_request_id(headers: dict[str, Any] | None = None, **_: Any) -> None:
    request_id = request_id_var.get()
    if request_id and headers is not None:
        headers.setdefault(REQUEST_ID_TASK_HEADER, request_id)


def _task_started(task_id: str = "", task: Any = None, **_: Any) -> None:
    # The publishing request's id in a worker; an eager task keeps the request's own.
    request_id = getattr(task.request, REQUEST_ID_TASK_HEADER, None) or request_id_var.get()
    _running[task_id] = (
        time.perf_counter(),
        request_id_var.set(request_id),
        task_var.set((task_id, task.name)),
    )


def _task_finished(task_id: str = "", task: Any = None, state: str | None = None, **_: Any) -> None:
    running = _running.pop(task_id, None)
    if running is None:
        return
    started, request_token, task_token = running
    duration = time.perf_counter() - started
    connections_recount()
    outcome = _STATES.get(state or "", "failed")
    try:
        CELERY_TASKS.labels(task.name, outcome).inc()
        CELERY_TASK_DURATION.labels(task.name).observe(duration)
        # Celery logs each task at INFO itself (celery.app.trace), within the task's context.
        logger.log(
            logging.WARNING if outcome == "failed" else logging.DEBUG,
            "celery.task.finished",
            extra={"state": outcome, "duration_ms": round(duration * 1000, 2)},
        )
    finally:
        task_var.reset(task_token)
        request_id_var.reset(request_token)


class QueueLengthCollector:
    """celery_queue_length{queue}: messages waiting in the broker for this node's queues,
    read at scrape time (LLEN on Redis). Every node reports the same queues: use max()."""

    def __init__(self, app: Celery, queues: list[str]) -> None:
        self.app = app
        self.queues = queues

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "celery_queue_length", "Messages waiting in the broker, by queue.", labels=["queue"]
        )
        try:
            with self.app.connection_for_read() as connection:
                connection.ensure_connection(max_retries=1, timeout=2)
                for queue in self.queues:
                    family.add_metric([queue], _queue_length(connection, queue))
        except Exception as exc:  # a broker outage must not break the scrape
            logger.warning("celery.queue_length.failed", extra={"error": type(exc).__name__})
            return
        yield family


def _queue_length(connection: Any, queue: str) -> int:
    with connection.channel() as channel:
        try:
            return int(channel.queue_declare(queue=queue, passive=True).message_count)
        except connection.channel_errors:
            return 0  # a queue nobody has published to yet does not exist


def _start_metrics_server(sender: Any = None, **_: Any) -> None:
    """worker_ready: once per worker node, in its main process, after the pool started."""
    global _server
    from django.conf import settings

    from .exposition import serve_metrics

    port = settings.CELERY_METRICS_PORT
    if not port or _server is not None:
        return
    app = sender.app
    queues = sorted(app.amqp.queues.consume_from or {app.conf.task_default_queue: None})
    pool = getattr(sender, "pool", None)
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR") and "prefork" in type(pool).__module__:
        logger.warning(
            "celery.metrics.no_multiprocess_dir",
            extra={"hint": "set PROMETHEUS_MULTIPROC_DIR: prefork children are not counted"},
        )
    try:
        _server = serve_metrics(
            port=port,
            addr=settings.CELERY_METRICS_ADDR,
            collectors=[QueueLengthCollector(app, queues)],
        )
    except OSError as exc:  # a taken port costs the metrics, not the worker
        logger.error("celery.metrics.port_unavailable", extra={"port": port, "error": str(exc)})
        return
    logger.info("celery.metrics.serving", extra={"port": port, "queues": queues})


def _child_exited(**_: Any) -> None:
    """worker_process_shutdown, in a prefork child: its live gauges stop counting."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(os.getpid())


def install() -> None:
    signals.before_task_publish.connect(_propagate_request_id, weak=False)
    signals.task_prerun.connect(_task_started, weak=False)
    signals.task_postrun.connect(_task_finished, weak=False)
    signals.worker_ready.connect(_start_metrics_server, weak=False)
    signals.worker_process_shutdown.connect(_child_exited, weak=False)
