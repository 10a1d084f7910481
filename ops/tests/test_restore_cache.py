"""A restore leaves the personalization cache consistent with the restored database: nothing
cached from after the backup is served."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command
from django.test import override_settings

from analytics.models import EventSource
from analytics.services import events_store
from ops.tests.test_backup import pg_tools  # noqa: F401 - fixture
from personalization import cache as p13n_cache
from personalization.models import RuleSetVersion, Segment
from personalization.services import catalog_load_demo, rule_create, visitor_resegment
from personalization.tests.test_personalization_api import URL, ml_events, personalized_id

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]


def decision(client, uid: str) -> dict:
    response = client.get(URL, {"user_id": uid})
    assert response.status_code == 200
    return response.json()


def test_restore__rule_and_profile_cached_after_the_backup__not_served(
    pg_tools,  # noqa: F811
    client,
    tmp_path,
):
    catalog_load_demo()
    old, new = personalized_id("before"), personalized_id("after")
    events_store(events=ml_events(old), source=EventSource.API)
    visitor_resegment(user_pseudo_id=old)
    restored_rule = decision(client, old)
    assert restored_rule["segment"] == "ML_ENGINEER"
    with override_settings(BACKUP_DIR=tmp_path):
        call_command("backup", stdout=StringIO())

    # After the backup: a new rule goes live, a new visitor is profiled; both are cached.
    rule_create(
        segment=Segment.objects.get(code="ML_ENGINEER"),
        reasoning="activated after the backup",
        activate=True,
    )
    assert decision(client, old)["reasoning"] == "activated after the backup"
    events_store(events=ml_events(new), source=EventSource.API)
    visitor_resegment(user_pseudo_id=new)
    assert decision(client, new)["segment"] == "ML_ENGINEER"
    cached_ruleset = p13n_cache.ruleset_cached() if hasattr(p13n_cache, "ruleset_cached") else None

    out = StringIO()
    with override_settings(BACKUP_DIR=tmp_path):
        call_command("restore", "--latest", "--yes", stdout=out)

    assert decision(client, old)["reasoning"] == restored_rule["reasoning"]
    assert decision(client, old)["rule_version"] == restored_rule["rule_version"]
    assert decision(client, new)["segment"] == "CASUAL"  # its events and profile are gone
    assert "cache: personalization keys invalidated" in out.getvalue()
    # The restored counter moved past every version cached before the restore: an entry cached
    # then can never match again, even when later edits bring the counter back up.
    assert RuleSetVersion.objects.get().version > (cached_ruleset or 0)
