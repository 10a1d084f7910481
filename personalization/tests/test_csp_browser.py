"""The Content-Security-Policy in a real browser (Debian's Chromium via Playwright): admin, the
dashboard, an insight page, Swagger UI and the demo all work under it, and the browser reports
no violation. Skips without playwright or /usr/bin/chromium (fails under REQUIRE_SERVICES=1).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from analytics.services import EventIn, events_store
from personalization.models import InsightStatus, LLMInsight
from personalization.services import catalog_load_demo
from personalization.tests.test_browser import ARGS, chromium  # noqa: F401 (fixture)

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.django_db(transaction=True)
PASSWORD = "csp-browser-admin-pw-1234"

# Recorded before any page script runs (init scripts are not subject to the page's CSP).
LISTEN = """
window.__cspViolations = [];
document.addEventListener('securitypolicyviolation', (e) => {
  window.__cspViolations.push(e.violatedDirective + ' ' + (e.blockedURI || 'inline'));
});
"""


@pytest.fixture
def site(chromium: str, live_server: Any, settings: Any) -> str:  # noqa: F811
    settings.PERSONALIZATION_HOLDOUT_PERCENT = 0
    catalog_load_demo()
    User.objects.create_superuser("owner", "owner@example.com", PASSWORD)
    now = timezone.now()
    events_store(
        events=[
            EventIn("project_click", "csp.visitor", now - timedelta(hours=i), {"project_id": p})
            for i, p in enumerate(["llm-router", "sentiment-pipeline", "llm-router"])
        ]
    )
    LLMInsight.objects.create(
        period_start=now - timedelta(days=7),
        period_end=now,
        provider="offline",
        status=InsightStatus.FAILED,
        summary="Line one.\nLine two.",
        verification={"numbers": [{"text": "42", "where": "summary", "outcome": "mismatch"}]},
    )
    return str(live_server.url)


@pytest.fixture
def page(site: str, chromium: str) -> Iterator[tuple[Page, list[str]]]:  # noqa: F811
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, headless=True, args=ARGS)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            context.add_init_script(LISTEN)
            page = context.new_page()
            problems: list[str] = []
            page.on("pageerror", lambda error: problems.append(f"error: {error}"))
            page.on(
                "console",
                lambda m: problems.append(m.text) if "Content Security Policy" in m.text else None,
            )
            yield page, problems
        finally:
            browser.close()


def _wait_until(page: Page, expression: str, timeout: float = 20.0) -> None:
    """Poll with evaluate(): Playwright's wait_for_function evals in the page, which this very
    policy refuses (no 'unsafe-eval')."""
    deadline = time.monotonic() + timeout
    while not page.evaluate(expression):
        assert time.monotonic() < deadline, f"timed out waiting for {expression}"
        time.sleep(0.1)


def _no_violations(page: Page, problems: list[str]) -> None:
    assert page.evaluate("window.__cspViolations") == [], page.url
    assert problems == [], page.url


def test_csp__admin_dashboard_insights_docs_demo__work_without_violations(
    site: str, page: tuple[Page, list[str]]
):
    browser_page, problems = page

    browser_page.goto(f"{site}/admin/login/?next=/admin/")
    browser_page.fill("#id_username", "owner")
    browser_page.fill("#id_password", PASSWORD)
    browser_page.click("input[type=submit]")
    browser_page.wait_for_selector("#dashboard-link")
    _no_violations(browser_page, problems)

    browser_page.goto(f"{site}/admin/dashboard/")
    browser_page.wait_for_selector('#dashboard[data-state="ready"]')
    assert browser_page.evaluate("typeof window.Chart") == "function"
    _no_violations(browser_page, problems)

    browser_page.goto(f"{site}/admin/personalization/llminsight/")
    colour = browser_page.eval_on_selector(".insight-status", "el => getComputedStyle(el).color")
    assert colour == "rgb(198, 40, 40)"  # from insights.css, not a style attribute
    browser_page.click("#result_list tbody tr th a")
    browser_page.wait_for_selector(".insight-summary")
    assert (
        browser_page.eval_on_selector(".insight-summary", "el => getComputedStyle(el).whiteSpace")
        == "pre-wrap"
    )
    _no_violations(browser_page, problems)

    # The admin's own scripts: a change form with its JavaScript widgets.
    browser_page.goto(f"{site}/admin/auth/user/add/")
    browser_page.wait_for_selector("#id_username")
    _no_violations(browser_page, problems)

    browser_page.goto(f"{site}/api/docs/")
    browser_page.wait_for_selector(".opblock-summary-path", timeout=20_000)
    assert browser_page.locator(".opblock").count() > 10
    _no_violations(browser_page, problems)

    # Consent denied: both scripts run (the panel reports it) but nothing is sent, so no
    # request reaches the live server after this test has ended.
    browser_page.goto(f"{site}/demo/?consent=denied")
    _wait_until(browser_page, "window.personalize !== undefined")
    _wait_until(
        browser_page,
        "document.getElementById('p13n-status').textContent.startsWith('Consent is denied')",
    )
    assert browser_page.eval_on_selector("#p13n-panel", "el => getComputedStyle(el).borderStyle")
    _no_violations(browser_page, problems)
