"""Providers through their real SDKs against loopback servers: the requests they send, and the
chain's handling of every failure (invalid replies, 429, 5xx, timeouts, breaker, budget)."""

import json
import socket
from datetime import timedelta

import pytest
from django.utils import timezone
from prometheus_client import REGISTRY

from personalization.insights_services import insight_run
from personalization.models import InsightStatus, LLMInsight, PersonalizationRule, RuleStatus
from personalization.services import catalog_load_demo

from .fake_llm import (
    Reply,
    add_events,
    fake_server,
    gemini_error,
    gemini_ok,
    openai_error,
    openai_ok,
    valid_text,
)

pytestmark = pytest.mark.django_db

GEMINI_KEY = "gm-test-key-123456"
OPENAI_KEY = "sk-local-test-7890"


@pytest.fixture(autouse=True)
def _data():
    catalog_load_demo()
    add_events(
        "ml.1",
        "ML_ENGINEER",
        [
            ("project_click", {"project_id": "llm-router"}),
            ("skill_hover", {"skill_name": "PyTorch"}),
        ],
    )


@pytest.fixture
def llm(settings):
    settings.LLM_PROVIDERS = ["offline"]
    settings.GEMINI_API_KEY = ""
    settings.DEEPSEEK_API_KEY = ""
    settings.OPENAI_COMPATIBLE_BASE_URL = ""
    settings.LLM_TIMEOUT_SECONDS = 5
    settings.LLM_MAX_ATTEMPTS = 3
    settings.LLM_BACKOFF_BASE_SECONDS = 0.01
    settings.LLM_BACKOFF_MAX_SECONDS = 2
    settings.LLM_MAX_TOTAL_SLEEP_SECONDS = 5
    settings.LLM_BREAKER_FAILURES = 10
    settings.LLM_BREAKER_COOLDOWN_SECONDS = 60
    settings.LLM_DAILY_TOKEN_BUDGET = 0
    return settings


@pytest.fixture
def gemini(llm):
    with fake_server() as server:
        llm.LLM_PROVIDERS = ["gemini", "offline"]
        llm.GEMINI_API_KEY = GEMINI_KEY
        llm.GEMINI_BASE_URL = server.url
        llm.GEMINI_API_VERSION = "v1beta"
        llm.GEMINI_MODEL = "gemini-test"
        yield server


@pytest.fixture
def compatible(llm):
    with fake_server() as server:
        llm.LLM_PROVIDERS = ["openai_compatible", "offline"]
        llm.OPENAI_COMPATIBLE_BASE_URL = server.url
        llm.OPENAI_COMPATIBLE_API_KEY = OPENAI_KEY
        llm.OPENAI_COMPATIBLE_MODEL = "llama-test"
        yield server


_periods = iter(range(1, 10_000))


def run() -> LLMInsight:
    """A fresh period each call, so runs never collide on the one-per-period rule."""
    end = timezone.now().replace(microsecond=0) - timedelta(minutes=next(_periods))
    return insight_run(period_start=end - timedelta(days=7), period_end=end)


def statuses(insight):
    return [(a["provider"], a["status"]) for a in insight.attempts]


def requests_total(provider, status):
    labels = {"provider": provider, "status": status}
    return REGISTRY.get_sample_value("llm_requests_total", labels) or 0.0


# --- Success and the wire format ----------------------------------------------------------------


def test_gemini__valid_reply__stored_from_the_sdk_request_as_documented(gemini):
    gemini.queue(gemini_ok(valid_text(), prompt_tokens=321, completion_tokens=45))
    before = requests_total("gemini", "ok")

    insight = run()

    [request] = gemini.requests
    assert request.path == "/v1beta/models/gemini-test:generateContent"
    assert request.headers["x-goog-api-key"] == GEMINI_KEY
    config = request.body["generationConfig"]
    assert config["responseMimeType"] == "application/json"
    schema = config["responseSchema"]
    assert set(schema["properties"]) == {"summary", "findings", "suggested_rules"}
    assert schema["properties"]["suggested_rules"]["items"]["properties"]["segment"]["enum"]
    assert "ML_ENGINEER" in request.body["contents"][0]["parts"][0]["text"]
    assert request.body["systemInstruction"]["parts"][0]["text"]
    assert (insight.provider, insight.model, insight.status) == ("gemini", "gemini-test-001", "ok")
    assert (insight.prompt_tokens, insight.completion_tokens) == (321, 45)
    assert insight.findings[0]["so_what"] == "They are the audience most likely to get in touch."
    assert statuses(insight) == [("gemini", "ok")]
    assert requests_total("gemini", "ok") == before + 1
    assert GEMINI_KEY not in json.dumps(insight.attempts)


