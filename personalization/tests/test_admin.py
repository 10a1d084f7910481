import json

import pytest
from django.contrib.auth import get_user_model

from personalization.models import (
    PersonalizationRule,
    Project,
    RuleSetVersion,
    RuleStatus,
    Segment,
)
from personalization.services import catalog_load_demo
from personalization.validation import rule_errors

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(client):
    user = get_user_model().objects.create_superuser("root", "r@example.com", "pw-123456789")
    client.force_login(user)
    return client


def rule_form(segment, **overrides):
    data = {
        "segment": segment.pk,
        "source": "admin",
        "priority_sections": json.dumps(["projects", "skills"]),
        "featured_projects": json.dumps(["llm-router"]),
        "highlight_skills": json.dumps(["PyTorch"]),
        "reasoning": "why",
    }
    data.update(overrides)
    return data


def test_rule_errors__within_limits__none():
    assert (
        rule_errors(
            {
                "priority_sections": [f"s{i}" for i in range(10)],
                "featured_projects": [],
                "reasoning": "x",
            }
        )
        == {}
    )


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"priority_sections": [f"s{i}" for i in range(11)]}, "priority_sections"),
        ({"featured_projects": [f"p{i}" for i in range(21)]}, "featured_projects"),
        ({"highlight_skills": [f"k{i}" for i in range(51)]}, "highlight_skills"),
        ({"highlight_skills": ["x" * 101]}, "highlight_skills"),
        ({"highlight_skills": [""]}, "highlight_skills"),
        ({"highlight_skills": [3]}, "highlight_skills"),
        ({"priority_sections": "projects"}, "priority_sections"),
        ({"priority_sections": ["a", "a"]}, "priority_sections"),
        ({"reasoning": "r" * 1001}, "reasoning"),
    ],
)
def test_rule_errors__over_a_limit__names_the_field(data, field):
    assert field in rule_errors(data)


def test_rule_admin__add__draft_with_next_version_and_author(staff_client):
    segment = Segment.objects.get(code="ML_ENGINEER")

    response = staff_client.post(
        "/admin/personalization/personalizationrule/add/", rule_form(segment)
    )

    assert response.status_code == 302
    rule = PersonalizationRule.objects.get(segment=segment, version=2)
    assert rule.status == RuleStatus.DRAFT
    assert rule.created_by == "root"


def test_rule_admin__over_limit__form_error_nothing_saved(staff_client):
    segment = Segment.objects.get(code="ML_ENGINEER")
    data = rule_form(segment, priority_sections=json.dumps([f"s{i}" for i in range(11)]))

    response = staff_client.post("/admin/personalization/personalizationrule/add/", data)

    assert response.status_code == 200
    assert "At most 10 items" in response.content.decode()
    assert PersonalizationRule.objects.filter(segment=segment).count() == 1


def test_rule_admin__activate_action__archives_previous_and_bumps_ruleset(
    staff_client, django_capture_on_commit_callbacks
):
    segment = Segment.objects.get(code="RECRUITER")
    draft = PersonalizationRule.objects.create(
        segment=segment, version=2, priority_sections=["career"]
    )
    before = RuleSetVersion.objects.get().version

    with django_capture_on_commit_callbacks(execute=True):
        staff_client.post(
            "/admin/personalization/personalizationrule/",
            {"action": "approve_and_activate", "_selected_action": [draft.pk]},
        )

    draft.refresh_from_db()
    assert draft.status == RuleStatus.ACTIVE
    assert PersonalizationRule.objects.get(segment=segment, version=1).status == RuleStatus.ARCHIVED
    assert RuleSetVersion.objects.get().version > before


def test_catalog_admin__project_edit__bumps_ruleset(staff_client):
    catalog_load_demo()
    before = RuleSetVersion.objects.get().version
    project = Project.objects.get(slug="llm-router")

    response = staff_client.post(
        f"/admin/personalization/project/{project.pk}/change/",
        {
            "slug": "llm-router",
            "title": "LLM Router",
            "description": "",
            "category": "Personal",
            "tech_stack": "[]",
            "tags": '["ml"]',
            "is_active": "on",
        },
    )

    assert response.status_code == 302, response.content.decode()[-2000:]
    assert RuleSetVersion.objects.get().version == before + 1


@pytest.mark.parametrize(
    "path",
    [
        "/admin/personalization/segment/",
        "/admin/personalization/signal/",
        "/admin/personalization/personalizationrule/",
        "/admin/personalization/visitorprofile/",
        "/admin/personalization/project/",
        "/admin/personalization/skill/",
        "/admin/personalization/section/",
    ],
)
def test_admin_pages__staff__render(staff_client, path):
    catalog_load_demo()

    assert staff_client.get(path).status_code == 200
