from collections import Counter

import pytest
from django.core.management import call_command

from analytics.models import Event, EventSource, Visitor
from ops.services import demo_seed
from personalization.models import Project, Section, Skill

pytestmark = pytest.mark.django_db

FRONTEND_EVENTS = {
    "project_click",
    "repeat_view",
    "deep_read",
    "section_view",
    "skill_hover",
    "contact_intent",
    "career_timeline_interact",
    "download_resume",
    "external_link_click",
    "scroll_depth",
    "language_switch",
    "personalization_applied",
}


def test_demo_seed__first_run__catalog_visitors_and_events():
    result = demo_seed(visitors=60)

    assert Section.objects.filter(slug__in=["skills", "career", "projects", "about"]).count() == 4
    assert Project.objects.count() == 12
    assert Skill.objects.filter(name__in=["React", "PyTorch", "AI/ML Integration"]).count() == 3
    assert Visitor.objects.count() == 60
    assert Event.objects.count() == result.events_accepted > 60
    assert set(Event.objects.values_list("source", flat=True)) == {EventSource.SEED}
    assert set(Event.objects.values_list("event_name", flat=True)) <= FRONTEND_EVENTS


def test_demo_seed__second_run__adds_nothing():
    first = demo_seed(visitors=40)
    events, visitors = Event.objects.count(), Visitor.objects.count()

    second = demo_seed(visitors=40)

    assert second.events_accepted == 0
    assert second.events_existing == first.events_accepted
    assert (Event.objects.count(), Visitor.objects.count()) == (events, visitors)
    assert sum(Visitor.objects.values_list("event_count", flat=True)) == events


def test_demo_seed__events__reference_catalog_items():
    demo_seed(visitors=80)
    projects = set(Project.objects.values_list("slug", flat=True))
    skills = set(Skill.objects.values_list("name", flat=True))

    clicked = {
        e.event_params["project_id"] for e in Event.objects.filter(event_name="project_click")
    }
    hovered = {e.event_params["skill_name"] for e in Event.objects.filter(event_name="skill_hover")}

    assert clicked
    assert clicked <= projects
    assert hovered
    assert hovered <= skills


def test_seed_demo_command__prints_summary(capsys):
    call_command("seed_demo", "--visitors", "5")

    out = capsys.readouterr().out
    assert "12 projects" in out
    assert "Visitors: 5" in out


def test_demo_seed__visitor_counts__match_their_events():
    demo_seed(visitors=30)

    per_visitor = Counter(Event.objects.values_list("user_pseudo_id", flat=True))
    for visitor in Visitor.objects.all():
        assert visitor.event_count == per_visitor[visitor.user_pseudo_id]
        assert visitor.first_seen <= visitor.last_seen
