"""What identifies a visitor in a request, and how to take it out of text that leaves the
service (log lines, Sentry events).

A request's path may hold a visitor id (`/api/admin/visitors/<str:user_pseudo_id>`) and so may
its query string (`?user_id=`, GA4's `cid`, `client_id`...). Out of the service they go as the
route pattern, and every value they carried (path parameters, query values, the query string
itself) is replaced wherever else it shows up: an exception message naming the visitor, a
request's repr, a log message built from the path.

Values shorter than MIN_SECRET_LENGTH are left alone: replacing "1" or "abc" everywhere would
make tracebacks unreadable, and such a value does not identify anybody.

Settings import ops.logging, which imports this module: Django is imported lazily.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, quote, quote_plus

FILTERED = "[Filtered]"
UNMATCHED = "unmatched"  # the label of a path that resolved to no route (ops.middleware too)
MIN_SECRET_LENGTH = 4
# Set on the WSGI environ (request.META) by ops.middleware, read by gunicorn's access logger.
ROUTE_ENVIRON_KEY = "portfolio.route"


@dataclass(frozen=True)
class RequestShape:
    """A request as it may leave the service: its route pattern, and the values to hide."""

    route: str  # "api/admin/visitors/<str:user_pseudo_id>", or "unmatched"
    paths: tuple[str, ...]  # the raw path, as text may show it: replaced with `path`
    secrets: tuple[str, ...]  # longest first, so a value inside another goes with it

    @property
    def path(self) -> str:
        return "/" + self.route

    def redact(self, text: str) -> str:
        for raw in self.paths:
            if raw in text:
                text = text.replace(raw, self.path)
        return redact(text, self.secrets)


def request_shape(
    *, path: str, query_string: str = "", match: Any = None, script_path: str = ""
) -> RequestShape:
    """The shape of a request from its path (path_info) and raw query string; `match` is its
    ResolverMatch when Django resolved it already (else the path is resolved here);
    `script_path` the path with its script prefix, when there is one."""
    if match is None:
        match = _resolve(path)
    values: set[str] = set()
    if match is None:
        route = UNMATCHED  # and nobody knows what an unknown path holds: it is replaced whole
    else:
        route = match.route
        values.update(str(value) for value in match.kwargs.values())
    if query_string:
        values.add(query_string)
        values.update(value for _, value in parse_qsl(query_string, keep_blank_values=True))
    raw = {form for p in (path, script_path) if p for form in (p, quote(p, safe="/"))}
    raw.discard("/" + route)
    paths = tuple(sorted((p for p in raw if len(p) >= MIN_SECRET_LENGTH), key=len, reverse=True))
    return RequestShape(route=route, paths=paths, secrets=secret_forms(values))


def request_shape_of(request: Any) -> RequestShape:
    """The shape of a Django HttpRequest."""
    query_string = request.META.get("QUERY_STRING", "") or ""
    return request_shape(
        path=request.path_info,
        query_string=query_string,
        match=getattr(request, "resolver_match", None),
        script_path=request.path if request.path != request.path_info else "",
    )


def secret_forms(values: Iterable[str]) -> tuple[str, ...]:
    """The values long enough to hide, as they are and as they appear in URLs; longest first."""
    forms: set[str] = set()
    for value in values:
        if len(value) < MIN_SECRET_LENGTH:
            continue
        forms.update({value, quote(value, safe="/"), quote_plus(value), repr(value)[1:-1]})
    return tuple(sorted((f for f in forms if len(f) >= MIN_SECRET_LENGTH), key=len, reverse=True))


def strings_in(value: Any, *, depth: int = 0) -> Iterator[str]:
    """Every string in a JSON-like value (task arguments), keys included."""
    if depth > 20:
        return
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from strings_in(key, depth=depth + 1)
            yield from strings_in(item, depth=depth + 1)
    elif isinstance(value, (list, tuple, set, frozenset)):
        for item in value:
            yield from strings_in(item, depth=depth + 1)


def redact(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, FILTERED)
    return text


def redact_all(value: Any, secrets: tuple[str, ...], *, depth: int = 0) -> Any:
    """A copy of a JSON-like value with every secret replaced in its strings and keys."""
    if not secrets or depth > 50:
        return value
    if isinstance(value, str):
        return redact(value, secrets)
    if isinstance(value, dict):
        return {
            redact(k, secrets) if isinstance(k, str) else k: redact_all(v, secrets, depth=depth + 1)
            for k, v in value.items()
        }
    if isinstance(value, (list, tuple)):
        return [redact_all(item, secrets, depth=depth + 1) for item in value]
    return value


def _resolve(path: str) -> Any:
    from django.urls import Resolver404, resolve

    try:
        return resolve(path)
    except Resolver404:
        return None
    except Exception:  # a broken URLconf must not stop an error report
        return None
