"""Sentry error reporting and tracing: on only when SENTRY_DSN is set (ops.apps calls `init`).

No personal data leaves: send_default_pii is off, request bodies and frame locals are not sent
(a request's repr holds its query string, event bodies hold visitor ids), Redis spans are off
(cache keys hold visitor ids), and `scrub` removes
what the integrations still collect: query strings, cookies, client addresses, user, task
arguments. Events are tagged with the request id, to find their log lines.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from sentry_sdk.types import Event, Hint

from .context import request_id_var
from .middleware import PROBE_PATHS

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
FILTERED = "[Filtered]"


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


def scrub(event: Event, hint: Hint | None = None) -> Event:
    """before_send and before_send_transaction."""
    data: dict[str, Any] = event  # type: ignore[assignment]  # a TypedDict, edited as a dict
    data.pop("user", None)
    request = data.get("request")
    if isinstance(request, dict):
        for key in ("query_string", "cookies", "data", "env"):
            request.pop(key, None)
        if isinstance(request.get("url"), str):
            request["url"] = _without_query(request["url"])
        headers = request.get("headers")
        if isinstance(headers, dict):
            request["headers"] = {k: v for k, v in headers.items() if k.lower() in KEPT_HEADERS}
    job = (data.get("extra") or {}).get("celery-job")
    if isinstance(job, dict):
        job["args"] = job["kwargs"] = FILTERED
    breadcrumbs = data.get("breadcrumbs")
    for crumb in breadcrumbs.get("values", []) if isinstance(breadcrumbs, dict) else []:
        crumb_data = crumb.get("data")
        if isinstance(crumb_data, dict) and isinstance(crumb_data.get("url"), str):
            crumb_data["url"] = _without_query(crumb_data["url"])
            crumb_data.pop("http.query", None)
    request_id = request_id_var.get()
    if request_id:
        data.setdefault("tags", {})["request_id"] = request_id
    return event


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
    )
    return True
