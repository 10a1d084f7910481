"""LLM providers behind one interface: `complete(request) -> Completion`, raising
ProviderError subclasses that say whether (and after how long) a retry makes sense.

The SDKs' own retries are off (openai `max_retries=0`; google-genai retries only with
`retry_options`, which we never set): the chain decides, so backoff, the circuit breaker and
the token budget see every call.
"""

from __future__ import annotations

import email.utils
import json
import re
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings

OFFLINE = "offline"


@dataclass(frozen=True)
class LLMRequest:
    system: str
    prompt: str
    schema: dict[str, Any]
    # The statistics and catalog the prompt was built from: the offline analyzer reads them.
    aggregate: dict[str, Any] = field(default_factory=dict)
    catalog: dict[str, list[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class Completion:
    text: str
    prompt_tokens: int
    completion_tokens: int
    model: str


class ProviderError(Exception):
    status = "error"  # the llm_requests_total label
    retryable = True

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class RateLimited(ProviderError):
    status = "rate_limited"


class TimedOut(ProviderError):
    status = "timeout"


class Unavailable(ProviderError):
    """5xx or a connection failure: worth another try after a pause."""


class Rejected(ProviderError):
    """The provider refused the request itself (bad key, bad model): retrying cannot help."""

    retryable = False


class Provider(ABC):
    name: str
    model: str
    remote = True

    @abstractmethod
    def configured(self) -> bool: ...

    @abstractmethod
    def complete(self, request: LLMRequest) -> Completion: ...


# --- Gemini (google-genai) --------------------------------------------------------------------


class GeminiProvider(Provider):
    name = "gemini"

    def __init__(
        self,
        *,
        api_key: str,
        model: str,
        base_url: str = "",
        api_version: str = "v1beta",
        timeout: float = 60.0,
        temperature: float = 0.2,
        max_output_tokens: int = 4096,
    ) -> None:
        self.api_key, self.model, self.base_url = api_key, model, base_url
        self.api_version, self.timeout = api_version, timeout
        self.temperature, self.max_output_tokens = temperature, max_output_tokens

    def configured(self) -> bool:
        return bool(self.api_key)

    def complete(self, request: LLMRequest) -> Completion:
        import httpx2
        from google import genai
        from google.genai import errors, types

        options = types.HttpOptions(
            base_url=self.base_url or None,
            api_version=self.api_version,
            timeout=max(1, int(self.timeout * 1000)),  # milliseconds
        )
        config = types.GenerateContentConfig(
            system_instruction=request.system,
            temperature=self.temperature,
            max_output_tokens=self.max_output_tokens,
            response_mime_type="application/json",
            response_schema=request.schema,
        )
        try:
            with genai.Client(api_key=self.api_key, http_options=options) as client:
                response = client.models.generate_content(
                    model=self.model, contents=request.prompt, config=config
                )
        except errors.APIError as exc:
            raise _gemini_error(exc) from None
        except httpx2.TimeoutException:
            raise TimedOut(f"no answer within {self.timeout:g}s") from None
        except httpx2.HTTPError as exc:
            raise Unavailable(type(exc).__name__) from None
        except ValueError:  # a 200 whose body is not JSON: a proxy or gateway hiccup
            raise Unavailable("the response body is not JSON") from None
        usage = response.usage_metadata
        return Completion(
            text=_gemini_text(response),
            prompt_tokens=(usage.prompt_token_count or 0) if usage else 0,
            completion_tokens=(usage.candidates_token_count or 0) if usage else 0,
            model=response.model_version or self.model,
        )


def _gemini_text(response: Any) -> str:
    # `response.text` warns and joins oddly on non-text parts; take the text parts only.
    try:
        parts = response.candidates[0].content.parts or []
    except (AttributeError, IndexError, TypeError):
        return ""
    return "".join(part.text for part in parts if getattr(part, "text", None))


def _gemini_error(exc: Any) -> ProviderError:
    code = int(getattr(exc, "code", 0) or 0)
    message = f"HTTP {code} {getattr(exc, 'status', '') or ''}".strip()
    delay = gemini_retry_delay(getattr(exc, "details", None))
    if code == 429:
        return RateLimited(message, retry_after=delay)
    if code >= 500 or code in (408, 409):
        return Unavailable(message, retry_after=delay)
    return Rejected(message)


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)s\s*$")


def gemini_retry_delay(details: Any) -> float | None:
    """`error.details[]` entry of @type google.rpc.RetryInfo: {"retryDelay": "38.6s"}."""
    error = details.get("error", details) if isinstance(details, dict) else None
    entries = error.get("details") if isinstance(error, dict) else None
    for entry in entries if isinstance(entries, list) else []:
        if isinstance(entry, dict) and str(entry.get("@type", "")).endswith("google.rpc.RetryInfo"):
            match = _DURATION.match(str(entry.get("retryDelay", "")))
            if match:
                return float(match.group(1))
    return None


# --- OpenAI-compatible (openai SDK): DeepSeek, Ollama, vLLM, ... -------------------------------


class OpenAICompatibleProvider(Provider):
    name = "openai_compatible"

    def __init__(
        self,
        *,
        api_key: str,
        model: str,
        base_url: str,
        timeout: float = 60.0,
        temperature: float = 0.2,
        max_output_tokens: int = 4096,
        key_required: bool = False,
    ) -> None:
        self.api_key, self.model, self.base_url, self.timeout = api_key, model, base_url, timeout
        self.temperature, self.max_output_tokens = temperature, max_output_tokens
        self.key_required = key_required

    def configured(self) -> bool:
        return bool(self.base_url) and (bool(self.api_key) or not self.key_required)

    def complete(self, request: LLMRequest) -> Completion:
        import openai

        # Local servers (Ollama) ignore the key but the SDK insists on one.
        client = openai.OpenAI(
            api_key=self.api_key or "unused",
            base_url=self.base_url,
            timeout=self.timeout,
            max_retries=0,
        )
        try:
            with client:
                response = client.chat.completions.create(
                    model=self.model,
                    messages=[
                        {"role": "system", "content": request.system},
                        {"role": "user", "content": request.prompt},
                    ],
                    response_format={"type": "json_object"},
                    temperature=self.temperature,
                    max_tokens=self.max_output_tokens,
                )
        except openai.APITimeoutError:  # before APIConnectionError: it is one
            raise TimedOut(f"no answer within {self.timeout:g}s") from None
        except openai.APIConnectionError as exc:
            raise Unavailable(type(exc).__name__) from None
        except openai.APIStatusError as exc:
            raise _openai_error(exc) from None
        except openai.OpenAIError as exc:
            raise Unavailable(type(exc).__name__) from None
        except ValueError:  # a 200 whose body is not JSON: a proxy or gateway hiccup
            raise Unavailable("the response body is not JSON") from None
        choices = getattr(response, "choices", None) or []
        text = (choices[0].message.content or "") if choices else ""
        usage = getattr(response, "usage", None)
        return Completion(
            text=text,
            prompt_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
            completion_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
            model=getattr(response, "model", None) or self.model,
        )


class DeepSeekProvider(OpenAICompatibleProvider):
    name = "deepseek"


def _openai_error(exc: Any) -> ProviderError:
    code = int(exc.status_code)
    delay = retry_after_seconds(exc.response.headers if exc.response is not None else {})
    message = f"HTTP {code}"
    if code == 429:
        return RateLimited(message, retry_after=delay)
    if code >= 500 or code in (408, 409):
        return Unavailable(message, retry_after=delay)
    return Rejected(message)


def retry_after_seconds(headers: Any) -> float | None:
    """`retry-after-ms`, or `Retry-After` as seconds or an HTTP date."""
    try:
        millis = headers.get("retry-after-ms")
        if millis is not None:
            return max(0.0, float(millis) / 1000)
        value = headers.get("retry-after")
    except (AttributeError, TypeError, ValueError):
        return None
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, moment.timestamp() - time.time())