def test_openai_compatible__valid_reply__json_object_mode_and_bearer_key(compatible):
    compatible.queue(openai_ok(valid_text()))

    insight = run()

    [request] = compatible.requests
    assert request.path == "/chat/completions"
    assert request.headers["authorization"] == f"Bearer {OPENAI_KEY}"
    assert request.body["response_format"] == {"type": "json_object"}
    assert request.body["model"] == "llama-test"
    assert "json" in compatible.prompt_of(0).lower()
    assert [m["role"] for m in request.body["messages"]] == ["system", "user"]
    assert (insight.provider, insight.model) == ("openai_compatible", "test-model")
    assert (insight.prompt_tokens, insight.completion_tokens) == (100, 60)


def test_deepseek__key_configured__called_at_its_base_url(llm):
    with fake_server() as server:
        llm.LLM_PROVIDERS = ["deepseek"]
        llm.DEEPSEEK_API_KEY = "ds-key-abcdef"
        llm.DEEPSEEK_BASE_URL = server.url + "/v1"
        llm.DEEPSEEK_MODEL = "deepseek-v4-flash"
        server.queue(openai_ok(valid_text()))

        insight = run()

    assert server.requests[0].path == "/v1/chat/completions"
    assert server.requests[0].body["model"] == "deepseek-v4-flash"
    assert insight.provider == "deepseek"


def test_providers__no_key_configured__skipped_and_offline_answers(llm):
    with fake_server() as server:
        llm.LLM_PROVIDERS = ["gemini", "deepseek", "openai_compatible", "offline"]
        llm.GEMINI_BASE_URL = server.url
        llm.DEEPSEEK_BASE_URL = server.url

        insight = run()

    assert server.requests == []
    assert insight.provider == "offline"
    assert insight.status == InsightStatus.OK
    assert statuses(insight) == [("offline", "ok")]


# --- Invalid replies ------------------------------------------------------------------------------


def test_openai_compatible__malformed_json_twice__next_provider_after_one_correction(compatible):
    compatible.queue(openai_ok("{not json"), openai_ok("still {not json"))

    insight = run()

    assert len(compatible.requests) == 2
    assert "not valid JSON" in compatible.prompt_of(1)
    assert "not valid JSON" not in compatible.prompt_of(0)
    assert statuses(insight) == [
        ("openai_compatible", "invalid"),
        ("openai_compatible", "invalid"),
        ("offline", "ok"),
    ]
    assert insight.provider == "offline"
    assert insight.prompt_tokens == 200  # the invalid replies cost tokens too


def test_gemini__schema_violation_then_valid__retry_prompt_carries_the_error(gemini):
    gemini.queue(
        gemini_ok(json.dumps({"summary": "Only a summary."})),
        gemini_ok(valid_text()),
    )

    insight = run()

    assert len(gemini.requests) == 2
    retry_prompt = gemini.prompt_of(1)
    assert "does not match the schema" in retry_prompt
    assert "findings" in retry_prompt.split("rejected:")[1]
    assert statuses(insight) == [("gemini", "invalid"), ("gemini", "ok")]
    assert insight.provider == "gemini"
    assert insight.summary == "ML engineers read the most; recruiters convert best."


# --- Rate limits, 5xx, timeouts -------------------------------------------------------------------


def test_gemini__429_with_retry_info__waits_the_delay_then_succeeds(gemini):
    gemini.queue(
        gemini_error(429, "RESOURCE_EXHAUSTED", retry_delay="0.4s"), gemini_ok(valid_text())
    )

    insight = run()

    first, second = gemini.requests
    assert second.at - first.at >= 0.4
    assert statuses(insight) == [("gemini", "rate_limited"), ("gemini", "ok")]
    assert insight.attempts[0]["retry_after"] == 0.4
    assert insight.provider == "gemini"


def test_openai_compatible__429_with_retry_after__waits_then_succeeds(compatible):
    compatible.queue(openai_error(429, {"Retry-After": "1"}), openai_ok(valid_text()))

    insight = run()

    first, second = compatible.requests
    assert second.at - first.at >= 1.0
    assert insight.attempts[0]["retry_after"] == 1.0
    assert insight.provider == "openai_compatible"


def test_openai_compatible__503_with_retry_after_ms__waits_then_succeeds(compatible):
    compatible.queue(openai_error(503, {"retry-after-ms": "300"}), openai_ok(valid_text()))

    insight = run()

    first, second = compatible.requests
    assert second.at - first.at >= 0.3
    assert statuses(insight) == [("openai_compatible", "error"), ("openai_compatible", "ok")]


def test_retry_after__longer_than_the_cap__next_provider_without_waiting(compatible, llm):
    llm.LLM_BACKOFF_MAX_SECONDS = 0.5
    compatible.queue(openai_error(429, {"Retry-After": "30"}))

    insight = run()

    assert len(compatible.requests) == 1
    assert "over the allowance" in insight.attempts[0]["gave_up"]
    assert insight.provider == "offline"
    assert insight.latency_ms < 5000


def test_gemini__5xx_every_time__max_attempts_then_offline(gemini, llm):
    llm.LLM_MAX_ATTEMPTS = 3
    gemini.default = gemini_error(500, "INTERNAL")

    insight = run()

    assert len(gemini.requests) == 3
    assert statuses(insight) == [("gemini", "error")] * 3 + [("offline", "ok")]
    assert "gemini: error" in insight.error


