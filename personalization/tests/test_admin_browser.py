"""The admin in a real browser (Debian's Chromium via Playwright): log in, see the dashboard's
charts drawn from our own static Chart.js, edit a rule, and get the new version served.

Skips without playwright or /usr/bin/chromium, or fails under REQUIRE_SERVICES=1 (as
test_browser.py does). The screenshot lands in docs/screenshots/ only with SAVE_SCREENSHOTS=1.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from analytics.services import EventIn, events_store
from personalization.models import PersonalizationRule, RuleChange
from personalization.selectors import variant_for
from personalization.services import catalog_load_demo
from personalization.tests.test_browser import ARGS, _db, chromium  # noqa: F401 (fixture)

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

pytestmark = pytest.mark.django_db(transaction=True)
ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "browser-admin-pw-123456"


def _visitor(prefix: str) -> str:
    return next(
        f"{prefix}.{i}" for i in range(1000) if variant_for(f"{prefix}.{i}") == "personalized"
    )


@pytest.fixture
def data(chromium: str) -> dict[str, str]:  # noqa: F811
    """Rows the dashboard can draw, created before the live server and the browser start."""
    catalog_load_demo()
    User.objects.create_superuser("owner", "owner@example.com", PASSWORD)
    now = timezone.now()
    visitors = {"ml": _visitor("ml"), "fs": _visitor("fs"), "rec": _visitor("rec")}
    plan = {
        "ml": [
            ("project_click", "project_id", "llm-router"),
            ("deep_read", "project_id", "llm-router"),
            ("skill_hover", "skill_name", "PyTorch"),
            ("deep_read", "project_id", "sentiment-pipeline"),
        ],
        "fs": [
            ("project_click", "project_id", "shop-platform"),
            ("deep_read", "project_id", "realtime-chat"),
            ("skill_hover", "skill_name", "React"),
            ("deep_read", "project_id", "shop-platform"),
        ],
        "rec": [
            ("download_resume", "file", "cv.pdf"),
            ("contact_intent", "type", "linkedin"),
            ("career_timeline_interact", "item", "2024"),
            ("section_view", "section_name", "career"),
        ],
    }
    events = [
        EventIn(
            name, visitors[who], now - timedelta(hours=3 * i + j), {param: value}, f"{who}-{i}-{j}"
        )
        for who, steps in plan.items()
        for j in range(3)
        for i, (name, param, value) in enumerate(steps)
    ]
    events_store(events=events)
    return visitors


@pytest.fixture
def admin_page(data: dict[str, str], live_server: Any, settings: Any) -> Iterator[tuple[Page, str]]:
    from playwright.sync_api import sync_playwright

    settings.PERSONALIZATION_HOLDOUT_PERCENT = 0
    with sync_playwright() as playwright:
        browser: Browser = playwright.chromium.launch(
            executable_path="/usr/bin/chromium", headless=True, args=ARGS
        )
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            page = context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(f"{live_server.url}/admin/login/?next=/admin/")
            page.fill("#id_username", "owner")
            page.fill("#id_password", PASSWORD)
            page.click("input[type=submit]")
            page.wait_for_selector("#dashboard-link")
            yield page, str(live_server.url)
            assert not errors, errors
        finally:
            browser.close()


def _painted_pixels(page: Page, canvas_id: str) -> int:
    return page.evaluate(
        """id => { const c = document.getElementById(id);
             const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
             let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++; return n; }""",
        canvas_id,
    )


def _screenshot(page: Page) -> None:
    saving = os.environ.get("SAVE_SCREENSHOTS") == "1"
    target = ROOT / ("docs/screenshots" if saving else "var/screenshots")
    target.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(target / "dashboard.png"), full_page=True)


def _served(page: Page, site: str, uid: str) -> dict[str, Any]:
    response = page.request.get(f"{site}/api/personalization?user_id={uid}")
    assert response.status == 200
    return json.loads(response.text())


def test_admin_browser__dashboard_draws_and_rule_edit_is_served(
    admin_page: tuple[Page, str], data: dict[str, str]
):
    page, site = admin_page
    before = _served(page, site, data["ml"])
    assert before["segment"] == "ML_ENGINEER"
    assert before["rule_version"] == 1

    page.click("#dashboard-link a")
    page.wait_for_selector('#dashboard[data-state="ready"]')
    for canvas in ("chart-segments", "chart-hourly", "chart-top-events", "chart-conversion"):
        assert page.evaluate(f"document.getElementById('{canvas}').toDataURL().length") > 1000
        assert _painted_pixels(page, canvas) > 200, canvas
    assert page.evaluate("typeof window.Chart") == "function"
    assert "llm-router" in page.inner_text("#top-projects")
    assert "PyTorch" in page.inner_text("#top-skills")
    assert page.inner_text("#cache-rate").endswith("%")  # the personalization read above
    _screenshot(page)

    rule = _db(
        lambda: PersonalizationRule.objects.get(segment__code="ML_ENGINEER", status="active")
    )
    page.goto(f"{site}/admin/personalization/personalizationrule/{rule.pk}/change/")
    page.fill("#id_featured_projects", '["recsys-lab", "llm-router"]')
    page.fill("#id_reasoning", "Edited in the browser")
    page.click("input[name=_save]")
    page.wait_for_selector(".messagelist .success")

    after = _served(page, site, data["ml"])
    assert after["rule_version"] == 2
    assert after["featured_projects"] == ["recsys-lab", "llm-router"]
    assert after["reasoning"] == "Edited in the browser"
    change = _db(lambda: RuleChange.objects.get(rule_ref=rule.pk, action="updated"))
    assert change.actor == "owner"
