"""The one exception handler: every API error leaves as JSON in the shape docs/API.md fixes.

- validation errors: 422 {"detail": "<one line>", "errors": {"<field>": ["<message>", ...]}}
- malformed JSON: 400; body too large: 413; rate limited: 429 with Retry-After
- missing or bad credentials: 401 with WWW-Authenticate: Bearer
- database unreachable: 503 with Retry-After, so clients retry instead of losing data
"""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.db import DatabaseError, InterfaceError, OperationalError
from django.http import Http404
from django_ratelimit.exceptions import Ratelimited
from rest_framework import exceptions, status
from rest_framework.response import Response

logger = logging.getLogger(__name__)

RATE_LIMITED_DETAIL = "Rate limit exceeded. Try again later."
DATABASE_RETRY_AFTER_SECONDS = 5


def flatten_errors(detail: Any, prefix: str = "") -> dict[str, list[str]]:
    """Turn DRF's nested error detail into {"events.3.event_name": ["..."]}."""
    if isinstance(detail, dict):
        flat: dict[str, list[str]] = {}
        for key, value in detail.items():
            name = "non_field_errors" if key == "non_field_errors" and not prefix else str(key)
            flat.update(flatten_errors(value, f"{prefix}.{name}" if prefix else name))
        return flat
    if isinstance(detail, list):
        if all(not isinstance(item, (dict, list)) for item in detail):
            return {prefix or "non_field_errors": [str(item) for item in detail]}
        flat = {}
        for index, item in enumerate(detail):
            if item:  # DRF puts {} for list items that passed
                flat.update(flatten_errors(item, f"{prefix}.{index}" if prefix else str(index)))
        return flat
    return {prefix or "non_field_errors": [str(detail)]}


def validation_error_response(errors: dict[str, list[str]], detail: str | None = None) -> Response:
    if detail is None:
        field, messages = next(iter(errors.items()), ("", ["Invalid input."]))
        detail = f"{field}: {messages[0]}" if field and field != "non_field_errors" else messages[0]
    return Response(
        {"detail": detail, "errors": errors}, status=status.HTTP_422_UNPROCESSABLE_ENTITY
    )


def rate_limited_response(retry_after: int) -> Response:
    return Response(
        {"detail": RATE_LIMITED_DETAIL},
        status=status.HTTP_429_TOO_MANY_REQUESTS,
        headers={"Retry-After": str(max(1, int(retry_after)))},
    )


def database_unavailable(exc: BaseException) -> bool:
    """The database cannot be reached (connection refused or lost), as opposed to a query bug:
    answered 503 with Retry-After, or degraded, never 500."""
    return isinstance(exc, (OperationalError, InterfaceError)) or type(exc) is DatabaseError


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, exceptions.ValidationError):
        return validation_error_response(flatten_errors(exc.detail))
    if isinstance(exc, Ratelimited):
        return rate_limited_response(getattr(exc, "retry_after", 60))
    if isinstance(exc, exceptions.Throttled):
        return rate_limited_response(int(getattr(exc, "wait", None) or 60))
    if isinstance(exc, RequestDataTooBig):
        return Response(
            {"detail": "Request body too large."}, status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
        )
    if isinstance(exc, (exceptions.NotAuthenticated, exceptions.AuthenticationFailed)):
        detail: Any = exc.detail
        if isinstance(detail, dict):  # simplejwt: {"detail", "code", "messages"}
            detail = detail.get("detail") or "Invalid token."
        return Response(
            {"detail": str(detail)},
            status=status.HTTP_401_UNAUTHORIZED,
            headers={"WWW-Authenticate": 'Bearer realm="api"'},
        )
    if isinstance(exc, Http404):
        return Response({"detail": "Not found."}, status=status.HTTP_404_NOT_FOUND)
    if isinstance(exc, PermissionDenied):
        return Response({"detail": "Permission denied."}, status=status.HTTP_403_FORBIDDEN)
    if isinstance(exc, exceptions.APIException):
        headers = {}
        if getattr(exc, "wait", None):
            headers["Retry-After"] = str(int(exc.wait))  # type: ignore[attr-defined]
        message = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        return Response({"detail": message}, status=exc.status_code, headers=headers)
    if database_unavailable(exc):
        logger.error("api.database_unavailable", extra={"error": type(exc).__name__})
        return Response(
            {"detail": "Service temporarily unavailable. Retry later."},
            status=status.HTTP_503_SERVICE_UNAVAILABLE,
            headers={"Retry-After": str(DATABASE_RETRY_AFTER_SECONDS)},
        )
    return None
