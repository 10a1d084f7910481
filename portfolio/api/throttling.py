"""Rate limits on the shared cache (django-ratelimit), answered as 429 with Retry-After."""

from __future__ import annotations

import logging

from django.conf import settings
from django.http import HttpRequest
from django_ratelimit import ALL
from django_ratelimit.core import get_usage
from rest_framework.exceptions import Throttled

from .client_ip import client_ip_key

logger = logging.getLogger(__name__)


class RateLimited(Throttled):
    default_detail = "Rate limit exceeded. Try again later."


def enforce_rate_limit(request: HttpRequest, *, group: str, rate: str) -> None:
    """Count this request against `rate` per client IP; raise RateLimited past it.

    If the cache is unreachable the request is let through: losing events to a cache outage
    would be worse than briefly not limiting.
    """
    if not settings.RATELIMIT_ENABLE:
        return
    try:
        usage = get_usage(
            request, group=group, key=client_ip_key, rate=rate, method=ALL, increment=True
        )
    except Exception as exc:  # any cache failure: fail open, loudly
        logger.warning(
            "ratelimit.cache_unavailable", extra={"group": group, "error": type(exc).__name__}
        )
        return
    if usage and usage["should_limit"]:
        raise RateLimited(wait=max(1, usage["time_left"]))