def test_openai_compatible__401__not_retried(compatible):
    compatible.queue(openai_error(401))

    insight = run()

    assert len(compatible.requests) == 1
    assert statuses(insight) == [("openai_compatible", "error"), ("offline", "ok")]


@pytest.mark.parametrize("provider", ["gemini", "compatible"])
def test_provider__slower_than_the_timeout__timeout_then_offline(provider, request, llm):
    server = request.getfixturevalue(provider)
    llm.LLM_TIMEOUT_SECONDS = 1
    llm.LLM_MAX_ATTEMPTS = 1
    server.queue(Reply(200, {}, delay=3))

    insight = run()

    assert len(server.requests) == 1
    assert insight.attempts[0]["status"] == "timeout"
    assert insight.attempts[0]["latency_ms"] < 2900
    assert insight.provider == "offline"


# --- Circuit breaker and budget -------------------------------------------------------------------


def test_breaker__opens_after_failures__skips_then_recovers_after_cooldown(compatible, llm):
    import time

    llm.LLM_BREAKER_FAILURES = 2
    llm.LLM_BREAKER_COOLDOWN_SECONDS = 1
    llm.LLM_MAX_ATTEMPTS = 5
    compatible.default = openai_error(500)

    opened = run()
    assert len(compatible.requests) == 2  # the breaker opened before attempt 3
    assert statuses(opened)[-1] == ("offline", "ok")

    skipped = run()
    assert len(compatible.requests) == 2
    assert statuses(skipped) == [("openai_compatible", "skipped_breaker"), ("offline", "ok")]

    time.sleep(1.2)
    compatible.default = openai_ok(valid_text())
    recovered = run()
    assert len(compatible.requests) == 3
    assert recovered.provider == "openai_compatible"


def test_breaker__half_open_call_fails__opens_again_at_once(compatible, llm):
    import time

    llm.LLM_BREAKER_FAILURES = 2
    llm.LLM_BREAKER_COOLDOWN_SECONDS = 1
    llm.LLM_MAX_ATTEMPTS = 5
    compatible.default = openai_error(500)
    run()
    time.sleep(1.2)

    run()  # one trial call after the cooldown, which fails

    assert len(compatible.requests) == 3


def test_budget__exhausted__remote_providers_skipped_and_offline_answers(compatible, llm):
    llm.LLM_DAILY_TOKEN_BUDGET = 150
    compatible.default = openai_ok(valid_text(), prompt_tokens=100, completion_tokens=60)

    first = run()
    second = run()

    assert first.provider == "openai_compatible"
    assert len(compatible.requests) == 1
    assert statuses(second) == [("openai_compatible", "skipped_budget"), ("offline", "ok")]
    assert second.provider == "offline"


def _closed_port() -> int:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


def test_all_providers_down__offline_insight_stored_with_drafts(llm):
    llm.LLM_MAX_ATTEMPTS = 2
    with fake_server() as gemini_server, fake_server() as compatible_server:
        gemini_server.default = gemini_error(503, "UNAVAILABLE")
        compatible_server.default = openai_error(502)
        llm.LLM_PROVIDERS = ["gemini", "deepseek", "openai_compatible", "offline"]
        llm.GEMINI_API_KEY, llm.GEMINI_BASE_URL = GEMINI_KEY, gemini_server.url
        llm.DEEPSEEK_API_KEY = "ds-key-abcdef"
        llm.DEEPSEEK_BASE_URL = f"http://127.0.0.1:{_closed_port()}"
        llm.OPENAI_COMPATIBLE_BASE_URL = compatible_server.url

        insight = run()

    assert [a["provider"] for a in insight.attempts] == [
        "gemini",
        "gemini",
        "deepseek",
        "deepseek",
        "openai_compatible",
        "openai_compatible",
        "offline",
    ]
    assert insight.provider == "offline"
    assert insight.status == InsightStatus.OK
    assert LLMInsight.objects.filter(pk=insight.pk).exists()
    assert "Remote providers did not answer" in insight.error
    # The offline analyzer suggests from what the segment engaged with.
    draft = PersonalizationRule.objects.get(insight=insight)
    assert draft.status == RuleStatus.DRAFT
    assert draft.featured_projects == ["llm-router"]
    assert draft.highlight_skills == ["PyTorch"]


@pytest.mark.parametrize("provider", ["gemini", "compatible"])
def test_provider__http_body_not_json__retried_as_transient_then_offline(provider, request, llm):
    server = request.getfixturevalue(provider)
    llm.LLM_MAX_ATTEMPTS = 2
    server.default = Reply(200, "<html>gateway hiccup</html>")

    insight = run()

    assert len(server.requests) == 2
    assert [a["status"] for a in insight.attempts[:2]] == ["error", "error"]
    assert insight.attempts[0]["error"] == "the response body is not JSON"
    assert insight.provider == "offline"
    assert insight.status == InsightStatus.OK
