"""Backups: pg_dump / pg_restore round trip on the test database, rotation, refusals.

The round trip needs PostgreSQL (DATABASE_URL) and the client tools of the server's major
version or newer (pg_dump --version); the rest runs everywhere.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.utils import timezone

from analytics.models import Event
from conftest import require_service
from ops import backups
from ops.backup_tasks import nightly_backup
from ops.backups import (
    BackupError,
    UploadNotAvailable,
    backup_create,
    backup_filename,
    backup_restore,
    backups_list,
    backups_rotate,
    pg_environment,
)
from ops.management.commands import restore as restore_command

T0 = datetime(2026, 11, 29, 2, 15, 0, tzinfo=UTC)


@pytest.fixture
def pg_tools(postgres: None) -> None:
    """PostgreSQL with pg_dump / pg_restore able to dump this server."""
    tools = all(shutil.which(name) for name in ("pg_dump", "pg_restore"))
    require_service("pg_dump and pg_restore (postgresql-client)", tools)
    client, server = backups.client_server_versions(tool=shutil.which("pg_dump") or "pg_dump")
    require_service(
        f"pg_dump >= the server's major version ({client} < {server})", client >= server
    )


def _seed_events(count: int) -> None:
    now = timezone.now()
    Event.objects.bulk_create(
        Event(
            event_name="download_resume" if i % 2 else "project_click",
            user_pseudo_id=f"backup-visitor-{i % 7}",
            event_params={"i": i, "text": "naïve ünïcode ✓"},
            occurred_at=now - timedelta(minutes=i),
            dedupe_key=uuid.UUID(int=i),
        )
        for i in range(count)
    )


def _events_fingerprint() -> tuple[int, str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*), md5(coalesce(string_agg(e::text, '|' ORDER BY e.id), '')) "
            "FROM analytics_event e"
        )
        count, digest = cursor.fetchone()
    return count, digest


# --- round trip on PostgreSQL -------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_backup_restore__events_wiped__restored_identically(pg_tools, tmp_path):
    _seed_events(120)
    before = _events_fingerprint()

    result = backup_create(directory=tmp_path, keep=7, now=T0)
    Event.objects.all().delete()
    assert _events_fingerprint()[0] == 0
    backup_restore(path=result.path)

    assert _events_fingerprint() == before
    assert before[0] == 120
    assert result.path.name == "portfolio-20261129T021500Z.dump"
    assert result.path.read_bytes()[:5] == b"PGDMP"  # pg_dump's custom format
    assert oct(result.path.stat().st_mode & 0o777) == "0o600"
    assert not list(tmp_path.glob("*.partial"))


@pytest.mark.django_db(transaction=True)
def test_restore_command__yes__restores(pg_tools, tmp_path):
    _seed_events(10)
    before = _events_fingerprint()
    result = backup_create(directory=tmp_path, now=T0)
    Event.objects.all().delete()

    call_command("restore", str(result.path), "--yes")

    assert _events_fingerprint() == before


@pytest.mark.django_db(transaction=True)
def test_backup_create__retention_one__keeps_only_newest(pg_tools, tmp_path):
    first = backup_create(directory=tmp_path, keep=1, now=T0)
    second = backup_create(directory=tmp_path, keep=1, now=T0 + timedelta(days=1))

    assert backups_list(directory=tmp_path) == [second.path]
    assert second.removed == (first.path,)


@pytest.mark.django_db(transaction=True)
def test_backup_create__s3_configured__local_backup_written_then_clear_error(
    pg_tools, tmp_path, settings
):
    settings.BACKUP_S3_BUCKET = "portfolio-backups"

    with pytest.raises(UploadNotAvailable, match="left to configuration"):
        backup_create(directory=tmp_path, now=T0)

    assert [p.name for p in backups_list(directory=tmp_path)] == ["portfolio-20261129T021500Z.dump"]


@pytest.mark.django_db(transaction=True)
def test_nightly_backup_task__postgres__archive_in_backup_dir(pg_tools, tmp_path, settings):
    settings.BACKUP_DIR = str(tmp_path)

    result = nightly_backup.apply()  # in this process; .get() refuses if a test ran a worker

    assert result.successful(), result.traceback
    outcome = result.result
    assert Path(outcome["path"]).parent == tmp_path
    assert Path(outcome["path"]).is_file()


# --- everywhere ---------------------------------------------------------------------------------


def test_backups_rotate__twelve_archives__keeps_newest_n_and_foreign_files(tmp_path):
    names = [backup_filename(at=T0 + timedelta(hours=h)) for h in range(12)]
    for name in names:
        (tmp_path / name).write_bytes(b"x")
    foreign = ["notes.txt", "other-20261129T021500Z.dump", names[0] + ".partial"]
    for name in foreign:
        (tmp_path / name).write_bytes(b"x")

    removed = backups_rotate(directory=tmp_path, keep=3)

    kept = sorted(p.name for p in tmp_path.iterdir())
    assert kept == sorted([*names[-3:], *foreign])
    assert sorted(p.name for p in removed) == sorted(names[:-3])


def test_backups_rotate__keep_zero__refused(tmp_path):
    with pytest.raises(BackupError, match="at least 1"):
        backups_rotate(directory=tmp_path, keep=0)


def test_backup_filename__aware_local_time__utc_timestamp():
    local = datetime(2026, 6, 1, 6, 0, 0, tzinfo=timezone.get_fixed_timezone(120))

    assert backup_filename(at=local) == "portfolio-20260601T040000Z.dump"


def test_restore_command__without_yes__refuses_and_runs_nothing(tmp_path, monkeypatch):
    archive = tmp_path / backup_filename(at=T0)
    archive.write_bytes(b"PGDMP")
    monkeypatch.setattr(restore_command, "backup_restore", _must_not_run)

    with pytest.raises(CommandError, match="without --yes"):
        call_command("restore", str(archive))


def test_backup_restore__not_postgresql__refused(tmp_path, monkeypatch):
    archive = tmp_path / backup_filename(at=T0)
    archive.write_bytes(b"PGDMP")
    monkeypatch.setattr(connection, "vendor", "sqlite")

    with pytest.raises(CommandError, match="need PostgreSQL"):
        call_command("restore", str(archive), "--yes")
    with pytest.raises(BackupError, match="need PostgreSQL"):
        backup_create(directory=tmp_path)


def test_nightly_backup_task__not_postgresql__skipped(monkeypatch):
    monkeypatch.setattr(connection, "vendor", "sqlite")

    result = nightly_backup.apply()

    assert result.successful(), result.traceback
    assert result.result == {"skipped": "database is sqlite, not PostgreSQL"}


def test_pg_environment__credentials__in_environment_only(monkeypatch):
    monkeypatch.setenv("PGHOST", "elsewhere.example")
    settings_dict = {
        "NAME": "portfolio",
        "USER": "app",
        "PASSWORD": "s3cret-Pa55",
        "HOST": "db.internal",
        "PORT": 5433,
        "OPTIONS": {"sslmode": "require", "connect_timeout": 5},
    }

    env = pg_environment(settings_dict)

    assert env["PGPASSWORD"] == "s3cret-Pa55"
    assert env["PGHOST"] == "db.internal"  # Django's, not the inherited one
    assert (env["PGUSER"], env["PGDATABASE"], env["PGPORT"]) == ("app", "portfolio", "5433")
    assert (env["PGSSLMODE"], env["PGCONNECT_TIMEOUT"]) == ("require", "5")


def test_backup_create__password__never_on_the_command_line(tmp_path, monkeypatch):
    calls: list[tuple[list[str], dict[str, str]]] = []

    def fake_run(argv: list[str], *, env: dict[str, str], timeout: float, what: str) -> None:
        calls.append((argv, env))
        Path(next(a for a in argv if a.startswith("--file=")).split("=", 1)[1]).write_bytes(b"P")

    monkeypatch.setattr(
        backups, "_postgres_settings", lambda using: {"NAME": "db", "PASSWORD": "s3cret-Pa55"}
    )
    monkeypatch.setattr(backups, "_tool", lambda name: f"/usr/bin/{name}")
    monkeypatch.setattr(backups, "client_server_versions", lambda **kw: (15, 15))
    monkeypatch.setattr(backups, "advisory_lock", lambda *a, **kw: contextlib.nullcontext())
    monkeypatch.setattr(backups, "_run", fake_run)

    backup_create(directory=tmp_path, now=T0)

    argv, env = calls[0]
    assert argv[:2] == ["/usr/bin/pg_dump", "--format=custom"]
    assert not [a for a in argv if "s3cret" in a or a == "db"]
    assert env["PGPASSWORD"] == "s3cret-Pa55"
    assert os.environ.get("PGPASSWORD") != "s3cret-Pa55"


def _must_not_run(**kwargs: object) -> float:
    raise AssertionError("restore ran without --yes")
