"""Sentry error reporting and tracing: on only when SENTRY_DSN is set (ops.apps calls `init`).

No personal data leaves: send_default_pii is off, request bodies and frame locals are not sent
(a request's repr holds its query string, event bodies hold visitor ids), Redis spans are off
(cache keys hold visitor ids), and `scrub` (before_send, before_send_transaction) and
`scrub_breadcrumb` (before_breadcrumb) remove what the integrations still collect. The request
URL becomes its route pattern (`/api/admin/visitors/<str:user_pseudo_id>`) without a query
string; cookies, client addresses, user, task arguments and the request's repr that Django's
log records carry (`extra.request`) go; and every value the path, the query string or the
task's arguments held is replaced wherever else it appears: an exception message naming the
visitor, a log message built from the path (ops.scrubbing). Events are tagged with the request
id, to find their log lines.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from sentry_sdk.types import Breadcrumb, BreadcrumbHint, Event, Hint

from .context import request_id_var
from .middleware import PROBE_PATHS
from .scrubbing import (
    FILTERED,
    RequestShape,
    redact,
    request_shape,
    request_shape_of,
    secret_forms,
    strings_in,
)

HOT_PATHS = frozenset({"/api/personalization"})
# Headers worth keeping; every other one (Cookie, Authorization, X-Forwarded-For...) is dropped.
KEPT_HEADERS = frozenset(
    {"accept", "content-length", "content-type", "host", "user-agent", "x-request-id"}
)
# Keys whose values the SDK's scrubber replaces anywhere in an event (extra, breadcrumbs...).
PII_KEYS = [
    "user_pseudo_id",
    "user_id",
    "visitor_id",
    "client_id",
    "client_ip",
    "ip",
    "email",
    "query_string",
    "api_secret",
]


def traces_sampler_for(*, hot_rate: float, rate: float) -> Callable[[dict[str, Any]], float]:
    """The hot path is sampled at its own (low) rate, probes never, the rest at `rate`."""

    def traces_sampler(context: dict[str, Any]) -> float:
        parent = context.get("parent_sampled")
        if parent is not None:
            return 1.0 if parent else 0.0
        path = (context.get("wsgi_environ") or {}).get("PATH_INFO", "")
        if path in PROBE_PATHS:
            return 0.0
        if path in HOT_PATHS:
            return hot_rate
        return rate

    return traces_sampler


def _without_query(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


# Reprs of request objects (`<WSGIRequest: GET '/path?query'>`) that integrations attach.
_REQUEST_REPR = re.compile(r"<(?:WSGI|ASGI|Http)Request\b[^>]*>")


def scrub(event: Event, hint: Hint | None = None) -> Event:
    """before_send and before_send_transaction: the request as its route pattern, nothing
    that identifies the visitor or the client anywhere in the event."""
    data: dict[str, Any] = event  # type: ignore[assignment]  # a TypedDict, edited as a dict
    data.pop("user", None)
    shapes: list[RequestShape] = []
    request = data.get("request")
    if isinstance(request, dict):
        shape = _scrub_request(request)
        if shape is not None:
            shapes.append(shape)
    record = (hint or {}).get("log_record")
    if record is not None and _is_request(getattr(record, "request", None)):
        shapes.append(request_shape_of(record.request))
    extra = data.get("extra")
    secrets: set[str] = set()
    if isinstance(extra, dict):
        extra.pop("request", None)  # Django's log records carry the request; its repr has the query
        job = extra.get("celery-job")
        if isinstance(job, dict):
            job["args"] = job["kwargs"] = FILTERED
    # A task's arguments are visitor ids as often as not: hidden wherever they show up (an
    # exception message naming the visitor). The SDK hides them only where it puts them.
    secrets.update(_task_arguments())
    breadcrumbs = data.get("breadcrumbs")
    for crumb in breadcrumbs.get("values", []) if isinstance(breadcrumbs, dict) else []:
        if isinstance(crumb, dict):
            _scrub_crumb_fields(crumb)
    _redact_event(data, shapes, secret_forms(secrets))
    request_id = request_id_var.get()
    if request_id:
        data.setdefault("tags", {})["request_id"] = request_id
    return event


def scrub_breadcrumb(crumb: Breadcrumb, hint: BreadcrumbHint | None = None) -> Breadcrumb:
    """before_breadcrumb: the same rules, applied when a breadcrumb is recorded (a log line
    written while serving a request carries that request)."""
    data: dict[str, Any] = crumb  # type: ignore[assignment]
    _scrub_crumb_fields(data)
    record = (hint or {}).get("log_record")
    if record is not None and _is_request(getattr(record, "request", None)):
        _redact_event(data, [request_shape_of(record.request)], ())
    return crumb


def _task_arguments() -> list[str]:
    """The strings among the running Celery task's arguments; none outside a task."""
    try:
        from celery import current_task

        request = current_task.request if current_task else None
    except Exception:  # never let the scrubber stop a report
        return []
    if request is None:
        return []
    return list(strings_in([getattr(request, "args", None), getattr(request, "kwargs", None)]))


