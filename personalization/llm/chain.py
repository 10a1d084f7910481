"""Ask the configured providers in order until one gives a valid insight.

Per provider: transport failures (429, 5xx, timeouts) are retried up to LLM_MAX_ATTEMPTS with
backoff, honouring the server's Retry-After / RetryInfo; an invalid reply is retried once with
the validation error appended to the prompt. A provider whose circuit is open, or any remote
provider once the day's token budget is spent, is skipped. The offline analyzer ends the chain.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from django.conf import settings

from ops.metrics import LLM_REQUEST_DURATION, LLM_REQUESTS, LLM_TOKENS

from . import resilience
from .providers import Completion, LLMRequest, Provider, ProviderError, Rejected
from .schema import InvalidReply, reply_parse

logger = logging.getLogger(__name__)

MAX_ERROR_CHARS = 300
FELL_BACK = "Remote providers did not answer; offline analysis used."


class NoProviderAnswered(RuntimeError):
    """Every provider in the list was skipped or failed (only possible without offline)."""


@dataclass
class Generation:
    reply: Any  # what `parse` returned: an InsightReply unless told otherwise
    provider: str
    model: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_ms: int = 0
    attempts: list[dict[str, Any]] = field(default_factory=list)
    # Why the remote providers did not answer, when the offline analyzer had to.
    error: str = ""


class _Run:
    def __init__(self, providers: list[Provider]) -> None:
        self.providers = providers
        self.attempts: list[dict[str, Any]] = []
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.slept = 0.0
        self.secrets = [s for p in providers if (s := getattr(p, "api_key", "")) and len(s) >= 4]

    def record(self, provider: Provider, attempt: int, status: str, **extra: Any) -> None:
        LLM_REQUESTS.labels(provider.name, status).inc()
        entry = {"provider": provider.name, "model": provider.model, "attempt": attempt}
        entry["status"] = status
        if "error" in extra:
            extra["error"] = self.redact(str(extra["error"]))[:MAX_ERROR_CHARS]
        entry.update(extra)
        self.attempts.append(entry)

    def redact(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "[redacted]")
        return text

    def sleep(self, seconds: float) -> bool:
        """Sleep if the run's retry allowance covers it; False (no sleep) if it does not."""
        if seconds > settings.LLM_BACKOFF_MAX_SECONDS or (
            self.slept + seconds > settings.LLM_MAX_TOTAL_SLEEP_SECONDS
        ):
            return False
        time.sleep(seconds)
        self.slept += seconds
        return True


def generate(
    request: LLMRequest,
    providers: list[Provider],
    parse: Callable[[str | None], Any] = reply_parse,
) -> Generation:
    """The first valid reply, parsed by `parse` (which raises InvalidReply to reject one)."""
    run = _Run(providers)
    started = time.monotonic()
    for provider in providers:
        if not provider.configured():
            continue
        reply_and_completion = _ask(run, provider, request, parse)
        if reply_and_completion is None:
            continue
        reply, completion = reply_and_completion
        failures = [a for a in run.attempts if a["status"] not in ("ok",)]
        return Generation(
            reply=reply,
            provider=provider.name,
            model=completion.model,
            prompt_tokens=run.prompt_tokens,
            completion_tokens=run.completion_tokens,
            latency_ms=int((time.monotonic() - started) * 1000),
            attempts=run.attempts,
            error=(
                f"{FELL_BACK} {_failure_summary(failures)}"
                if failures and not provider.remote
                else ""
            ),
        )
    raise NoProviderAnswered(_failure_summary(run.attempts) or "no provider is configured")


def _ask(
    run: _Run, provider: Provider, request: LLMRequest, parse: Callable[[str | None], Any]
) -> tuple[Any, Completion] | None:
    transport_failures = 0
    corrected = False
    attempt = 0
    current = request
    while True:
        attempt += 1
        if provider.remote:
            if resilience.breaker_is_open(provider.name):
                run.record(provider, attempt, "skipped_breaker")
                return None
            if resilience.budget_exhausted():
                run.record(provider, attempt, "skipped_budget")
                return None
        began = time.monotonic()
        try:
            completion = _complete(provider, current)
        except ProviderError as exc:
            elapsed = time.monotonic() - began
            LLM_REQUEST_DURATION.labels(provider.name).observe(elapsed)
            run.record(
                provider,
                attempt,
                exc.status,
                latency_ms=int(elapsed * 1000),
                error=str(exc),
                retry_after=exc.retry_after,
            )
            if provider.remote and resilience.breaker_record_failure(provider.name):
                return None
            transport_failures += 1
            if not exc.retryable or transport_failures >= settings.LLM_MAX_ATTEMPTS:
                return None
            delay = resilience.backoff_delay(transport_failures, exc.retry_after)
            if not run.sleep(delay):
                run.attempts[-1]["gave_up"] = f"wait of {delay:.1f}s is over the allowance"
                return None
            continue
        elapsed = time.monotonic() - began
        LLM_REQUEST_DURATION.labels(provider.name).observe(elapsed)
        _count_tokens(run, provider, completion)
        try:
            reply = parse(completion.text)
        except InvalidReply as exc:
            run.record(provider, attempt, "invalid", latency_ms=int(elapsed * 1000), error=exc)
            if corrected:
                return None
            corrected = True
            current = replace(request, prompt=correction_prompt(request.prompt, str(exc)))
            continue
        run.record(provider, attempt, "ok", latency_ms=int(elapsed * 1000))
        if provider.remote:
            resilience.breaker_record_success(provider.name)
        return reply, completion


def _complete(provider: Provider, request: LLMRequest) -> Completion:
    try:
        return provider.complete(request)
    except ProviderError:
        raise
    except Exception as exc:
        # An SDK surprise (a new exception type, a bad base URL) must cost this provider its
        # turn, not the whole analysis.
        logger.exception("llm.provider_crashed", extra={"provider": provider.name})
        raise Rejected(f"unexpected {type(exc).__name__}") from exc


def correction_prompt(prompt: str, error: str) -> str:
    return (
        f"{prompt}\n\nYour previous reply was rejected: {error}\n"
        "Answer again with one JSON object that follows the schema exactly."
    )


def _count_tokens(run: _Run, provider: Provider, completion: Completion) -> None:
    run.prompt_tokens += completion.prompt_tokens
    run.completion_tokens += completion.completion_tokens
    if not provider.remote:
        return
    LLM_TOKENS.labels(provider.name, "prompt").inc(completion.prompt_tokens)
    LLM_TOKENS.labels(provider.name, "completion").inc(completion.completion_tokens)
    resilience.budget_consume(completion.prompt_tokens + completion.completion_tokens)


def _failure_summary(failures: list[dict[str, Any]]) -> str:
    if not failures:
        return ""
    return ", ".join(dict.fromkeys(f"{a['provider']}: {a['status']}" for a in failures))
