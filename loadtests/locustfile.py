"""The seed's traffic mix against a running stack: `make loadtest` (local, production settings)
or the nightly workflow (compose). Headless:

    locust -f loadtests/locustfile.py --headless --host http://127.0.0.1:8000 \
        --users 1000 --spawn-rate 100 --run-time 2m

Each simulated visitor logs in on start (the admin API token the mix's admin search needs),
then: personalization 3, one event 1, admin event search 1, waiting 1-3 s between requests.
Visitor ids spread over LOADTEST_IDS (1,000) ids named LOADTEST_PREFIX.N, which `make loadtest`
seeds and segments beforehand. Credentials: LOADTEST_ADMIN_USERNAME / LOADTEST_ADMIN_PASSWORD.

One login per locust process, shared by its users: every user's login on start would make the
run a benchmark of Argon2 (about 0.1 s of CPU a login, by design), which no real traffic is.
The login itself is still a measured request.
"""

from __future__ import annotations

import os
import random
import time
from typing import Any, ClassVar

from gevent.lock import Semaphore
from locust import between, events, task
from locust.contrib.fasthttp import FastHttpUser

IDS = int(os.environ.get("LOADTEST_IDS", "1000"))
PREFIX = os.environ.get("LOADTEST_PREFIX", "lt")
USERNAME = os.environ.get("LOADTEST_ADMIN_USERNAME", "admin")
PASSWORD = os.environ.get("LOADTEST_ADMIN_PASSWORD", "")
EVENT_NAMES = ("page_view", "section_view", "project_click", "skill_hover", "deep_read")
PROJECTS = ("llm-router", "shop-platform", "toy-compiler", "vision-lab", "portfolio-site")


class PortfolioVisitor(FastHttpUser):
    wait_time = between(1, 3)
    _token: ClassVar[str | None] = None
    _login_lock: ClassVar[Semaphore] = Semaphore()

    def on_start(self) -> None:
        self.user_id = f"{PREFIX}.{random.randint(1, IDS)}"  # noqa: S311 - load, not secrets
        with PortfolioVisitor._login_lock:
            if PortfolioVisitor._token is None:
                PortfolioVisitor._token = self._login()
        self.auth = {"Authorization": f"Bearer {PortfolioVisitor._token}"}

    def _login(self) -> str:
        with self.client.post(
            "/api/admin/login",
            json={"username": USERNAME, "password": PASSWORD},
            name="/api/admin/login",
            catch_response=True,
        ) as response:
            if response.status_code != 200:
                response.failure(f"login {response.status_code}: {response.text[:200]}")
                raise RuntimeError("admin login failed: set LOADTEST_ADMIN_USERNAME/PASSWORD")
            return str(response.json()["access_token"])

    @task(3)
    def personalization(self) -> None:
        self.client.get(f"/api/personalization?user_id={self.user_id}", name="/api/personalization")

    @task(1)
    def event(self) -> None:
        body: dict[str, Any] = {
            "event_name": random.choice(EVENT_NAMES),  # noqa: S311
            "user_pseudo_id": self.user_id,
            "event_params": {"project_id": random.choice(PROJECTS)},  # noqa: S311
            "event_timestamp": int(time.time() * 1000),
        }
        self.client.post("/api/events", json=body, name="/api/events")

    @task(1)
    def admin_event_search(self) -> None:
        self.client.get(
            "/api/admin/events/search?hours=24&limit=50",
            headers=self.auth,
            name="/api/admin/events/search",
        )


@events.quitting.add_listener
def _fail_on_errors(environment: Any, **_: Any) -> None:
    # A non-zero exit when anything failed, so CI and `make loadtest` notice.
    if environment.stats.total.fail_ratio > 0:
        environment.process_exit_code = 1