def _is_request(value: object) -> bool:
    return hasattr(value, "path_info") and hasattr(value, "META")


def _scrub_request(request: dict[str, Any]) -> RequestShape | None:
    """The request part of an event: its URL as the route pattern, no query string, cookies,
    body, environment, nor a header outside KEPT_HEADERS. Returns the request's shape."""
    query_string = request.pop("query_string", None)
    for key in ("cookies", "data", "env"):
        request.pop(key, None)
    headers = request.get("headers")
    if isinstance(headers, dict):
        request["headers"] = {k: v for k, v in headers.items() if k.lower() in KEPT_HEADERS}
    url = request.get("url")
    if not isinstance(url, str):
        return None
    parts = urlsplit(url)
    query = query_string if isinstance(query_string, str) else parts.query
    shape = request_shape(path=unquote(parts.path) or "/", query_string=query or parts.query)
    request["url"] = urlunsplit((parts.scheme, parts.netloc, shape.path, "", ""))
    return shape


def _scrub_crumb_fields(crumb: dict[str, Any]) -> None:
    crumb_data = crumb.get("data")
    if not isinstance(crumb_data, dict):
        return
    crumb_data.pop("request", None)
    for key in ("http.query", "http.fragment"):
        crumb_data.pop(key, None)
    if isinstance(crumb_data.get("url"), str):
        crumb_data["url"] = _without_query(crumb_data["url"])


def _redact_event(
    data: dict[str, Any], shapes: list[RequestShape], secrets: tuple[str, ...]
) -> None:
    """Every string of the event, keys included, through each request's redaction."""

    def clean(text: str) -> str:
        for shape in shapes:
            text = shape.redact(text)
        text = redact(text, secrets)
        return _REQUEST_REPR.sub("<request>", text)

    def walk(value: Any, depth: int) -> Any:
        if isinstance(value, str):
            return clean(value)
        if depth > 60:
            return value
        if isinstance(value, dict):
            return {
                (clean(k) if isinstance(k, str) else k): walk(v, depth + 1)
                for k, v in value.items()
            }
        if isinstance(value, list):
            return [walk(item, depth + 1) for item in value]
        if isinstance(value, tuple):
            return tuple(walk(item, depth + 1) for item in value)
        return value

    for key in list(data):
        data[key] = walk(data[key], 0)


def init(
    *,
    dsn: str,
    environment: str,
    release: str,
    traces_sample_rate: float,
    traces_sample_rate_hot: float,
    include_local_variables: bool = False,
) -> bool:
    """Start the SDK when a DSN is given; returns whether it did."""
    if not dsn:
        return False
    import sentry_sdk
    from sentry_sdk.integrations.celery import CeleryIntegration
    from sentry_sdk.integrations.django import DjangoIntegration
    from sentry_sdk.integrations.redis import RedisIntegration
    from sentry_sdk.scrubber import DEFAULT_DENYLIST, DEFAULT_PII_DENYLIST, EventScrubber

    sentry_sdk.init(
        dsn=dsn,
        environment=environment,
        release=release or None,
        integrations=[
            DjangoIntegration(transaction_style="url"),
            CeleryIntegration(monitor_beat_tasks=False),
        ],
        # Its spans and breadcrumbs name cache keys, and those hold visitor ids.
        disabled_integrations=[RedisIntegration()],
        traces_sampler=traces_sampler_for(hot_rate=traces_sample_rate_hot, rate=traces_sample_rate),
        send_default_pii=False,
        max_request_body_size="never",
        include_local_variables=include_local_variables,
        event_scrubber=EventScrubber(
            denylist=[*DEFAULT_DENYLIST, *DEFAULT_PII_DENYLIST, *PII_KEYS], recursive=True
        ),
        before_send=scrub,
        before_send_transaction=scrub,
        before_breadcrumb=scrub_breadcrumb,
    )
    return True
