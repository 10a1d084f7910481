"""Per-request observability, kept cheap because every request pays it (the hot path included):
no database, no regex compiled per request, no per-request label validation.

RequestObservabilityMiddleware (first in MIDDLEWARE, so it times the whole stack):
- X-Request-ID: the client's when sane, else a new uuid4 hex; echoed on the response and put in
  a context variable for log records and Celery task headers.
- api_requests_total / api_request_duration_seconds labelled by the resolved route pattern
  (`api/admin/rules/<int:pk>`), never the raw path; `unmatched` when nothing resolved.
- One `http.request` log line: method, route, status, duration_ms. No path, query string or IP.
  The route is also left in the WSGI environ (ops.scrubbing.ROUTE_ENVIRON_KEY) for gunicorn's
  access line.

LazyMessageMiddleware: Django's MessageMiddleware, except that the message store (a signed
cookie reader and a session reader) is built when a view or template first touches it. API
requests never do, and building it was a few percent of every request's CPU.

ApiJsonErrorsMiddleware: every response under /api/ is JSON (API.md), the ones Django writes
itself included: the resolver's 404 (an HTML page, or the debug page when DEBUG is on), a plain
Django view's 405, CSRF's 403, a slash redirect, a 500 page. Such a response keeps its status
and headers (Allow, Location, Retry-After...) and gets `{"detail": ...}` as its body. Other
paths keep Django's pages. ApiCommonMiddleware is Django's CommonMiddleware except that under
/api/ only GET and HEAD are redirected to the path with a slash: Django cannot redirect a body
(it raises in DEBUG), so a POST to a missing slash is the 404 of an unknown path.

ProbeHostMiddleware: Kubernetes probes and Prometheus reach pods by IP, which ALLOWED_HOSTS
rejects with 400. For exactly /health, /ready and /metrics (GET/HEAD) an unknown Host is
replaced with an allowed one; those views never build URLs from it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.contrib.messages.middleware import MessageMiddleware
from django.contrib.messages.storage import default_storage
from django.core.exceptions import DisallowedHost
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.http.request import validate_host
from django.middleware.common import CommonMiddleware
from django.utils.functional import SimpleLazyObject, empty

from .context import REQUEST_ID_HEADER, request_id_from, request_id_var, route_var
from .metrics import API_REQUEST_DURATION, API_REQUESTS
from .scrubbing import ROUTE_ENVIRON_KEY
from .scrubbing import UNMATCHED as UNMATCHED

logger = logging.getLogger("ops.requests")

PROBE_PATHS = frozenset({"/health", "/ready", "/metrics"})
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
STATIC = "static"


class RequestObservabilityMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.static_prefix = settings.STATIC_URL or "/static/"
        # Label children bound once per label set: labels() locks and validates on every call.
        self._counters: dict[tuple[str, str, str], Any] = {}
        self._histograms: dict[tuple[str, str], Any] = {}

    def __call__(self, request: HttpRequest) -> HttpResponse:
        start = time.perf_counter()
        request_id = request_id_from(request.META.get("HTTP_X_REQUEST_ID"))
        id_token = request_id_var.set(request_id)
        route_token = route_var.set(None)
        try:
            response = self.get_response(request)
            duration = time.perf_counter() - start
            response[REQUEST_ID_HEADER] = request_id
            self._record(request, response.status_code, duration)
            return response
        finally:
            route_var.reset(route_token)
            request_id_var.reset(id_token)

    def process_view(self, request: HttpRequest, *args: Any) -> None:
        # Log records written by the view carry its route.
        match = request.resolver_match
        if match is not None:
            route_var.set(match.route)

    def _record(self, request: HttpRequest, status: int, duration: float) -> None:
        method = request.method if request.method in _METHODS else "other"
        match = request.resolver_match
        if match is not None:
            endpoint = match.route
        elif status < 400 and request.path_info.startswith(self.static_prefix):
            endpoint = STATIC  # whitenoise answers before URL resolution
        else:
            endpoint = UNMATCHED
        # For gunicorn's access line (deploy/gunicorn.conf.py), which gets this same environ:
        # the route pattern in place of a path that may hold a visitor id.
        request.META[ROUTE_ENVIRON_KEY] = endpoint
        key = (method, endpoint, str(status))
        counter = self._counters.get(key)
        if counter is None:
            counter = self._counters[key] = API_REQUESTS.labels(*key)
        counter.inc()
        histogram = self._histograms.get(key[:2])
        if histogram is None:
            histogram = self._histograms[key[:2]] = API_REQUEST_DURATION.labels(*key[:2])
        histogram.observe(duration)

        # Probes every few seconds would drown the log: DEBUG for them.
        if status >= 500:
            level = logging.WARNING
        elif request.path_info in PROBE_PATHS:
            level = logging.DEBUG
        else:
            level = logging.INFO
        if logger.isEnabledFor(level):
            logger.log(
                level,
                "http.request",
                extra={
                    "route": endpoint,
                    "method": method,
                    "status": status,
                    "duration_ms": round(duration * 1000, 2),
                },
            )


class LazyMessageMiddleware(MessageMiddleware):
    def process_request(self, request: HttpRequest) -> None:
        request._messages = SimpleLazyObject(lambda: default_storage(request))  # type: ignore[attr-defined]

    def process_response(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        messages = getattr(request, "_messages", None)
        if isinstance(messages, SimpleLazyObject) and messages._wrapped is empty:  # type: ignore[attr-defined]
            return response  # never read or written: nothing to store
        return super().process_response(request, response)


def is_api_path(path: str) -> bool:
    return path.startswith("/api/") or path == "/api"


class ApiJsonErrorsMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        status = response.status_code
        if status < 300 or status == 304 or not is_api_path(request.path_info):
            return response
        if response.get("Content-Type", "").startswith("application/json"):
            return response
        return _as_json(request, response)


def _as_json(request: HttpRequest, response: HttpResponse) -> HttpResponse:
    status = response.status_code
    if status == 404:
        detail = "Not found."  # what DRF's views say
    elif status == 405:
        detail = f'Method "{request.method}" not allowed.'
    elif 300 <= status < 400 and response.get("Location"):
        detail = f"{response.reason_phrase}: {response['Location']}"
    else:
        detail = f"{response.reason_phrase}."
    replacement = JsonResponse({"detail": detail}, status=status)
    for header, value in response.items():
        if header.lower() not in ("content-type", "content-length"):
            replacement[header] = value
    replacement.cookies = response.cookies
    return replacement


class ApiCommonMiddleware(CommonMiddleware):
    def should_redirect_with_slash(self, request: HttpRequest) -> bool:
        if is_api_path(request.path_info) and request.method not in ("GET", "HEAD"):
            return False
        return bool(super().should_redirect_with_slash(request))


class ProbeHostMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path_info in PROBE_PATHS and request.method in ("GET", "HEAD"):
            try:
                request.get_host()
            except DisallowedHost:
                host = probe_host()
                if host:
                    request.META["HTTP_HOST"] = host
                    request.META.pop("HTTP_X_FORWARDED_HOST", None)
        return self.get_response(request)


def probe_host() -> str | None:
    """An entry of ALLOWED_HOSTS usable as a Host header (`.example.com` → `example.com`)."""
    allowed = settings.ALLOWED_HOSTS
    if settings.DEBUG and not allowed:
        allowed = [".localhost", "127.0.0.1", "[::1]"]  # what Django allows then
    candidates = [entry.lstrip(".") for entry in allowed if entry not in ("", "*")]
    candidates.append("localhost")  # covered by "*"
    return next((host for host in candidates if validate_host(host, allowed)), None)
