"""Erasure: `manage.py erase_visitor`, the ledger, and restores that must not bring an erased
visitor back."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from analytics.models import EventSource, Visitor
from analytics.services import events_store
from ops.backups import backup_create, backup_restore
from ops.erasure import ledger_hashes, ledger_path, visitor_hash
from ops.tests.test_backup import pg_tools  # noqa: F401 - fixture
from personalization.models import VisitorProfile
from personalization.services import visitor_resegment
from personalization.tests.test_personalization_api import URL, ml_events, personalized_id


def seed(uid: str) -> None:
    events_store(events=ml_events(uid), source=EventSource.API)
    visitor_resegment(user_pseudo_id=uid)


@pytest.mark.django_db
def test_erase_visitor_command_removes_everything_and_records_only_a_hash(
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
    assert not Visitor.objects.filter(user_pseudo_id=uid).exists()
    assert not VisitorProfile.objects.filter(user_pseudo_id=uid).exists()
    assert client.get(URL, {"user_id": uid}).json()["segment"] == "CASUAL"  # cache gone too
    assert VisitorProfile.objects.filter(user_pseudo_id=other).exists()
    text = ledger_path().read_text()
    assert uid not in text  # a keyed hash, never the id
    assert json.loads(text.splitlines()[-1])["visitor"] == visitor_hash(uid)
    assert visitor_hash(uid) in ledger_hashes()


@pytest.mark.django_db
@pytest.mark.parametrize("argv", [[], ["bad id!"], ["x" * 201]])
def test_erase_visitor_command_refuses_what_is_not_a_visitor_id(argv):
    with pytest.raises(CommandError):
        call_command("erase_visitor", *argv)


def test_visitor_hash_is_keyed(settings):
    settings.ERASURE_LEDGER_KEY = "one"
    first = visitor_hash("abc.123")
    settings.ERASURE_LEDGER_KEY = "two"
    assert visitor_hash("abc.123") != first
    assert len(first) == 64


@pytest.mark.django_db(transaction=True)
def test_restoring_an_older_backup_does_not_bring_an_erased_visitor_back(pg_tools, tmp_path):  # noqa: F811
    from personalization.services import catalog_load_demo, visitor_erase

    catalog_load_demo()
    seed("erased.one")
    seed("kept.one")
    archive = backup_create(directory=tmp_path).path  # made before the erasure

    visitor_erase(user_pseudo_id="erased.one")
    backup_restore(path=archive)

    assert not Visitor.objects.filter(user_pseudo_id="erased.one").exists()
    assert not VisitorProfile.objects.filter(user_pseudo_id="erased.one").exists()
    assert Visitor.objects.filter(user_pseudo_id="kept.one").exists()
    assert VisitorProfile.objects.filter(user_pseudo_id="kept.one").exists()
