"""gunicorn configuration for the `web` role (deploy/entrypoint.sh web). Environment:

PORT (8000), BIND_HOST (0.0.0.0), WEB_CONCURRENCY workers (2), GUNICORN_THREADS per worker (4),
GUNICORN_TIMEOUT (30 s), GUNICORN_GRACEFUL_TIMEOUT (25 s), GUNICORN_KEEPALIVE (5 s),
GUNICORN_MAX_REQUESTS (100000, with 10 % jitter; 0 turns recycling off), GUNICORN_ACCESS_LOG
(`off` or `json`), GUNICORN_PRELOAD (false), LOG_LEVEL (INFO).

Why these choices:
- gthread: the work is I/O bound (PostgreSQL, Redis), so threads multiply concurrency cheaply;
  a slow client holds one thread, not a whole process.
- graceful_timeout 25 s: on SIGTERM each worker stops accepting and finishes the requests it
  has; 25 s stays below the 30 s that Docker (`stop_grace_period`) and Kubernetes
  (`terminationGracePeriodSeconds`) wait before SIGKILL.
- preload_app off by default: each worker imports the app itself, so nothing opened at import
  time (a database or Redis connection, a thread) is shared across fork, and a HUP reload picks
  up new code. GUNICORN_PRELOAD=true saves memory and start-up time (copy-on-write) and makes an
  import error fail the master at once; the app opens no connection at import, so it is safe.
- Access log off by default: the app logs every request itself (ops.requests, with its request
  id and route pattern) and Prometheus counts them. `json` writes one JSON object per request to
  stdout with the route pattern the app resolved (`api/admin/visitors/<str:user_pseudo_id>`,
  `unmatched`) instead of the path, and without the query string or the client address:
  visitor ids and IPs stay out of logs.
- LOG_FORMAT (json in production, text otherwise) also formats gunicorn's own lines.
"""

from __future__ import annotations

import os
from typing import Any

from gunicorn.glogging import Logger


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    return int(value) if value.strip() else default


def _env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name, "").strip().lower()
    return default if not value else value in {"1", "true", "yes", "on"}


bind = f"{os.environ.get('BIND_HOST', '0.0.0.0')}:{_env_int('PORT', 8000)}"  # noqa: S104  # nosec B104
workers = _env_int("WEB_CONCURRENCY", 2)
worker_class = "gthread"
threads = _env_int("GUNICORN_THREADS", 4)
timeout = _env_int("GUNICORN_TIMEOUT", 30)
graceful_timeout = _env_int("GUNICORN_GRACEFUL_TIMEOUT", 25)
keepalive = _env_int("GUNICORN_KEEPALIVE", 5)
# Recycling is a guard against slow leaks, and each recycle re-imports the app (seconds of
# CPU) and drops the worker's keep-alive connections: at 1,000 a worker under load restarted
# every few seconds in `make loadtest`. A web worker holds steady near 105 MiB (make bench).
max_requests = _env_int("GUNICORN_MAX_REQUESTS", 100_000)
max_requests_jitter = max_requests // 10
preload_app = _env_bool("GUNICORN_PRELOAD")
# The heartbeat file on tmpfs: on a disk-backed /tmp, fchmod can stall a worker into a timeout.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None  # noqa: S108  # nosec B108
# No runtime control socket: unused, and its default under $HOME is not writable in the image.
control_socket_disable = True
loglevel = os.environ.get("LOG_LEVEL", "INFO").lower()
errorlog = "-"
_access = os.environ.get("GUNICORN_ACCESS_LOG", "off").strip().lower()
accesslog = "-" if _access == "json" else None
proc_name = "portfolio-web"


_log_format = os.environ.get("LOG_FORMAT", "").strip().lower() or (
    "json" if os.environ.get("DJANGO_ENV") == "production" else "text"
)
if _log_format == "json":
    # gunicorn's own lines (boot, worker exits, timeouts) in the app's JSON shape.
    logconfig_dict = {
        "formatters": {"json": {"()": "ops.logging.JsonFormatter"}},
        "handlers": {
            "error_console": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "stream": "ext://sys.stderr",
            },
        },
        "root": {"level": "INFO", "handlers": []},
        "loggers": {
            "gunicorn.error": {
                "level": loglevel.upper(),
                "handlers": ["error_console"],
                "propagate": False,
            },
        },
    }


# ops.scrubbing.ROUTE_ENVIRON_KEY; spelled out here, as this file is read before the app is.
_ROUTE_ENVIRON_KEY = "portfolio.route"


class JsonAccessLogger(Logger):
    """gunicorn's logger with access lines as JSON (ops.logging.JsonFormatter, which escapes
    properly, unlike a format string), naming the route pattern instead of the path, and
    never the query string or the client address."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        from ops.logging import JsonFormatter

        for handler in self.access_log.handlers:
            handler.setFormatter(JsonFormatter())

    def access(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> None:
        if not self.access_log_enabled:
            return
        status = resp.status.split(None, 1)[0] if isinstance(resp.status, str) else resp.status
        headers = {name.lower(): value for name, value in resp.headers}
        self.access_log.info(
            "http.access",
            extra={
                "request_id": headers.get("x-request-id"),
                "method": environ.get("REQUEST_METHOD"),
                # The route pattern the app resolved (ops.middleware leaves it in the environ),
                # never the path: /api/admin/visitors/<id> names a visitor.
                "route": environ.get(_ROUTE_ENVIRON_KEY, "unmatched"),
                "status": int(status),
                "bytes": getattr(resp, "sent", None),
                "duration_ms": round(request_time.total_seconds() * 1000, 1),
                "user_agent": environ.get("HTTP_USER_AGENT"),
            },
        )


logger_class = JsonAccessLogger


def child_exit(server: Any, worker: Any) -> None:
    """A dead worker's metric files are marked, so its gauges stop being reported."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
