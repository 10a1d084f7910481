"""What the current request or task is, for log records, Celery headers and Sentry.

Context variables rather than thread locals: each gthread request and each task sees its own.
"""

from __future__ import annotations

import re
import uuid
from contextvars import ContextVar

REQUEST_ID_HEADER = "X-Request-ID"
# Celery message header that carries the id from the web request into the task.
REQUEST_ID_TASK_HEADER = "request_id"

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)
route_var: ContextVar[str | None] = ContextVar("route", default=None)
task_var: ContextVar[tuple[str, str] | None] = ContextVar("task", default=None)  # (id, name)

# What proxies and clients commonly send (uuids, hex, base64url, ULIDs, "trace-123.4");
# anything longer or with other characters is replaced, so a log line cannot be forged.
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{7,127}")


def new_request_id() -> str:
    return uuid.uuid4().hex


def request_id_from(value: str | None) -> str:
    """The client's id when it is a sane token, else a new one."""
    if value and _SANE_REQUEST_ID.fullmatch(value):
        return value
    return new_request_id()
