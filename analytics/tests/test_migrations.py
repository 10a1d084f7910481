"""Migration 0004 on a table with events in it (SQLite and, with DATABASE_URL, PostgreSQL): the
keys stored as sha256 hex digests become the UUIDs of their first 16 bytes, and keep
deduplicating the same events, whichever way they come again."""

import hashlib
import json
import uuid
from datetime import UTC, datetime

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from analytics.ga4_export import import_export_file
from analytics.models import Event
from analytics.services import EventIn, events_store

BEFORE = [("analytics", "0003_dedupe_key_constraint")]
AFTER = [("analytics", "0004_dedupe_key_uuid")]
MOMENT = datetime(2024, 11, 19, 7, 6, 40, 123456, tzinfo=UTC)
PARAMS = {"ga_session_id": 1732000000, "page_title": "Café"}

# The keys as the code before 0004 stored them, written out from their definition: the sha256
# hex digest of the fields joined by the unit separator, params as sorted compact ASCII JSON.
CONTENT_MATERIAL = "\x1f".join(
    (
        "content",
        "1234567.7654321",
        "page_view",
        MOMENT.isoformat(),
        json.dumps(PARAMS, sort_keys=True, separators=(",", ":")),
    )
)
ID_MATERIAL = "\x1f".join(("id", "42.42", "client-event-7"))
OLD_KEYS = {
    "content": hashlib.sha256(CONTENT_MATERIAL.encode()).hexdigest(),
    "id": hashlib.sha256(ID_MATERIAL.encode()).hexdigest(),
}


def migrate(targets):
    executor = MigrationExecutor(connection)
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


def latest():
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())


@pytest.fixture
def at_0003():
    """The database at 0003 for the test, then migrated forward to the latest again."""
    try:
        yield migrate(BEFORE)
    finally:
        latest()


def export_line(tmp_path):
    """The content-keyed event as a GA4 export row."""
    row = {
        "event_timestamp": str(int(MOMENT.timestamp()) * 1_000_000 + MOMENT.microsecond),
        "event_name": "page_view",
        "user_pseudo_id": "1234567.7654321",
        "event_params": [
            {"key": "ga_session_id", "value": {"int_value": "1732000000"}},
            {"key": "page_title", "value": {"string_value": "Café"}},
        ],
    }
    path = tmp_path / "export.json"
    path.write_text(json.dumps(row) + "\n")
    return path


def old_event(OldEvent, key, user, **fields):
    return OldEvent(
        event_name=fields.get("event_name", "page_view"),
        user_pseudo_id=user,
        event_params=fields.get("event_params", {}),
        occurred_at=MOMENT,
        dedupe_key=key,
    )


@pytest.mark.django_db(transaction=True)
def test_0004__hex_digest_keys__become_their_first_16_bytes_and_still_deduplicate(
    at_0003, tmp_path
):
    OldEvent = at_0003.get_model("analytics", "Event")
    OldEvent.objects.bulk_create(
        [
            old_event(OldEvent, OLD_KEYS["content"], "1234567.7654321", event_params=PARAMS),
            old_event(OldEvent, OLD_KEYS["id"], "42.42", event_name="scroll"),
        ]
    )
    assert len(OLD_KEYS["content"]) == 64

    migrate(AFTER)

    assert set(Event.objects.values_list("dedupe_key", flat=True)) == {
        uuid.UUID(OLD_KEYS["content"][:32]),
        uuid.UUID(OLD_KEYS["id"][:32]),
    }
    # The same events again, through the API's path and the import's (COPY on PostgreSQL):
    # every one a duplicate of a converted row.
    again = events_store(
        events=[
            EventIn(
                event_name="page_view",
                user_pseudo_id="1234567.7654321",
                occurred_at=MOMENT,
                event_params=dict(PARAMS),
            ),
            EventIn(
                event_name="another_name",
                user_pseudo_id="42.42",
                occurred_at=MOMENT,
                event_id="client-event-7",
            ),
        ]
    )
    summary = import_export_file(export_line(tmp_path))
    assert (again.accepted, again.duplicates) == (0, 2)
    assert (summary.rows_imported, summary.rows_duplicate) == (0, 1)
    assert Event.objects.count() == 2
    # A new event is still new.
    new = events_store(
        events=[EventIn(event_name="scroll", user_pseudo_id="42.42", occurred_at=MOMENT)]
    )
    assert new.accepted == 1


@pytest.mark.django_db(transaction=True)
def test_0004_reversed__keys_back_as_their_32_hex_digits(at_0003):
    migrate(AFTER)
    events_store(events=[EventIn(event_name="scroll", user_pseudo_id="42.42", occurred_at=MOMENT)])
    key = Event.objects.get().dedupe_key

    old_apps = migrate(BEFORE)

    assert list(old_apps.get_model("analytics", "Event").objects.values_list("dedupe_key")) == [
        (key.hex,)
    ]


# --- 0007: dead letters get their visitor id, and lose what identifies a person -------------

BEFORE_0007 = [("analytics", "0006_ga4exportupload_heartbeat_at")]
AFTER_0007 = [("analytics", "0007_rejectedevent_user_pseudo_id")]


@pytest.fixture
def at_0006():
    try:
        yield migrate(BEFORE_0007)
    finally:
        latest()


@pytest.mark.django_db(transaction=True)
def test_0007__stored_dead_letters__visitor_id_filled_personal_data_dropped_erasable(at_0006):
    from analytics.models import RejectedEvent
    from analytics.services import visitor_erase

    OldRejected = at_0006.get_model("analytics", "RejectedEvent")
    reasons = [{"field": "x", "message": "x", "code": "VALUE_INVALID"}]
    OldRejected.objects.bulk_create(
        [
            OldRejected(
                source="gtag",
                payload={"query": "v=2&tid=G-1&cid=11.22&_uip=203.0.113.9", "line": "en=x&uip=::1"},
                reasons=reasons,
            ),
            OldRejected(
                source="mp",
                payload={
                    "client_id": "33.44",
                    "ip_override": "203.0.113.9",
                    "user_data": {"sha256_email_address": ["f" * 64]},
                    "events": [{"name": "bad name!"}],
                },
                reasons=reasons,
            ),
            OldRejected(
                source="ga4_export",
                payload={"user_pseudo_id": "55.66", "geo": {"city": "Springfieldia"}},
                reasons=reasons,
            ),
            OldRejected(source="mp", payload={"raw": "not json"}, reasons=reasons),
        ]
    )

    migrate(AFTER_0007)

    rows = {row.source + str(row.pk): row for row in RejectedEvent.objects.order_by("pk")}
    assert [row.user_pseudo_id for row in rows.values()] == ["11.22", "33.44", "55.66", ""]
    stored = json.dumps([row.payload for row in rows.values()])
    for personal in ("203.0.113.9", "uip", "f" * 64, "Springfieldia"):
        assert personal not in stored
    assert "cid=11.22" in stored
    assert visitor_erase(user_pseudo_id="11.22", record=False).rejected_events == 1
