"""Second opinions on low-confidence visitors: asked without ids, recorded beside the
deterministic segment, never replacing it."""

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from personalization.insights_services import second_opinions_run
from personalization.models import VisitorProfile
from personalization.services import catalog_load_demo
from personalization.tasks import insights_run

from .fake_llm import add_events, fake_server, openai_ok

pytestmark = pytest.mark.django_db


@pytest.fixture
def server(settings):
    catalog_load_demo()
    with fake_server() as fake:
        settings.LLM_PROVIDERS = ["openai_compatible", "offline"]
        settings.OPENAI_COMPATIBLE_BASE_URL = fake.url
        settings.LLM_SECOND_OPINION_BELOW = 0.5
        settings.LLM_DAILY_TOKEN_BUDGET = 0
        yield fake


def visitors():
    add_events("GA1.unsure.1", "CASUAL", [("project_click", {"project_id": "llm-router"})] * 2)
    add_events("GA1.unsure.2", "STUDENT", [("section_view", {"section_name": "about"})])
    add_events("GA1.sure.3", "RECRUITER", [("download_resume", {})])
    VisitorProfile.objects.filter(user_pseudo_id="GA1.unsure.1").update(confidence=0.31)
    VisitorProfile.objects.filter(user_pseudo_id="GA1.unsure.2").update(confidence=0.42)
    VisitorProfile.objects.filter(user_pseudo_id="GA1.sure.3").update(confidence=0.9)


def opinions(*items):
    return openai_ok(json.dumps({"opinions": list(items)}))


def period():
    end = timezone.now()
    return {"period_start": end - timedelta(days=7), "period_end": end}


def test_second_opinion__low_confidence_visitors__recorded_beside_the_segment(server):
    visitors()
    server.queue(
        opinions(
            {"ref": "v1", "segment": "ML_ENGINEER", "confidence": 0.7, "reason": "ML reads."},
            {"ref": "v2", "segment": "STUDENT", "confidence": 0.6, "reason": "About page."},
        )
    )

    recorded = second_opinions_run(**period())

    assert recorded == 2
    unsure = VisitorProfile.objects.get(user_pseudo_id="GA1.unsure.1")
    assert unsure.segment == "CASUAL"  # the deterministic answer stands
    assert unsure.second_opinion["segment"] == "ML_ENGINEER"
    assert unsure.second_opinion["agrees"] is False
    assert unsure.second_opinion["deterministic_segment"] == "CASUAL"
    assert unsure.second_opinion["provider"] == "openai_compatible"
    assert VisitorProfile.objects.get(user_pseudo_id="GA1.unsure.2").second_opinion["agrees"]
    assert VisitorProfile.objects.get(user_pseudo_id="GA1.sure.3").second_opinion == {}
    prompt = server.prompt_of(0)
    assert "GA1." not in prompt
    assert '"llm-router"' in prompt
    assert server.requests[0].body["response_format"] == {"type": "json_object"}


def test_second_opinion__unknown_ref_or_segment__ignored(server):
    visitors()
    server.queue(
        opinions(
            {"ref": "v9", "segment": "ML_ENGINEER", "confidence": 0.7, "reason": "?"},
            {"ref": "v1", "segment": "ASTRONAUT", "confidence": 0.7, "reason": "?"},
        )
    )

    assert second_opinions_run(**period()) == 0
    assert not VisitorProfile.objects.exclude(second_opinion={}).exists()


def test_second_opinion__off_by_default__no_call(server, settings):
    settings.LLM_SECOND_OPINION_BELOW = 0.0
    visitors()

    assert second_opinions_run(**period()) == 0
    assert server.requests == []


def test_second_opinion__no_remote_provider__none_and_no_error(settings):
    settings.LLM_PROVIDERS = ["offline"]
    settings.LLM_SECOND_OPINION_BELOW = 0.5
    catalog_load_demo()
    visitors()

    assert second_opinions_run(**period()) == 0


def test_second_opinion__provider_down__insight_still_stored(server, settings):
    settings.LLM_MAX_ATTEMPTS = 1
    visitors()
    server.default = openai_ok("{not json")  # both the insight and the opinion fail validation

    result = insights_run.apply().get()

    assert result["provider"] == "offline"
    assert result["second_opinions"] == 0
    assert not VisitorProfile.objects.exclude(second_opinion={}).exists()
