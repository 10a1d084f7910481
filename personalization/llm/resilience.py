"""Per-provider circuit breaker and the daily token budget, both in the Django cache so every
worker process (on Redis) shares them; and the backoff between retries.

The breaker fails open (a cache outage must not stop analyses); the budget fails closed (a
cache outage must not let paid calls run unmetered): the offline analyzer answers instead.
"""

from __future__ import annotations

import logging
import random
from datetime import UTC, datetime

from django.conf import settings
from django.core.cache import cache

logger = logging.getLogger(__name__)


def _key(provider: str, part: str) -> str:
    return f"llm:breaker:{provider}:{part}"


def breaker_is_open(provider: str) -> bool:
    try:
        return bool(cache.get(_key(provider, "open")))
    except Exception:
        logger.warning("llm.breaker_unavailable", extra={"provider": provider})
        return False


def breaker_record_failure(provider: str) -> bool:
    """Count a failed call; True when this failure opened the circuit."""
    cooldown = max(1, int(settings.LLM_BREAKER_COOLDOWN_SECONDS))
    try:
        # Half-open: the first call after a cooling-off period failed, so open again at once.
        if cache.get(_key(provider, "tripped")):
            count = settings.LLM_BREAKER_FAILURES
        else:
            cache.add(_key(provider, "failures"), 0, timeout=cooldown * 4)
            count = cache.incr(_key(provider, "failures"))
        if count < settings.LLM_BREAKER_FAILURES:
            return False
        cache.set(_key(provider, "open"), 1, timeout=cooldown)
        cache.set(_key(provider, "tripped"), 1, timeout=cooldown * 4)
        cache.delete(_key(provider, "failures"))
    except Exception:
        logger.warning("llm.breaker_unavailable", extra={"provider": provider})
        return False
    logger.warning("llm.breaker_opened", extra={"provider": provider, "cooldown": cooldown})
    return True


def breaker_record_success(provider: str) -> None:
    try:
        cache.delete_many([_key(provider, "failures"), _key(provider, "tripped")])
    except Exception:
        logger.warning("llm.breaker_unavailable", extra={"provider": provider})


def _budget_key() -> str:
    return f"llm:tokens:{datetime.now(UTC):%Y-%m-%d}"


def budget_exhausted() -> bool:
    budget = settings.LLM_DAILY_TOKEN_BUDGET
    if budget <= 0:
        return False
    try:
        return int(cache.get(_budget_key()) or 0) >= budget
    except Exception:
        logger.warning("llm.budget_unavailable")
        return True


def budget_consume(tokens: int) -> None:
    if tokens <= 0:
        return
    try:
        key = _budget_key()
        cache.add(key, 0, timeout=2 * 86_400)
        cache.incr(key, tokens)
    except Exception:
        logger.warning("llm.budget_unavailable")


def budget_used_today() -> int:
    try:
        return int(cache.get(_budget_key()) or 0)
    except Exception:
        return 0


def backoff_delay(attempt: int, hint: float | None) -> float:
    """The server's hint when it gave one, else exponential with full jitter."""
    if hint is not None:
        # At least what the server asked for; a little jitter so workers do not return in step.
        return hint + random.uniform(0, hint * 0.1)  # noqa: S311
    ceiling = settings.LLM_BACKOFF_BASE_SECONDS * (2 ** max(0, attempt - 1))
    return random.uniform(0, min(ceiling, settings.LLM_BACKOFF_MAX_SECONDS))  # noqa: S311
