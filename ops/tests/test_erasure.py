"""Erasure: `manage.py erase_visitor`, the ledger, and restores that must not bring an erased
visitor back."""

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test import override_settings

from analytics.models import Event, EventSource, Visitor
from analytics.services import events_store
from conftest import ADMIN_API_PASSWORD
from ops.backups import backup_create, backup_restore
from ops.erasure import ledger_file_read, ledger_path, ledger_sidecar, visitor_hash
from ops.tests.test_backup import pg_tools  # noqa: F401 - fixture
from personalization.models import VisitorProfile
from personalization.services import visitor_resegment
from personalization.tests.test_personalization_api import URL, ml_events, personalized_id

# Where web's BACKUP_DIR points in these tests: not there, and not creatable even by root (web
# runs with a read-only root file system and no backups volume in compose.yaml and k8s).
UNWRITABLE = "/proc/portfolio-no-backups"


def seed(uid: str) -> None:
    events_store(events=ml_events(uid), source=EventSource.API)
    visitor_resegment(user_pseudo_id=uid)


def stored(uid: str) -> tuple[int, int, int]:
    return (
        Event.objects.filter(user_pseudo_id=uid).count(),
        Visitor.objects.filter(user_pseudo_id=uid).count(),
        VisitorProfile.objects.filter(user_pseudo_id=uid).count(),
    )


def ledger_table() -> set[str]:
    from ops.models import ErasureLedgerEntry

    return set(ErasureLedgerEntry.objects.values_list("visitor_hash", flat=True))


@pytest.mark.django_db
def test_erase_visitor_command__removes_everything__records_only_a_hash(
    client, django_capture_on_commit_callbacks
):
    from personalization.services import catalog_load_demo

    catalog_load_demo()
    uid, other = personalized_id("erase"), personalized_id("keep")
    seed(uid)
    seed(other)
    assert client.get(URL, {"user_id": uid}).json()["segment"] == "ML_ENGINEER"  # cached

    out = StringIO()
    with django_capture_on_commit_callbacks(execute=True):
        call_command("erase_visitor", uid, stdout=out)

    assert f"{uid}: 6 events, 1 profile" in out.getvalue()
    assert stored(uid) == (0, 0, 0)
    assert client.get(URL, {"user_id": uid}).json()["segment"] == "CASUAL"  # cache gone too
    assert VisitorProfile.objects.filter(user_pseudo_id=other).exists()
    assert ledger_table() == {visitor_hash(uid)}
    from ops.models import ErasureLedgerEntry

    assert not ErasureLedgerEntry.objects.filter(visitor_hash__contains=uid).exists()


@pytest.mark.django_db
@pytest.mark.parametrize("argv", [[], ["bad id!"], ["x" * 201]])
def test_erase_visitor_command__not_a_visitor_id__refused(argv):
    with pytest.raises(CommandError):
        call_command("erase_visitor", *argv)


def test_visitor_hash__another_key__another_hash(settings):
    settings.ERASURE_LEDGER_KEY = "one"
    first = visitor_hash("abc.123")
    settings.ERASURE_LEDGER_KEY = "two"
    assert visitor_hash("abc.123") != first
    assert len(first) == 64


@pytest.mark.django_db
def test_admin_api_erase__no_writable_backup_dir__204_and_recorded_in_the_database(
    admin_client, settings, django_capture_on_commit_callbacks
):
    settings.BACKUP_DIR = UNWRITABLE
    seed("web.erased")

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = admin_client.delete("/api/admin/visitors/web.erased")

    assert response.status_code == 204
    assert stored("web.erased") == (0, 0, 0)
    assert ledger_table() == {visitor_hash("web.erased")}
    # After commit: the cache entries go, and the ledger file is refreshed on a worker (queued,
    # not written here: the web process has no BACKUP_DIR). Running them must not raise.
    for callback in callbacks:
        callback()


@pytest.mark.django_db
def test_erasure__rolled_back__no_ledger_entry():
    from django.db import transaction

    from analytics.services import visitor_erase

    seed("rolled.back")

    def erase_then_fail() -> None:
        with transaction.atomic():
            visitor_erase(user_pseudo_id="rolled.back")
            raise RuntimeError("the caller's transaction fails")

    with pytest.raises(RuntimeError):
        erase_then_fail()

    assert stored("rolled.back") == (6, 1, 1)
    assert ledger_table() == set()


@pytest.mark.django_db
def test_ledger_export__table_and_file__union_written_atomically_without_ids(settings, tmp_path):
    from analytics.services import visitor_erase
    from ops.tasks import erasure_ledger_export

    settings.BACKUP_DIR = tmp_path
    lost = "0" * 64  # an erasure from a database since lost: only the file has it
    ledger_path().write_text(
        json.dumps({"visitor": lost, "erased_at": "2026-01-01T00:00:00+00:00"})
    )
    visitor_erase(user_pseudo_id="exported.one")

    assert erasure_ledger_export.apply().get() == 2

    text = ledger_path().read_text()
    assert "exported.one" not in text
    assert set(ledger_file_read(ledger_path())) == {lost, visitor_hash("exported.one")}
    assert ledger_path().stat().st_mode & 0o777 == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["erasures.jsonl"]  # no temporary left


@pytest.mark.django_db
def test_erase_visitor_reapply_ledger__visitor_back_in_the_database__erased_again(
    settings, tmp_path
):
    from analytics.services import visitor_erase

    settings.BACKUP_DIR = tmp_path
    seed("comes.back")
    visitor_erase(user_pseudo_id="comes.back")
    seed("comes.back")  # as a restore made by hand with pg_restore would
    seed("stays")

    out = StringIO()
    call_command("erase_visitor", "--reapply-ledger", stdout=out)

    assert "1 visitors erased again" in out.getvalue()
    assert stored("comes.back") == (0, 0, 0)
    assert stored("stays") == (6, 1, 1)


