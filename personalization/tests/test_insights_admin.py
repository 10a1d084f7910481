"""Django admin for LLM insights: pages render, unverified is flagged, drafts are approved
through rule_activate with one action, and the button queues an analysis."""

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from personalization.insights_services import insight_run
from personalization.models import InsightStatus, LLMInsight, PersonalizationRule, RuleStatus
from personalization.services import catalog_load_demo

from .fake_llm import add_events, fake_server, openai_ok, valid_text

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/personalization/llminsight/"


@pytest.fixture
def staff_client(client):
    user = get_user_model().objects.create_superuser("root", "r@example.com", "pw-123456789")
    client.force_login(user)
    return client


@pytest.fixture
def llm_insight(settings):
    """An insight from a loopback model that suggests an ML_ENGINEER rule."""
    catalog_load_demo()

    def make(days_back=0, **reply):
        with fake_server() as server:
            settings.LLM_PROVIDERS = ["openai_compatible"]
            settings.OPENAI_COMPATIBLE_BASE_URL = server.url
            server.queue(openai_ok(valid_text(**reply)))
            end = timezone.now().replace(microsecond=0) - timedelta(days=days_back)
            return insight_run(period_start=end - timedelta(days=7), period_end=end)

    return make


def test_changelist__renders_with_run_button_and_flag(staff_client, llm_insight):
    llm_insight(summary="Visits reached 99,999.")

    response = staff_client.get(CHANGELIST)

    assert response.status_code == 200
    html = response.content.decode()
    assert "Run analysis now" in html
    assert "⚠ Unverified numbers" in html


def test_change_page__renders_escaped_analysis_and_drafts(staff_client, llm_insight):
    insight = llm_insight(summary="<script>alert(1)</script> Visitors grew to 77,777.")

    response = staff_client.get(f"{CHANGELIST}{insight.pk}/change/")

    assert response.status_code == 200
    html = response.content.decode()
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "Machine-learning readers dominate project clicks." in html
    assert "77,777" in html
    assert "mismatch" in html
    assert "ML_ENGINEER v" in html
    assert "llm-router" in html


def test_approve_action__activates_drafts_through_the_service(staff_client, llm_insight):
    insight = llm_insight()
    draft = insight.suggested_rule_objects.get()
    previous = PersonalizationRule.objects.get(segment=draft.segment, status=RuleStatus.ACTIVE)

    response = staff_client.post(
        CHANGELIST, {"action": "approve_drafts", "_selected_action": [insight.pk]}, follow=True
    )

    assert response.status_code == 200
    draft.refresh_from_db()
    previous.refresh_from_db()
    assert draft.status == RuleStatus.ACTIVE
    assert draft.activated_at is not None
    assert previous.status == RuleStatus.ARCHIVED
    assert "Activated ML_ENGINEER" in response.content.decode()


def test_approve_action__two_insights_same_segment__refused(staff_client, llm_insight):
    first = llm_insight(days_back=0)
    second = llm_insight(
        days_back=1,
        suggested_rules=[
            {
                "segment": "ML_ENGINEER",
                "priority_sections": ["skills"],
                "featured_projects": ["recsys-lab"],
                "highlight_skills": [],
                "reasoning": "other",
            }
        ],
    )

    response = staff_client.post(
        CHANGELIST,
        {"action": "approve_drafts", "_selected_action": [first.pk, second.pk]},
        follow=True,
    )

    assert "same segment" in response.content.decode()
    assert not PersonalizationRule.objects.filter(insight__isnull=False, status="active").exists()


def test_run_button__queues_an_analysis(staff_client, settings):
    settings.LLM_PROVIDERS = ["offline"]
    catalog_load_demo()
    add_events("ml.1", "ML_ENGINEER", [("project_click", {"project_id": "llm-router"})])

    response = staff_client.post(f"{CHANGELIST}run/", follow=True)

    assert response.status_code == 200
    assert "queued" in response.content.decode()
    insight = LLMInsight.objects.get()  # in-process in tests
    assert insight.status == InsightStatus.OK


def test_run_button__get__not_allowed(staff_client):
    assert staff_client.get(f"{CHANGELIST}run/").status_code == 405
    assert not LLMInsight.objects.exists()


def test_run_button__not_logged_in__redirected_to_login(client):
    response = client.post(f"{CHANGELIST}run/")

    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]
    assert not LLMInsight.objects.exists()


def test_admin__add_page__forbidden(staff_client):
    assert staff_client.get(f"{CHANGELIST}add/").status_code == 403
