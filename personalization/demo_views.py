"""`/demo/`: a small portfolio page built from the catalog in the database, marked up the way the
real site marks its DOM, so `make run` shows personalize.js collecting and personalizing."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from .demo_catalog import CAREER
from .models import Project, Section, Skill

CONSENT_STATES = ("granted", "pending", "denied")


def demo_page(request: HttpRequest) -> HttpResponse:
    """Read from the database (not demo_catalog) so admin edits show; `?consent=` tries the
    consent states."""
    consent = request.GET.get("consent", "granted")
    return render(
        request,
        "personalization/demo.html",
        {
            "sections": list(Section.objects.all()),
            "projects": list(Project.objects.filter(is_active=True)),
            "skills": list(Skill.objects.all()),
            "career": CAREER,
            "consent": consent if consent in CONSENT_STATES else "granted",
            "consent_states": CONSENT_STATES,
        },
    )
