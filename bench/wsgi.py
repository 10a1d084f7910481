"""The WSGI app `make bench` serves: Django (with bench.urls' baseline view) plus, at
/bench/raw, a raw WSGI callable answering the same JSON without Django at all, so the
gunicorn ceiling is measured by the same server and configuration as the real routes."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from portfolio.wsgi import application as django_application

_BODY = b'{"status":"ok","segment":"CASUAL","priority_sections":["about"]}'
_HEADERS = [("Content-Type", "application/json"), ("Content-Length", str(len(_BODY)))]


def application(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    if environ.get("PATH_INFO") == "/bench/raw":
        start_response("200 OK", _HEADERS)
        return [_BODY]
    return django_application(environ, start_response)
