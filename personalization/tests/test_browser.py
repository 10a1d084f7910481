"""personalize.js in a real browser: Debian's Chromium driven by Playwright against the live
server, on /demo/. Collection, delivery, personalization, failure and privacy.

Needs the `playwright` package and /usr/bin/chromium (never `playwright install`); without them
these tests skip, or fail under REQUIRE_SERVICES=1.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import pytest
from django.db import OperationalError, connections

from analytics.models import Event, EventSource
from personalization import demo_catalog
from personalization.models import VisitorProfile
from personalization.services import catalog_load_demo

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page, Request, Route, ViewportSize

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
DOCS = Path(__file__).resolve().parents[2] / "docs"
VIEWPORT: ViewportSize = {"width": 1100, "height": 800}

GA_COOKIE = "GA1.1.1234567890.1764400000"
GA_CLIENT_ID = "1234567890.1764400000"
ML_PROJECTS = ["llm-router", "vision-defect-detector", "sentiment-pipeline"]
ML_SKILLS = ["PyTorch", "TensorFlow"]
CATEGORY = {project["slug"]: project["category"] for project in demo_catalog.PROJECTS}
DEFAULT_ORDER = [section["slug"] for section in demo_catalog.SECTIONS]
LOCAL_ID = re.compile(r"\d+\.\d+")
T = TypeVar("T")

pytestmark = pytest.mark.django_db(transaction=True)


def _require(what: str, available: bool) -> None:
    """conftest.require_service's rule, with a message about installing rather than a URL."""
    if available:
        return
    message = f"needs {what}"
    if os.environ.get("REQUIRE_SERVICES") == "1":
        pytest.fail(f"REQUIRE_SERVICES=1 but the test {message}")
    pytest.skip(message)


@pytest.fixture(scope="module")
def chromium() -> str:
    _require(
        "the playwright package (pip install -r requirements/dev.txt)",
        importlib.util.find_spec("playwright") is not None,
    )
    _require(f"Chromium at {CHROMIUM} (apt-get install chromium)", os.access(CHROMIUM, os.X_OK))
    return CHROMIUM


@pytest.fixture
def site(chromium: str, live_server: Any, settings: Any) -> str:
    # A random visitor id must not land in the holdout arm (default content on purpose).
    settings.PERSONALIZATION_HOLDOUT_PERCENT = 0
    catalog_load_demo()
    return str(live_server.url)


@pytest.fixture
def browser(chromium: str, site: str) -> Iterator[Browser]:
    """Per test, started after the database fixtures and stopped before their teardown: while
    Playwright's sync API is up, an asyncio loop runs in this thread, and Django then hands the
    thread another connection (so serialized rollback would restore and flush the wrong one).
    The tests read the database through `_db`, in another thread."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, headless=True, args=ARGS)
        try:
            yield browser
        finally:
            browser.close()


def _db(query: Callable[[], T]) -> T:
    """Run ORM code in a short-lived thread of its own (see `browser`), retrying while the live
    server holds SQLite's shared in-memory database locked."""

    def run() -> T:
        try:
            for _ in range(50):
                try:
                    return query()
                except OperationalError as exc:
                    if "locked" not in str(exc):
                        raise
                    time.sleep(0.1)
            return query()
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(run).result()