@pytest.mark.django_db
def test_erasures_jsonl_import__migration_helper__entries_in_the_table(settings, tmp_path):
    from importlib import import_module

    from django.apps import apps

    settings.BACKUP_DIR = tmp_path
    ledger_path().write_text(
        json.dumps({"visitor": "a" * 64, "erased_at": "2026-01-01T00:00:00+00:00"})
        + "\nnot json\n"
        + json.dumps({"visitor": "b" * 64, "erased_at": "2026-02-01T00:00:00+00:00"})
        + "\n"
    )
    migration = import_module("ops.migrations.0003_import_erasures_jsonl")

    migration.import_erasures_jsonl(apps, None)
    migration.import_erasures_jsonl(apps, None)  # again: nothing doubled

    assert ledger_table() == {"a" * 64, "b" * 64}


# --- restores, on PostgreSQL, with web as compose and k8s run it --------------------------------


def _admin_token() -> str:
    from django.contrib.auth.models import Permission, User
    from rest_framework_simplejwt.tokens import AccessToken

    user = User.objects.create_user("erasure-admin", "", ADMIN_API_PASSWORD, is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="use_admin_api"))
    return str(AccessToken.for_user(user))


def _erase_over_http(tmp_path: Path, uid: str) -> None:
    """DELETE /api/admin/visitors/<uid> on a real gunicorn whose BACKUP_DIR cannot be written."""
    import urllib.request

    from ops.tests.test_failure_drills import gunicorn

    token = _admin_token()
    with gunicorn(tmp_path, BACKUP_DIR=UNWRITABLE) as web:
        request = urllib.request.Request(  # noqa: S310 - loopback test server
            f"{web.base}/api/admin/visitors/{uid}",
            method="DELETE",
            headers={"Authorization": f"Bearer {token}"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310  # nosec B310
            assert response.status == 204
    assert "ledger_write_failed" not in (tmp_path / "gunicorn.log").read_text()


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_restore__erased_over_the_admin_api_by_a_read_only_web__stays_erased(
    pg_tools,  # noqa: F811
    tmp_path,
):
    from personalization.services import catalog_load_demo

    catalog_load_demo()
    erased, kept = personalized_id("erased"), personalized_id("kept")
    seed(erased)
    seed(kept)
    backups = tmp_path / "backups"
    with override_settings(BACKUP_DIR=backups):
        backup_create()  # the worker's nightly backup, before the erasure

    _erase_over_http(tmp_path, erased)
    assert stored(erased) == (0, 0, 0)

    out = StringIO()
    with override_settings(BACKUP_DIR=backups):
        call_command("restore", "--latest", "--yes", stdout=out)

    assert stored(erased) == (0, 0, 0)
    assert stored(kept) == (6, 1, 1)
    assert visitor_hash(erased) in ledger_table()  # back in the restored table
    assert "1 restored visitors erased again" in out.getvalue()
    assert "cache: personalization keys invalidated" in out.getvalue()


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_restore__database_lost_after_an_erasure_newer_than_the_backup__still_erased(
    pg_tools,  # noqa: F811
    tmp_path,
):
    from ops.tasks import erasure_ledger_export

    seed("lost.erased")
    seed("lost.kept")
    backups = tmp_path / "backups"
    with override_settings(BACKUP_DIR=backups):
        archive = backup_create().path
        assert ledger_file_read(ledger_sidecar(archive)) == {}  # nothing erased yet

        _erase_over_http(tmp_path, "lost.erased")
        erasure_ledger_export.apply().get()  # the worker runs the task the erasure queued

        # The whole database is lost: an empty one, not even the ledger table.
        with connection.cursor() as cursor:
            cursor.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
        backup_restore(path=archive)

    assert stored("lost.erased") == (0, 0, 0)
    assert stored("lost.kept") == (6, 1, 1)
    assert ledger_table() == {visitor_hash("lost.erased")}


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_backup__after_an_erasure__ledger_copy_beside_the_archive_rotated_with_it(
    pg_tools,  # noqa: F811
    tmp_path,
):
    from datetime import UTC, datetime, timedelta

    from analytics.services import visitor_erase

    seed("copied")
    visitor_erase(user_pseudo_id="copied")
    t0 = datetime(2026, 11, 29, 2, 15, tzinfo=UTC)
    with override_settings(BACKUP_DIR=tmp_path):
        first = backup_create(keep=1, now=t0).path
        assert set(ledger_file_read(ledger_sidecar(first))) == {visitor_hash("copied")}
        assert set(ledger_file_read(ledger_path())) == {visitor_hash("copied")}
        second = backup_create(keep=1, now=t0 + timedelta(days=1)).path

    assert not first.exists()
    assert not ledger_sidecar(first).exists()
    assert ledger_sidecar(second).exists()


@pytest.mark.parametrize(
    "module", ["ops/erasure.py", "ops/backups.py", "ops/signals.py", "ops/tasks.py"]
)
def test_ops_erasure_and_restore__imports__no_domain_app(module):
    """Erasure and its re-application belong to the apps that own the data: ops only keeps the
    ledger and announces restores (analytics.signals.visitor_erased, ops.signals)."""
    import ast

    from conftest import ROOT

    tree = ast.parse((ROOT / module).read_text())
    imported = {
        name
        for node in ast.walk(tree)
        for name in (
            [node.module or ""]
            if isinstance(node, ast.ImportFrom)
            else [alias.name for alias in node.names]
            if isinstance(node, ast.Import)
            else []
        )
    }
    assert not {n for n in imported if n.split(".")[0] in ("analytics", "personalization")}
