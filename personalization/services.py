"""Writes to the personalization app's tables."""

from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction

from . import demo_catalog
from .models import Project, Section, Skill


@dataclass(frozen=True)
class CatalogCounts:
    sections: int
    projects: int
    skills: int


@transaction.atomic
def catalog_load_demo() -> CatalogCounts:
    """Create or refresh the demo catalog by its natural keys; safe to run again."""
    for section in demo_catalog.SECTIONS:
        Section.objects.update_or_create(slug=section["slug"], defaults=dict(section))
    for project in demo_catalog.PROJECTS:
        Project.objects.update_or_create(slug=project["slug"], defaults=dict(project))
    for skill in demo_catalog.SKILLS:
        Skill.objects.update_or_create(name=skill["name"], defaults={"tags": skill["tags"]})
    return CatalogCounts(
        sections=Section.objects.count(),
        projects=Project.objects.count(),
        skills=Skill.objects.count(),
    )
