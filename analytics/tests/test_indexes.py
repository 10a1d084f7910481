"""The queries that scan events have an index to use (PostgreSQL's plans, seq scans off so a
tiny test table cannot hide a missing index)."""

import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from analytics.models import Event, Visitor
from personalization.models import VisitorProfile

pytestmark = pytest.mark.django_db


def plan(queryset) -> str:
    sql, params = queryset.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute(f"EXPLAIN {sql}", params)
        return "\n".join(row[0] for row in cursor.fetchall())


@pytest.mark.parametrize(
    ("name", "build", "index"),
    [
        (
            "one visitor's events, in time order",
            lambda: Event.objects.filter(user_pseudo_id="u").order_by("occurred_at"),
            "event_user_time_idx",
        ),
        (
            "recompute: every event ordered by visitor and time",
            lambda: Event.objects.order_by("user_pseudo_id", "occurred_at"),
            "event_user_time_idx",
        ),
        (
            "search: one event name in a time window",
            lambda: Event.objects.filter(
                event_name="deep_read", occurred_at__gte=timezone.now() - timedelta(hours=24)
            ),
            "event_name_time_idx",
        ),
        (
            "search: newest events in a time window",
            lambda: Event.objects.filter(
                occurred_at__gte=timezone.now() - timedelta(hours=24)
            ).order_by("-occurred_at"),
            "event_time_idx",
        ),
        (
            "dedupe lookup",
            lambda: Event.objects.filter(dedupe_key__in=[uuid.UUID(int=1), uuid.UUID(int=2)]),
            "event_dedupe_key_unique",
        ),
        (
            "one visitor (the import's upsert, erasure, admin detail)",
            lambda: Visitor.objects.filter(user_pseudo_id="u"),
            "visitor_user_pseudo_id_unique",
        ),
        (
            "visitors by id (consent, retention, traits merge)",
            lambda: Visitor.objects.filter(user_pseudo_id__in=["u", "v"]),
            "visitor_user_pseudo_id_unique",
        ),
        (
            "visitors per segment",
            lambda: VisitorProfile.objects.filter(segment="RECRUITER"),
            "profile_segment_idx",
        ),
    ],
)
def test_query__postgres_plan__uses_its_index(postgres, name, build, index):
    assert index in plan(build()), f"{name}: no index scan on {index}"


def indexes(table: str) -> dict[str, str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s", [table])
        return dict(cursor.fetchall())


def test_import_tables__postgres__no_index_beyond_these(postgres):
    """Every index is paid for by every GA4-import row: none that no query uses (Django's
    varchar_pattern_ops twin of a unique=True column was one), and the dedupe key a uuid."""
    assert set(indexes("analytics_event")) == {
        "analytics_event_pkey",
        "event_dedupe_key_unique",
        "event_user_time_idx",
        "event_name_time_idx",
        "event_time_idx",
    }
    assert set(indexes("analytics_visitor")) == {
        "analytics_visitor_pkey",
        "visitor_user_pseudo_id_unique",
        "visitor_last_seen_idx",
    }
    assert "UNIQUE INDEX" in indexes("analytics_visitor")["visitor_user_pseudo_id_unique"]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT data_type FROM information_schema.columns"
            " WHERE table_name = 'analytics_event' AND column_name = 'dedupe_key'"
        )
        assert cursor.fetchone() == ("uuid",)
