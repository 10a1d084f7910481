"""The beat entry, the task's default period, and the metrics at /metrics."""

import os
import subprocess
import sys
from datetime import timedelta

import pytest
from celery.schedules import crontab
from django.utils import timezone

from personalization.models import LLMInsight
from personalization.tasks import insights_run
from portfolio.celery import daily_at


def test_daily_at__hh_mm__crontab_every_day():
    assert daily_at("04:45") == crontab(hour=4, minute=45)
    assert daily_at("23") == crontab(hour=23, minute=0)


@pytest.mark.parametrize("value", ["", "off", "OFF", "none"])
def test_daily_at__off__no_schedule(value):
    assert daily_at(value) is None


def beat_entry(**env):
    code = (
        "from portfolio.celery import app;"
        "e = app.conf.beat_schedule.get('personalization-llm-insights');"
        "print(e and (e['task'], str(e['schedule'])))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


def test_beat_schedule__from_the_setting__daily_insights_task():
    entry = beat_entry(LLM_INSIGHTS_SCHEDULE="05:10")

    assert "personalization.tasks.insights_run" in entry
    assert "<crontab: 10 5 * * *" in entry


def test_beat_schedule__off__no_entry():
    assert beat_entry(LLM_INSIGHTS_SCHEDULE="off") == "None"


@pytest.mark.django_db
def test_task__no_period__the_days_before_midnight_utc(settings):
    settings.LLM_PROVIDERS = ["offline"]
    settings.LLM_INSIGHTS_DAYS = 3

    result = insights_run.apply().get()

    insight = LLMInsight.objects.get(pk=result["insight_id"])
    midnight = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0)
    assert insight.period_end == midnight
    assert insight.period_start == midnight - timedelta(days=3)
    assert result == {
        "insight_id": insight.pk,
        "status": "ok",
        "provider": "offline",
        "second_opinions": 0,
    }


@pytest.mark.django_db
def test_metrics__after_a_run__llm_series_exported(client, settings):
    settings.LLM_PROVIDERS = ["offline"]
    insights_run.apply(kwargs={"days": 2})

    body = client.get("/metrics").content.decode()

    assert 'llm_requests_total{provider="offline",status="ok"}' in body
    assert "llm_request_duration_seconds_bucket" in body
    assert "# TYPE llm_tokens_total counter" in body
