"""migrate_locked: replicas take turns on a PostgreSQL advisory lock; wait_for_db is bounded."""

from __future__ import annotations

from collections.abc import Iterator
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import OperationalError, connection, connections

from ops.locks import LockNotAcquired, advisory_lock, lock_key
from ops.management.commands import wait_for_db
from ops.management.commands.migrate_locked import MIGRATE_LOCK

pytestmark = pytest.mark.django_db


@pytest.fixture
def other_session(postgres: None) -> Iterator[Any]:
    """A second PostgreSQL session, as another replica would have."""
    primary = connections["default"]
    session = type(primary)(dict(primary.settings_dict), alias="default")
    yield session
    session.close()


def _try_lock(session: Any, name: str) -> bool:
    with session.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [lock_key(name)])
        acquired = bool(cursor.fetchone()[0])
        if acquired:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [lock_key(name)])
    return acquired


def test_migrate_locked__another_replica_holds_lock__waits_then_fails(other_session):
    with other_session.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_lock(%s)", [lock_key(MIGRATE_LOCK)])
    out = StringIO()

    with pytest.raises(CommandError, match=r"still held by another session after 0\.5 s"):
        call_command("migrate_locked", "--noinput", "--lock-timeout", "0.5", stdout=out)

    assert "Another replica is migrating; waiting" in out.getvalue()


def test_migrate_locked__lock_free__migrates_and_releases(other_session):
    out = StringIO()

    call_command("migrate_locked", "--noinput", stdout=out)

    assert f"Holding the migration lock '{MIGRATE_LOCK}'" in out.getvalue()
    assert "Migrations applied; lock released." in out.getvalue()
    assert _try_lock(other_session, MIGRATE_LOCK)


def test_migrate_locked__not_postgresql__plain_migrate(monkeypatch):
    monkeypatch.setattr(connection, "vendor", "sqlite")
    out = StringIO()

    call_command("migrate_locked", "--noinput", stdout=out)

    assert "Not PostgreSQL: running a plain migrate" in out.getvalue()
    assert "Holding" not in out.getvalue()


def test_advisory_lock__held__other_session_excluded_until_released(other_session):
    with advisory_lock("test:exclusive", timeout=0):
        assert not _try_lock(other_session, "test:exclusive")
        with pytest.raises(LockNotAcquired), advisory_lock("test:exclusive", timeout=0):
            pass

    assert _try_lock(other_session, "test:exclusive")


def test_lock_key__name__stable_signed_bigint():
    assert lock_key(MIGRATE_LOCK) == lock_key("portfolio:migrate")
    assert -(2**63) <= lock_key(MIGRATE_LOCK) < 2**63


def test_wait_for_db__database_up__ready_at_first_attempt():
    out = StringIO()

    call_command("wait_for_db", "--timeout", "5", stdout=out)

    assert "Database ready (attempt 1)." in out.getvalue()


def test_wait_for_db__database_down__bounded_failure_without_url(monkeypatch):
    def unreachable() -> None:
        raise OperationalError("could not connect to postgres://user:s3cret@db/portfolio")

    monkeypatch.setattr(wait_for_db, "check_database", unreachable)
    err = StringIO()

    with pytest.raises(CommandError, match="OperationalError") as excinfo:
        call_command("wait_for_db", "--timeout", "0.3", "--interval", "0.1", stderr=err)

    assert "s3cret" not in str(excinfo.value) + err.getvalue()
    assert "retrying" in err.getvalue()
