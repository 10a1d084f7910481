"""JSON typed into any admin JSON field is refused past JSON_MAX_DEPTH with a form error, never
parsed into a RecursionError (issue 18): Django's forms.JSONField lets that through as a 500."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.conf import settings
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.db import models
from django.test import RequestFactory

from personalization.models import (
    PersonalizationRule,
    Project,
    Section,
    Segment,
    Signal,
    Skill,
)
from portfolio.forms import DepthLimitedJSONField

from .admin_forms import segment_form, segment_with_signal

DEEP = "[" * 100_000 + "]" * 100_000
DEEP_OBJECTS = '{"a":' * 100_000 + "1" + "}" * 100_000


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.fixture
def staff_client(client):
    user = get_user_model().objects.create_superuser("root", "r@example.com", "pw-123456789")
    client.force_login(user)
    return client


def section_form() -> dict[str, str]:
    return {"slug": "talks", "title": "Talks", "position": "3", "tags": "[]"}


def project_form() -> dict[str, str]:
    return {
        "slug": "deep-project",
        "title": "Deep",
        "description": "",
        "category": "",
        "tech_stack": "[]",
        "tags": "[]",
        "is_active": "on",
    }


def skill_form() -> dict[str, str]:
    return {"name": "Deep skill", "tags": "[]"}


def signal_form() -> dict[str, Any]:
    return {
        "segment": Segment.objects.get(code="STUDENT").pk,
        "label": "deep",
        "event_name": "*",
        "conditions": "[]",
        "weight": "1",
        "cap": "1",
        "half_life_days": "",
        "is_active": "on",
    }


def rule_form() -> dict[str, Any]:
    return {
        "segment": Segment.objects.get(code="STUDENT").pk,
        "source": "admin",
        "priority_sections": "[]",
        "featured_projects": "[]",
        "highlight_skills": "[]",
        "reasoning": "",
    }


FIELDS = [
    ("section", section_form, "tags"),
    ("project", project_form, "tech_stack"),
    ("project", project_form, "tags"),
    ("skill", skill_form, "tags"),
    ("segment", segment_form, "topic_tags"),
    ("signal", signal_form, "conditions"),
    ("personalizationrule", rule_form, "priority_sections"),
    ("personalizationrule", rule_form, "featured_projects"),
    ("personalizationrule", rule_form, "highlight_skills"),
]
MODELS: dict[str, Any] = {
    "section": Section,
    "project": Project,
    "skill": Skill,
    "segment": Segment,
    "signal": Signal,
    "personalizationrule": PersonalizationRule,
}


@pytest.mark.django_db
@pytest.mark.parametrize("deep", [DEEP, DEEP_OBJECTS], ids=["lists", "objects"])
@pytest.mark.parametrize(("model", "form", "field"), FIELDS)
def test_admin_add__json_100k_deep__200_with_form_error(staff_client, model, form, field, deep):
    before = MODELS[model].objects.count()

    response = staff_client.post(f"/admin/personalization/{model}/add/", {**form(), field: deep})

    assert response.status_code == 200  # the form again, not a 500
    errors = response.context["adminform"].form.errors
    assert errors[field] == [f"JSON nested deeper than {settings.JSON_MAX_DEPTH} levels."]
    assert MODELS[model].objects.count() == before
    assert b"nested deeper than" in response.content


@pytest.mark.django_db
def test_segment_admin_inline__conditions_100k_deep__200_with_error_on_the_row(staff_client):
    data = segment_with_signal(conditions=DEEP)

    response = staff_client.post("/admin/personalization/segment/add/", data)

    assert response.status_code == 200
    (formset,) = response.context["inline_admin_formsets"]
    assert "nested deeper than" in formset.formset.errors[0]["conditions"][0]
    assert not Segment.objects.filter(code="RESEARCHER").exists()


@pytest.mark.django_db
def test_signal_admin_change__conditions_100k_deep__200_and_row_unchanged(staff_client):
    signal = Signal.objects.order_by("pk").first()
    assert signal is not None
    data = {**signal_form(), "segment": signal.segment_id, "conditions": DEEP}

    response = staff_client.post(f"/admin/personalization/signal/{signal.pk}/change/", data)

    assert response.status_code == 200
    assert "conditions" in response.context["adminform"].form.errors
    before = signal.conditions
    signal.refresh_from_db()
    assert signal.conditions == before


@pytest.mark.django_db
def test_section_admin_add__tags_at_the_depth_limit__saved_one_deeper_refused(staff_client):
    limit = settings.JSON_MAX_DEPTH
    refused = staff_client.post(
        "/admin/personalization/section/add/", {**section_form(), "tags": nested(limit + 1)}
    )
    saved = staff_client.post(
        "/admin/personalization/section/add/", {**section_form(), "tags": nested(limit)}
    )

    assert refused.status_code == 200
    assert "tags" in refused.context["adminform"].form.errors
    assert saved.status_code == 302
    assert json.dumps(Section.objects.get(slug="talks").tags) == nested(limit)


@pytest.mark.django_db
def test_every_admin_form__json_model_field__depth_limited_form_field(admin_user):
    request = RequestFactory().get("/admin/")
    request.user = admin_user
    checked = []
    for model, model_admin in admin.site._registry.items():
        forms = [(model, model_admin.get_form(request))]
        for inline in model_admin.get_inline_instances(request):
            forms.append((inline.model, inline.get_formset(request).form))
        for form_model, form in forms:
            model_fields = {f.name: f for f in form_model._meta.get_fields()}
            for name, form_field in form.base_fields.items():
                if isinstance(model_fields.get(name), models.JSONField):
                    checked.append(f"{form_model.__name__}.{name}")
                    assert isinstance(form_field, DepthLimitedJSONField), checked[-1]
    assert "Signal.conditions" in checked
    assert "PersonalizationRule.highlight_skills" in checked
