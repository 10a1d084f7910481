"""Serving the metrics: GET /metrics on the web processes, and a small HTTP server of its own in
each Celery worker node (CELERY_METRICS_PORT). Both answer only callers that pass
METRICS_ALLOWED_IPS (403) and METRICS_BEARER_TOKEN (401) when those are set.

With PROMETHEUS_MULTIPROC_DIR set (gunicorn workers, prefork Celery children) a scrape adds up
every process's files, so any one process answers for all of them.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from functools import lru_cache
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from portfolio.api.client_ip import client_ip

logger = logging.getLogger(__name__)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=4)
def _networks(cidrs: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(cidr.strip(), strict=False) for cidr in cidrs if cidr.strip())


def _address_allowed(address: str, cidrs: tuple[str, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        return False
    return any(ip in network for network in _networks(cidrs))


def refusal(*, authorization: str, address: str) -> tuple[int, str] | None:
    """(status, detail) when this caller may not read the metrics, else None."""
    cidrs = tuple(settings.METRICS_ALLOWED_IPS)
    if cidrs and not _address_allowed(address, cidrs):
        return 403, "Metrics are not served to this address."
    token = settings.METRICS_BEARER_TOKEN
    if token:
        scheme, _, offered = authorization.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            offered.strip().encode(), token.encode()
        ):
            return 401, "A valid bearer token is required for /metrics."
    return None


def _multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def process_registry() -> CollectorRegistry:
    """Every process's metrics in multiprocess mode, else this process's."""
    directory = _multiprocess_dir()
    if not directory:
        return REGISTRY
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=directory)
    return registry


def render(registries: Iterable[CollectorRegistry]) -> bytes:
    return b"".join(generate_latest(registry) for registry in registries)


def _refused_headers(status: int) -> dict[str, str]:
    return {"WWW-Authenticate": 'Bearer realm="metrics"'} if status == 401 else {}


# --- web ---------------------------------------------------------------------------------------


@csrf_exempt  # so a POST gets the JSON 405 below, not CSRF's HTML 403
def metrics_view(request: HttpRequest) -> HttpResponse:
    """GET /metrics: Prometheus text format."""
    refused = refusal(
        authorization=request.META.get("HTTP_AUTHORIZATION", ""), address=client_ip(request)
    )
    if refused:
        status, detail = refused
        return JsonResponse({"detail": detail}, status=status, headers=_refused_headers(status))
    if request.method not in ("GET", "HEAD"):
        return JsonResponse(
            {"detail": f'Method "{request.method}" not allowed.'},
            status=405,
            headers={"Allow": "GET, HEAD"},
        )
    return HttpResponse(render([process_registry()]), content_type=CONTENT_TYPE_LATEST)


# --- Celery worker node ------------------------------------------------------------------------


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes every 15 s are not worth a log line each."""


StartResponse = Callable[[str, list[tuple[str, str]]], Any]


def metrics_wsgi_app(
    registries: Callable[[], Iterable[CollectorRegistry]],
) -> Callable[[dict[str, Any], StartResponse], Iterator[bytes]]:
    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterator[bytes]:
        refused = refusal(
            authorization=environ.get("HTTP_AUTHORIZATION", ""),
            address=environ.get("REMOTE_ADDR", ""),
        )
        if refused:
            status, detail = refused
            reason = "Unauthorized" if status == 401 else "Forbidden"
            headers = [("Content-Type", "application/json"), *_refused_headers(status).items()]
            start_response(f"{status} {reason}", headers)
            return iter([json.dumps({"detail": detail}).encode()])
        if environ.get("PATH_INFO", "/") not in ("/", "/metrics"):
            start_response("404 Not Found", [("Content-Type", "application/json")])
            return iter([b'{"detail": "Not found."}'])
        body = render(registries())
        start_response("200 OK", [("Content-Type", CONTENT_TYPE_LATEST)])
        return iter([body])

    return app


def serve_metrics(
    *, port: int, addr: str, collectors: Iterable[Collector] = ()
) -> _ThreadingWSGIServer:
    """Serve /metrics from a daemon thread of this process; returns the server (to close it)."""
    extra = CollectorRegistry(auto_describe=True)
    for collector in collectors:
        extra.register(collector)
    app = metrics_wsgi_app(lambda: (process_registry(), extra))
    server = make_server(addr, port, app, _ThreadingWSGIServer, handler_class=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, name="metrics-server", daemon=True)
    thread.start()
    return server
