"""Fixtures shared by every app's tests.

The suite runs on whatever DATABASE_URL / REDIS_URL name (PostgreSQL and Redis in CI) and on
the embedded defaults when they are unset. Tests that need a real service skip without it,
except under REQUIRE_SERVICES=1 (set by .ci/run), where a missing service fails the run.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

# Keep test keys apart from a developer's own data in the same Redis database. pytest-django
# has read the settings by now, so the prefix goes into them too (before any cache is opened);
# the environment carries it to the workers and servers the tests start.
os.environ.setdefault("CACHE_KEY_PREFIX", f"test-{os.getpid()}")


def _cache_prefix_for_tests() -> None:
    from django.conf import settings

    for cache in settings.CACHES.values():
        cache["KEY_PREFIX"] = os.environ["CACHE_KEY_PREFIX"]


_cache_prefix_for_tests()

ROOT = Path(__file__).resolve().parent


def require_service(name: str, available: bool) -> None:
    if available:
        return
    message = f"needs {name}: set its URL in the environment (see .env.example)"
    if os.environ.get("REQUIRE_SERVICES") == "1":
        pytest.fail(f"REQUIRE_SERVICES=1 but the test {message}")
    pytest.skip(message)


@pytest.fixture(autouse=True)
def _clean_cache() -> Iterator[None]:
    from django.core.cache import cache

    yield
    if hasattr(cache, "delete_pattern"):
        cache.delete_pattern("*")  # django-redis: only keys under our KEY_PREFIX
    else:
        cache.clear()


@pytest.fixture(autouse=True)
def _backups_outside_the_tree(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Backups and the erasure ledger (written by every visitor erasure) go to a temporary
    directory, never to the checkout's var/backups."""
    from django.test import override_settings

    with override_settings(BACKUP_DIR=tmp_path_factory.getbasetemp() / "backups"):
        yield


@pytest.fixture(autouse=True)
def _keep_migrated_data(django_db_serialized_rollback: None) -> None:
    """Transactional tests flush every table when they end, data migrations' rows included
    (the default segments, signals and rules). Serialized rollback restores them for the next
    test. It must hold for all transactional tests or none: a flush without it re-creates
    content types that the next restore would then collide with."""


@pytest.fixture(autouse=True)
def _fresh_process_caches() -> Iterator[None]:
    from personalization.selectors import process_caches_clear

    process_caches_clear()
    yield
    process_caches_clear()


@pytest.fixture(autouse=True)
def _celery_join_allowed() -> Iterator[None]:
    """An eager task run from a thread leaves Celery's process-wide "inside a task" flag set
    (it is not thread-safe), and every later result.get() would refuse to block."""
    from celery import _state

    yield
    _state._set_task_join_will_block(False)


@pytest.fixture(autouse=True)
def _celery_in_process(request: pytest.FixtureRequest) -> Iterator[None]:
    """Tasks queued by the code under test run in-process, so no test leaves messages on a
    shared broker; tests that take `celery_worker` (or are marked `real_worker` and start their
    own with `run_celery_worker`) send theirs to a real worker instead."""
    from celery._state import _set_task_join_will_block

    from portfolio.celery import app

    # Eager tasks raise a process-wide "never .get() inside a task" flag and restore the value
    # they saw; two at once in the live server's threads (which outlive a test) can leave it
    # raised for good. No test runs inside a task: start each with it down.
    _set_task_join_will_block(False)
    if request.node.get_closest_marker("real_worker") or "celery_worker" in request.fixturenames:
        yield
        return
    previous = app.conf.task_always_eager
    app.conf.task_always_eager = True
    try:
        yield
    finally:
        app.conf.task_always_eager = previous


@pytest.fixture
def redis_url() -> str:
    url = os.environ.get("REDIS_URL", "")
    require_service("Redis (REDIS_URL)", bool(url))
    return url


@pytest.fixture
def postgres() -> None:
    from django.db import connection

    require_service("PostgreSQL (DATABASE_URL)", connection.vendor == "postgresql")


ADMIN_API_PASSWORD = "correct-horse-battery-staple-42"  # noqa: S105 (test fixture)


@pytest.fixture
def admin_api_user(db: None) -> object:
    """A staff user holding ops.use_admin_api (not a superuser: the permission must suffice)."""
    from django.contrib.auth.models import Permission, User

    user = User.objects.create_user(
        "api-admin", "api-admin@example.com", ADMIN_API_PASSWORD, is_staff=True
    )
    user.user_permissions.add(Permission.objects.get(codename="use_admin_api"))
    return user


@pytest.fixture
def admin_token(admin_api_user: Any) -> str:
    from rest_framework_simplejwt.tokens import AccessToken

    return str(AccessToken.for_user(admin_api_user))


@pytest.fixture
def admin_client(admin_token: str) -> object:
    """An API client sending the admin user's Bearer token."""
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {admin_token}")
    return client


@dataclass(frozen=True)
class CeleryWorker:
    queue: str
    hostname: str
    process: subprocess.Popen[bytes]


def _test_database_url() -> str:
    """The URL of the database pytest-django created, for processes we start ourselves."""
    from django.db import connection

    cfg = connection.settings_dict
    if connection.vendor != "postgresql":
        return os.environ.get("DATABASE_URL", "")
    auth = cfg["USER"] + (f":{cfg['PASSWORD']}" if cfg.get("PASSWORD") else "")
    return f"postgres://{auth}@{cfg['HOST'] or '127.0.0.1'}:{cfg['PORT'] or 5432}/{cfg['NAME']}"


@contextlib.contextmanager
def run_celery_worker(*worker_args: str, **extra_env: str) -> Iterator[CeleryWorker]:
    """Start a real `celery worker` process on the environment's broker and the test database,
    on a queue of its own so no other worker on the same broker takes our tasks. `worker_args`
    go last on its command line (e.g. "--pool=prefork" overrides the solo pool)."""
    from django.conf import settings

    from portfolio.celery import app

    require_service("a Celery broker (REDIS_URL)", not settings.CELERY_TASK_ALWAYS_EAGER)
    queue = f"test-{uuid.uuid4().hex[:8]}"
    hostname = f"{queue}@localhost"
    env = {
        **os.environ,
        "DATABASE_URL": _test_database_url(),
        "PYTHONUNBUFFERED": "1",
        **extra_env,
    }
    log_path = ROOT / "var" / f"{queue}.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "portfolio",
                "worker",
                "--pool=solo",
                "-Q",
                queue,
                "-n",
                hostname,
                "--loglevel=INFO",
                "--without-gossip",
                "--without-mingle",
                *worker_args,
            ],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 60
            while not app.control.ping(destination=[hostname], timeout=0.5):
                if process.poll() is not None or time.monotonic() > deadline:
                    log.flush()
                    raise RuntimeError(f"celery worker did not start:\n{log_path.read_text()}")
            yield CeleryWorker(queue=queue, hostname=hostname, process=process)
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
    log_path.unlink(missing_ok=True)


@pytest.fixture(scope="session")
def celery_worker(django_db_setup: None, django_db_blocker: object) -> Iterator[CeleryWorker]:
    """One worker for the session, with the environment's settings."""
    with run_celery_worker() as worker:
        yield worker