# --- Offline: the statistics alone ---------------------------------------------------------------


class OfflineAnalyzer(Provider):
    """Writes the same structured insight from the aggregate, with no model: the default when
    no provider is configured and the last resort when all of them fail."""

    name = OFFLINE
    model = "statistics-v1"
    remote = False

    def configured(self) -> bool:
        return True

    def complete(self, request: LLMRequest) -> Completion:
        from .offline import offline_reply

        reply = offline_reply(request.aggregate, request.catalog)
        return Completion(
            text=json.dumps(reply), prompt_tokens=0, completion_tokens=0, model=self.model
        )


PROVIDER_NAMES = ("gemini", "deepseek", "openai_compatible", OFFLINE)


def providers_from_settings() -> list[Provider]:
    """The configured order, unknown names ignored, offline always last."""
    common = {
        "timeout": settings.LLM_TIMEOUT_SECONDS,
        "temperature": settings.LLM_TEMPERATURE,
        "max_output_tokens": settings.LLM_MAX_OUTPUT_TOKENS,
    }
    build = {
        "gemini": lambda: GeminiProvider(
            api_key=settings.GEMINI_API_KEY,
            model=settings.GEMINI_MODEL,
            base_url=settings.GEMINI_BASE_URL,
            api_version=settings.GEMINI_API_VERSION,
            **common,
        ),
        "deepseek": lambda: DeepSeekProvider(
            api_key=settings.DEEPSEEK_API_KEY,
            model=settings.DEEPSEEK_MODEL,
            base_url=settings.DEEPSEEK_BASE_URL,
            key_required=True,
            **common,
        ),
        "openai_compatible": lambda: OpenAICompatibleProvider(
            api_key=settings.OPENAI_COMPATIBLE_API_KEY,
            model=settings.OPENAI_COMPATIBLE_MODEL,
            base_url=settings.OPENAI_COMPATIBLE_BASE_URL,
            **common,
        ),
    }
    chain: list[Provider] = []
    for name in dict.fromkeys(n.strip().lower() for n in settings.LLM_PROVIDERS):
        if name == OFFLINE:
            break  # it always answers: whatever is listed after it would never be asked
        if name in build:
            chain.append(build[name]())
    return [*chain, OfflineAnalyzer()]
