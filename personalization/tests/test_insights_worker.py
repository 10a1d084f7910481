"""A real `celery worker` process runs the analysis on PostgreSQL against a loopback
OpenAI-compatible server; the breaker state it writes is shared through Redis."""

from datetime import timedelta

import pytest
from django.utils import timezone

from conftest import run_celery_worker
from personalization.llm import resilience
from personalization.models import LLMInsight, PersonalizationRule, RuleSource, RuleStatus
from personalization.services import catalog_load_demo
from personalization.tasks import insights_run

from .fake_llm import add_events, fake_server, openai_error, openai_ok, valid_text


@pytest.fixture
def llm_worker(postgres, redis_url, transactional_db, settings):
    # This process's key prefix: settings were loaded before conftest set its own in the
    # environment, and the worker must share our cache keys (breaker, budget).
    prefix = settings.CACHES["default"].get("KEY_PREFIX", "")
    with (
        fake_server() as server,
        run_celery_worker(
            LLM_PROVIDERS="openai_compatible,offline",
            OPENAI_COMPATIBLE_BASE_URL=server.url,
            OPENAI_COMPATIBLE_API_KEY="sk-worker-test",
            OPENAI_COMPATIBLE_MODEL="worker-model",
            LLM_DAILY_TOKEN_BUDGET="0",
            LLM_MAX_ATTEMPTS="1",
            LLM_BREAKER_FAILURES="1",
            LLM_BREAKER_COOLDOWN_SECONDS="300",
            LLM_AUTO_ACTIVATE="false",
            CACHE_KEY_PREFIX=prefix,
        ) as worker,
    ):
        yield server, worker.queue


def run_on(queue, **kwargs):
    # disable_sync_subtasks=False: this process is no worker, but celery's global "inside a
    # task" flag can be left set by other tests running eager tasks from threads
    # (denied_join_result is not thread-safe), which would refuse the join.
    result = insights_run.apply_async(kwargs=kwargs, queue=queue)
    return result.get(timeout=60, disable_sync_subtasks=False)


def period_kwargs(days_back=0):
    end = timezone.now().replace(microsecond=0) - timedelta(days=days_back)
    return {"period_start": (end - timedelta(days=7)).isoformat(), "period_end": end.isoformat()}


@pytest.mark.services
@pytest.mark.real_worker
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_insights_run__real_worker_on_postgres__insight_and_drafts_written(llm_worker):
    server, queue = llm_worker
    catalog_load_demo()
    add_events("ml.1", "ML_ENGINEER", [("project_click", {"project_id": "llm-router"})] * 3)
    server.default = openai_ok(valid_text())
    kwargs = period_kwargs()

    result = run_on(queue, **kwargs)

    insight = LLMInsight.objects.get(pk=result["insight_id"])
    assert (insight.provider, insight.model, insight.status) == (
        "openai_compatible",
        "test-model",
        "ok",
    )
    assert server.requests[0].body["response_format"] == {"type": "json_object"}
    assert server.requests[0].body["model"] == "worker-model"
    draft = PersonalizationRule.objects.get(insight=insight)
    assert (draft.status, draft.source) == (RuleStatus.DRAFT, RuleSource.LLM)
    assert draft.featured_projects == ["llm-router", "sentiment-pipeline"]

    # Redelivered (acks_late after a crash): the period is found done, nothing repeats.
    again = run_on(queue, **kwargs)

    assert again["insight_id"] == insight.pk
    assert len(server.requests) == 1
    assert PersonalizationRule.objects.filter(source=RuleSource.LLM).count() == 1


@pytest.mark.services
@pytest.mark.real_worker
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_breaker__opened_by_the_worker__seen_here_through_redis(llm_worker):
    server, queue = llm_worker
    catalog_load_demo()
    server.default = openai_error(500)

    failed = run_on(queue, **period_kwargs(1))

    assert LLMInsight.objects.get(pk=failed["insight_id"]).provider == "offline"
    assert resilience.breaker_is_open("openai_compatible")

    skipped = run_on(queue, **period_kwargs(2))

    assert len(server.requests) == 1
    attempts = LLMInsight.objects.get(pk=skipped["insight_id"]).attempts
    assert attempts[0]["status"] == "skipped_breaker"