class Visit:
    """One page in its own browser context, with every request it made to /api/ and its
    JavaScript errors."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.api: list[Request] = []
        self.errors: list[str] = []
        page.on("request", lambda r: self.api.append(r) if "/api/" in r.url else None)
        page.on("pageerror", lambda error: self.errors.append(str(error)))

    def sent_events(self) -> list[dict[str, Any]]:
        return [
            event
            for request in self.api
            if request.method == "POST" and request.url.endswith("/api/events")
            for event in json.loads(request.post_data or "{}")["events"]
        ]

    def call(self, expression: str) -> Any:
        return self.page.evaluate(expression)

    def settle(self) -> None:
        """Flush, then wait for every events request so far (timer sends and beacons too)."""
        self.call("window.personalize.flush()")
        for request in list(self.api):
            if _is_events_post(request):
                request.response()


OpenVisit = Callable[..., Visit]


@pytest.fixture
def open_visit(browser: Browser, site: str) -> Iterator[OpenVisit]:
    contexts = []

    def open_(
        path: str = "/demo/",
        *,
        cookies: dict[str, str] | None = None,
        init_script: str | None = None,
        head_script: str | None = None,
        route_api: Callable[[Route], None] | None = None,
    ) -> Visit:
        # /demo/ stands for the portfolio site, whose own inline snippets (head_script) and
        # Playwright's wait_for_function (eval) our strict CSP would refuse; the policy itself
        # is tested in personalization/tests/test_csp_browser.py.
        context = browser.new_context(viewport=VIEWPORT, bypass_csp=True)
        contexts.append(context)
        if cookies:
            context.add_cookies([{"name": k, "value": v, "url": site} for k, v in cookies.items()])
        if init_script:
            context.add_init_script(init_script)
        page = context.new_page()
        visit = Visit(page)
        if route_api:
            page.route("**/api/**", route_api)
        if head_script:  # an inline <script> first in <head>, as a site's own snippet would be
            page.route(site + path, lambda route: _inject(route, head_script))
        page.goto(site + path)
        page.wait_for_function("window.personalize !== undefined")
        return visit

    yield open_
    for context in contexts:
        context.close()


def _inject(route: Route, script: str) -> None:
    response = route.fetch()
    html = response.text().replace("<head>", f"<head><script>{script}</script>", 1)
    route.fulfill(response=response, body=html)


def _section_order(page: Page) -> list[str]:
    return page.evaluate("Array.from(document.querySelectorAll('section[id]'), s => s.id)")


def _marked(page: Page, css_class: str, attribute: str) -> set[str]:
    return set(
        page.evaluate(
            "([cls, attr]) => Array.from(document.getElementsByClassName(cls),"
            " el => el.getAttribute(attr))",
            [css_class, attribute],
        )
    )


def _hide(page: Page) -> None:
    """What the browser does when the tab goes to the background."""
    page.evaluate(
        "() => { Object.defineProperty(document, 'visibilityState',"
        " {value: 'hidden', configurable: true});"
        " document.dispatchEvent(new Event('visibilitychange')); }"
    )


def _show(page: Page) -> None:
    page.evaluate(
        "() => { delete document.visibilityState;"
        " document.dispatchEvent(new Event('visibilitychange')); }"
    )


def _scroll_to(page: Page, selector: str) -> None:
    page.eval_on_selector(selector, "el => el.scrollIntoView({block: 'center'})")


def _is_events_post(request: Request) -> bool:
    return request.method == "POST" and request.url.endswith("/api/events")


def _wait_for_profile(user_pseudo_id: str, segment: str, timeout: float = 15.0) -> VisitorProfile:
    """Events queue re-segmentation after commit (eager in tests, in the live server's thread);
    wait for its profile rather than assume when that finished."""
    deadline = time.monotonic() + timeout
    while True:
        profile = _db(VisitorProfile.objects.filter(user_pseudo_id=user_pseudo_id).first)
        if profile and profile.segment == segment:
            return profile
        if time.monotonic() > deadline:
            pytest.fail(f"no {segment} profile for {user_pseudo_id} after {timeout}s: {profile}")
        time.sleep(0.2)


def _screenshot(page: Page, name: str) -> None:
    """Screenshots land in docs/ only with SAVE_SCREENSHOTS=1, so a test run does not rewrite
    tracked files; otherwise they still render (a broken page fails here too) into var/."""
    target = DOCS if os.environ.get("SAVE_SCREENSHOTS") == "1" else DOCS.parent / "var"
    target.mkdir(exist_ok=True)
    page.screenshot(path=str(target / name), full_page=True)


def test_browser__ml_engineer_visit__next_page_view_features_ml(open_visit: OpenVisit, site: str):
    visit = open_visit(cookies={"_ga": GA_COOKIE})
    page = visit.page
    assert visit.call("window.personalize.visitorId") == GA_CLIENT_ID
    page.wait_for_selector('html[data-segment="CASUAL"]')  # unknown so far: the default rule

    for slug in ML_PROJECTS:
        page.click(f'[data-project-id="{slug}"] h3')
    for name in ML_SKILLS:
        page.hover(f'[data-skill-name="{name}"]')
        page.wait_for_timeout(700)
        page.mouse.move(1, 1)
    for slug in ML_PROJECTS:  # each card half-visible for more than 3 s: a deep read
        _scroll_to(page, f'[data-project-id="{slug}"]')
        page.wait_for_timeout(3300)
    # The tab goes to the background: open timers close and the queue leaves as a beacon.
    with page.expect_request(lambda r: _is_events_post(r) and r.resource_type == "ping") as beacon:
        _hide(page)
    assert beacon.value.headers["content-type"].startswith("text/plain")
    _show(page)

    _wait_for_profile(GA_CLIENT_ID, "ML_ENGINEER")
    page.reload()
    page.wait_for_selector('html[data-segment="ML_ENGINEER"]')

    assert _section_order(page)[0] == "projects"
    featured = _marked(page, "personalize-featured", "data-project-id")
    assert set(ML_PROJECTS) <= featured
    assert page.locator("[data-project-id] > .personalize-badge").count() == len(featured)
    assert set(ML_SKILLS) <= _marked(page, "personalize-highlight", "data-skill-name")
    page.wait_for_function("document.getElementById('p13n-segment').textContent === 'ML_ENGINEER'")
    assert page.inner_text("#p13n-why").startswith("Strongest evidence: ")
    _screenshot(page, "demo-personalized.png")

    page.click('[data-project-id="llm-router"] h3')  # back to a project read before
    visit.settle()

    rows = _db(
        lambda: list(
            Event.objects.filter(user_pseudo_id=GA_CLIENT_ID).order_by("occurred_at", "id")
        )
    )
    sent = visit.sent_events()
    assert len({event["event_id"] for event in sent}) == len(sent) == len(rows)
    assert all(event["event_timestamp"] > 10**12 for event in sent)  # milliseconds
    assert {row.source for row in rows} == {EventSource.API}
    params: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        params[row.event_name].append(row.event_params)
    clicks = {(p["project_id"], p["category"]) for p in params["project_click"]}
    assert {(slug, CATEGORY[slug]) for slug in ML_PROJECTS} <= clicks
    hovers = {p["skill_name"]: p["duration"] for p in params["skill_hover"]}
    assert set(ML_SKILLS) <= set(hovers)
    assert all(hovers[name] > 500 for name in ML_SKILLS)
    reads = defaultdict(list)
    for p in params["deep_read"]:
        reads[p["project_id"]].append(p["duration"])
    assert set(ML_PROJECTS) <= set(reads)
    assert all(duration > 3000 for durations in reads.values() for duration in durations)
    assert {"item_id": "llm-router", "view_count": 2} in params["repeat_view"]
    applied = [p["segment"] for p in params["personalization_applied"]]
    assert applied == ["CASUAL", "ML_ENGINEER"]
    assert all(set(p) == {"section_name", "time_spent"} for p in params["section_view"])
    # The first event of each of the two page views says where it happened.
    assert [row.page_location for row in rows].count(f"{site}/demo/") == 2
    assert not visit.errors


def test_browser__api_down__default_content_in_default_order(open_visit: OpenVisit):
    visit = open_visit(route_api=lambda route: route.abort())
    page = visit.page

    page.click('[data-project-id="llm-router"] h3')
    assert visit.call("window.personalize.refresh()") is None
    visit.call("window.personalize.flush()")

    assert visit.api, "the script should have tried the API"
    assert _section_order(page) == DEFAULT_ORDER
    assert (
        page.locator(".personalize-featured, .personalize-badge, .personalize-highlight").count()
        == 0
    )
    assert page.get_attribute("html", "data-segment") is None
    assert page.locator("[data-project-id]").count() == len(demo_catalog.PROJECTS)
    page.wait_for_function("document.getElementById('p13n-status').textContent.includes('default')")
    assert not visit.errors
    _screenshot(page, "demo-default.png")


def test_browser__api_hangs__gives_up_after_the_timeout(open_visit: OpenVisit):
    visit = open_visit(route_api=lambda route: None)  # never answered

    result, elapsed = visit.call(
        "async () => { const start = performance.now();"
        " const r = await window.personalize.refresh(); return [r, performance.now() - start]; }"
    )

    assert result is None
    assert 1000 < elapsed < 3000
    assert _section_order(visit.page) == DEFAULT_ORDER
    assert not visit.errors


def test_browser__server_error__retries_with_the_same_event_ids(open_visit: OpenVisit):
    batches: list[list[dict[str, Any]]] = []

    def lose_first_answer(route: Route) -> None:
        if _is_events_post(route.request):
            batches.append(json.loads(route.request.post_data or "{}")["events"])
            if len(batches) == 1:
                route.fetch()  # the server stores the batch...
                route.abort()  # ...but the browser never hears back, so it sends it again
                return
        route.continue_()

    visit = open_visit(route_api=lose_first_answer)
    visit.page.click('[data-project-id="recsys-lab"] h3')
    visit.call("window.personalize.flush()")
    with visit.page.expect_response(lambda r: _is_events_post(r.request)) as answer:
        visit.call("window.personalize.flush()")

    first_ids = {event["event_id"] for event in batches[0]}
    assert first_ids <= {event["event_id"] for event in batches[1]}
    assert answer.value.json()["duplicates"] == len(first_ids)
    uid = visit.call("window.personalize.visitorId")
    assert _db(Event.objects.filter(user_pseudo_id=uid).count) == len(
        {event["event_id"] for batch in batches for event in batch}
    )


PRIVACY_CASES = {
    "do-not-track": (
        "/demo/",
        "Object.defineProperty(Navigator.prototype, 'doNotTrack', {get: () => '1'})",
    ),
    "global-privacy-control": (
        "/demo/",
        "Object.defineProperty(Navigator.prototype, 'globalPrivacyControl', {get: () => true})",
    ),
    "consent-denied-attribute": ("/demo/?consent=denied", None),
    "consent-denied-config": ("/demo/", "window.PersonalizeConfig = {consent: 'denied'}"),
}


@pytest.mark.parametrize("case", PRIVACY_CASES)
def test_browser__privacy_signal__nothing_sent_or_stored(open_visit: OpenVisit, case: str):
    path, init_script = PRIVACY_CASES[case]
    visit = open_visit(path, init_script=init_script)
    page = visit.page

    page.click('[data-project-id="llm-router"] h3')
    page.hover('[data-skill-name="PyTorch"]')
    page.wait_for_timeout(600)
    page.mouse.move(1, 1)
    assert not visit.call("window.personalize.track('custom_event', {a: 1})")
    visit.call("window.personalize.flush()")
    _hide(page)
    page.reload()
    page.wait_for_function("window.personalize !== undefined")
    page.wait_for_timeout(300)

    assert [request.url for request in visit.api] == []
    assert visit.call("window.personalize.visitorId") is None
    assert visit.call("localStorage.length + sessionStorage.length") == 0
    assert page.get_attribute("html", "data-segment") is None
    assert not _db(Event.objects.exists)
    assert not visit.errors


def test_browser__do_not_track__wins_over_grant_consent(open_visit: OpenVisit):
    visit = open_visit(init_script=PRIVACY_CASES["do-not-track"][1])

    visit.call("window.personalize.grantConsent()")
    visit.call("window.personalize.track('custom_event', {})")
    visit.call("window.personalize.flush()")

    assert visit.call("window.personalize.consent") == "denied"
    assert visit.api == []


def test_browser__consent_pending__queues_until_granted(open_visit: OpenVisit):
    visit = open_visit("/demo/?consent=pending")
    visit.page.click('[data-project-id="recsys-lab"] h3')
    visit.call("window.personalize.flush()")
    visit.page.wait_for_timeout(300)
    assert visit.api == []
    assert visit.call("window.personalize.visitorId") is None
    assert visit.call("localStorage.length") == 0

    with visit.page.expect_response(lambda r: _is_events_post(r.request)):
        visit.call("window.personalize.grantConsent(); window.personalize.flush()")

    uid = visit.call("window.personalize.visitorId")
    assert LOCAL_ID.fullmatch(uid)
    assert visit.call("localStorage.getItem('p13n_vid')") == uid
    click = _db(lambda: Event.objects.get(user_pseudo_id=uid, event_name="project_click"))
    assert click.event_params["project_id"] == "recsys-lab"


GTAG_SNIPPET = (
    "window.dataLayer = window.dataLayer || []; function gtag(){ dataLayer.push(arguments); }"
)


def test_browser__gtag_events__mirrored_and_gtag_still_works(open_visit: OpenVisit):
    at = int(time.time() * 1000) - 60_000
    visit = open_visit(head_script=GTAG_SNIPPET)

    visit.call(
        "gtag('event', 'language_switch', {from_lang: 'en', to_lang: 'fr', "
        f"timestamp: {at}, event_callback: () => {{}}, send_to: 'G-TEST'}})"
    )
    # Collected from the DOM already: mirroring it would count it twice.
    visit.call("gtag('event', 'project_click', {project_id: 'llm-router'})")
    visit.settle()

    layer = visit.call("dataLayer.filter(a => a[0] === 'event').map(a => a[1])")
    assert layer == ["language_switch", "project_click"]
    uid = visit.call("window.personalize.visitorId")
    switch = _db(lambda: Event.objects.get(user_pseudo_id=uid, event_name="language_switch"))
    assert {k: switch.event_params[k] for k in ("from_lang", "to_lang")} == {
        "from_lang": "en",
        "to_lang": "fr",
    }
    assert not {"timestamp", "event_callback", "send_to"} & set(switch.event_params)
    assert abs(switch.occurred_at.timestamp() * 1000 - at) < 1
    assert not _db(Event.objects.filter(user_pseudo_id=uid, event_name="project_click").exists)
    assert not visit.errors
