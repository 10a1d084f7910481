"""The /demo/ page and the static personalize.js it loads (the browser side: test_browser.py)."""

from __future__ import annotations

import gzip
from html.parser import HTMLParser

import pytest
from django.contrib.staticfiles import finders

from personalization import demo_catalog
from personalization.models import Project, Section, Skill
from personalization.services import catalog_load_demo

pytestmark = pytest.mark.django_db

SCRIPT = "personalization/personalize.js"
GZIP_BUDGET = 8_000  # bytes, gzip -9; the snippet must stay small


class _Tags(HTMLParser):
    """Every start tag with its attributes, in document order."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def section_ids(self) -> list[str | None]:
        return [attrs.get("id") for tag, attrs in self.tags if tag == "section"]

    def having(self, attribute: str) -> list[dict[str, str | None]]:
        return [attrs for _, attrs in self.tags if attribute in attrs]


def _parse(html: str) -> _Tags:
    parser = _Tags()
    parser.feed(html)
    return parser


@pytest.fixture
def catalog() -> None:
    catalog_load_demo()


def test_demo_page__demo_catalog__renders_sections_projects_skills_and_career(client, catalog):
    response = client.get("/demo/")

    assert response.status_code == 200
    page = _parse(response.content.decode())
    assert page.section_ids() == [section["slug"] for section in demo_catalog.SECTIONS]
    cards = {
        attrs["data-project-id"]: attrs["data-category"] for attrs in page.having("data-project-id")
    }
    assert cards == {project["slug"]: project["category"] for project in demo_catalog.PROJECTS}
    skills = [str(attrs["data-skill-name"]) for attrs in page.having("data-skill-name")]
    assert sorted(skills) == sorted(skill["name"] for skill in demo_catalog.SKILLS)
    career = [
        (attrs["data-career-company"], attrs["data-career-position"])
        for attrs in page.having("data-career-company")
    ]
    assert career == demo_catalog.CAREER


def test_demo_page__about_section__has_contact_links_and_resume(client, catalog):
    page = _parse(client.get("/demo/").content.decode())

    contact_types = {attrs["data-contact-type"] for attrs in page.having("data-contact-type")}
    assert contact_types == {"email", "github", "linkedin", "view_projects"}
    assert [attrs.get("data-action") for attrs in page.having("data-action")] == ["download-resume"]


def test_demo_page__any_page__loads_the_script_deferred_with_consent(client, catalog):
    page = _parse(client.get("/demo/").content.decode())

    scripts = [attrs for tag, attrs in page.tags if tag == "script"]
    assert scripts[0]["src"] == f"/static/{SCRIPT}"
    assert "defer" in scripts[0]
    assert scripts[0]["data-consent"] == "granted"
    # No CDN, nothing external, nothing inline (the page's CSP would refuse it): every script
    # and stylesheet is a file on this origin.
    assert all((attrs.get("src") or "").startswith("/static/") for attrs in scripts)
    links = [attrs for tag, attrs in page.tags if tag == "link"]
    assert all((attrs.get("href") or "").startswith("/static/") for attrs in links)
    assert not [tag for tag, _ in page.tags if tag == "style"]
    assert not [attrs for _, attrs in page.tags if "style" in attrs]


@pytest.mark.parametrize(
    ("query", "expected"),
    [("?consent=pending", "pending"), ("?consent=denied", "denied"), ("?consent=bogus", "granted")],
)
def test_demo_page__consent_query__sets_the_script_consent(client, catalog, query, expected):
    page = _parse(client.get(f"/demo/{query}").content.decode())

    assert page.having("data-consent")[0]["data-consent"] == expected


def test_demo_page__admin_edits__show_on_the_page(client, catalog):
    Section.objects.filter(slug="about").update(position=0)
    Project.objects.filter(slug="toy-compiler").update(is_active=False)
    Project.objects.filter(slug="llm-router").update(title="LLM Router v2")
    Skill.objects.create(name="JAX", tags=["ml"])

    response = client.get("/demo/")

    html = response.content.decode()
    page = _parse(html)
    assert page.section_ids()[0] == "about"
    project_ids = {attrs["data-project-id"] for attrs in page.having("data-project-id")}
    assert "toy-compiler" not in project_ids
    assert "LLM Router v2" in html
    assert "JAX" in {attrs["data-skill-name"] for attrs in page.having("data-skill-name")}


def test_demo_page__catalog__three_queries(client, catalog, django_assert_num_queries):
    with django_assert_num_queries(3):
        client.get("/demo/")


def test_demo_page__empty_catalog__renders_a_hint(client):
    response = client.get("/demo/")

    assert response.status_code == 200
    assert b"seed_demo" in response.content
    assert not _parse(response.content.decode()).having("data-project-id")


def test_personalize_js__static_file__is_served(client, settings):
    # WhiteNoise serves app static files from the finders when DEBUG is on (`make run`);
    # pytest-django turns DEBUG off, so say it explicitly for this client.
    settings.WHITENOISE_USE_FINDERS = True
    settings.WHITENOISE_AUTOREFRESH = True

    response = client.get(f"/static/{SCRIPT}")

    assert response.status_code == 200
    assert "javascript" in response["Content-Type"]
    body = b"".join(response.streaming_content).decode()
    for needle in ("w.personalize = {", "/api/events", "/api/personalization", "sendBeacon"):
        assert needle in body


def test_personalize_js__gzipped__stays_within_budget():
    path = finders.find(SCRIPT)
    assert path, "personalize.js is not found by the static files finders"
    with open(path, "rb") as handle:
        source = handle.read()

    assert len(gzip.compress(source, compresslevel=9)) < GZIP_BUDGET
