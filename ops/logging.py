"""Log records as one JSON object per line (LOG_FORMAT=json) or readable text (LOG_FORMAT=text).

Stdlib only. Every record carries the request id (and the Celery task id and name in workers)
from ops.context, so one request can be followed from the web process into its tasks.
Extra fields passed with `extra={...}` become keys; those that could identify a visitor are
redacted whatever the level, and objects are written as their type name only (a request's repr
holds its query string).

Settings import this module, so it must not import Django.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from typing import Any

from .context import request_id_var, route_var, task_var
from .scrubbing import redact, request_shape_of, secret_forms, strings_in

# Keys that may hold personal data; their values never reach a log line.
REDACTED_KEYS = frozenset(
    {
        "user_pseudo_id",
        "user_id",
        "visitor_id",
        "client_id",
        "ip",
        "client_ip",
        "remote_addr",
        "x_forwarded_for",
        "email",
        "query_string",
        "cookie",
        "authorization",
        "password",
        "token",
        "api_secret",
    }
)
REDACTED = "[redacted]"

# Attributes every LogRecord has; anything else on a record came from `extra`.
_RECORD_ATTRS = frozenset(
    vars(logging.LogRecord("", logging.INFO, "", 0, "", None, None)).keys()
    | {"message", "asctime", "context", "request_id", "task_id", "task_name", "route"}
)
_JSON_SCALARS = (str, int, float, bool, type(None))


class ContextFilter(logging.Filter):
    """Puts the request id, route and task on every record (None outside a request/task), and
    takes visitor ids out of the records that carry a request or a task's arguments."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = request_id_var.get()
        if not hasattr(record, "route"):
            record.route = route_var.get()
        task = task_var.get()
        if task and not hasattr(record, "task_id"):
            record.task_id, record.task_name = task
        if not hasattr(record, "_redact"):
            _mark_redactions(record)
        return True


def _mark_redactions(record: logging.LogRecord) -> None:
    """Django logs 4xx/5xx responses and refused requests with the request attached and its
    path in the message ("Service Unavailable: /api/admin/visitors/<id>"); Celery logs a task's
    failure with its arguments beside it. Such a record's message is rewritten with the route
    pattern and without the values the path, query string or arguments held, and
    `record._redact` tells the formatters what to hide in its traceback."""
    request = record.__dict__.get("request")
    data = record.__dict__.get("data") if record.name.startswith("celery.") else None
    if hasattr(request, "path_info") and hasattr(request, "META"):
        shape = request_shape_of(request)
        redact_text = shape.redact
    elif isinstance(data, dict) and (data.get("args") or data.get("kwargs")):
        secrets = secret_forms(strings_in([data.get("args"), data.get("kwargs")]))

        def redact_text(text: str) -> str:
            return redact(text, secrets)
    else:
        record._redact = None
        return
    try:
        message = record.getMessage()
    except Exception:  # a bad format string: logging reports it when the handler formats
        message = str(record.msg)
    record.msg, record.args = redact_text(message), None
    record._redact = redact_text


def _opaque(value: object) -> str:
    return f"<{type(value).__name__}>"


def _extras(record: logging.LogRecord) -> Iterator[tuple[str, Any]]:
    """The `extra={...}` fields: personal ones redacted, objects reduced to their type."""
    celery = record.name.startswith("celery.")
    for key, value in record.__dict__.items():
        if key in _RECORD_ATTRS or key.startswith("_"):
            continue
        if celery and key == "data":
            continue  # Celery's trace payload: task arguments and return value
        if key.lower() in REDACTED_KEYS:
            yield key, REDACTED
        elif isinstance(value, (*_JSON_SCALARS, list, tuple, dict)):
            yield key, value
        else:
            yield key, _opaque(value)


class JsonFormatter(logging.Formatter):
    """{"time": "2026-11-29T10:00:00.123Z", "level": "INFO", "logger": "...", "event": "...",
    "request_id": "...", ...extra fields}"""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": _iso_utc(record.created),
            "level": record.levelname,
            "logger": record.name,
            "event": record.getMessage(),
        }
        for key in ("request_id", "route", "task_id", "task_name"):
            value = getattr(record, key, None)
            if value is not None:
                out[key] = value
        out.update(_extras(record))
        if record.exc_info:
            out["exception"] = _redacted(record, self.formatException(record.exc_info))
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        return json.dumps(out, default=_opaque, separators=(",", ":"))


class TextFormatter(logging.Formatter):
    """The development format: the message, then the context and extra fields as key=value."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s%(context)s")

    def format(self, record: logging.LogRecord) -> str:
        fields = [
            (key, value)
            for key in ("request_id", "route", "task_name", "task_id")
            if (value := getattr(record, key, None))
        ]
        fields.extend(_extras(record))
        record.context = "".join(f" {key}={value}" for key, value in fields)
        return _redacted(record, super().format(record))


def _redacted(record: logging.LogRecord, text: str) -> str:
    redact_text = getattr(record, "_redact", None)
    return redact_text(text) if redact_text is not None else text


def _iso_utc(created: float) -> str:
    seconds = int(created)
    millis = int((created - seconds) * 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}Z"


def logging_config(*, fmt: str, level: str, requests: bool = True) -> dict[str, Any]:
    """Django's LOGGING for LOG_FORMAT `json` or `text`; `requests=False` keeps only the 5xx
    lines of ops.requests (LOG_REQUESTS: when the proxy's access log suffices)."""
    if fmt not in {"json", "text"}:
        raise ValueError(f"LOG_FORMAT must be json or text, not {fmt!r}")
    formatter = "ops.logging.JsonFormatter" if fmt == "json" else "ops.logging.TextFormatter"
    loggers: dict[str, Any] = {
        "django.db.backends": {"level": "INFO"},
        # 4xx lines name the raw path (visitor ids in admin URLs); ops.requests logs every
        # request with its route pattern instead. 5xx are still logged, with tracebacks.
        "django.request": {"level": "ERROR"},
    }
    if not requests:
        loggers["ops.requests"] = {"level": "WARNING"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"context": {"()": "ops.logging.ContextFilter"}},
        "formatters": {"default": {"()": formatter}},
        "handlers": {
            "console": {
                "class": "logging.StreamHandler",
                "formatter": "default",
                "filters": ["context"],
            }
        },
        "root": {"handlers": ["console"], "level": level},
        "loggers": loggers,
    }
