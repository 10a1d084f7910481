"""The admin paginator never counts a whole big table."""

from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from analytics import admin_paging
from analytics.admin_paging import EstimatedCountPaginator, estimated_rows
from analytics.models import Event
from analytics.services import EventIn, events_store

pytestmark = pytest.mark.django_db


@pytest.fixture
def events():
    now = timezone.now()
    events_store(
        events=[
            EventIn("page_view", f"v.{i % 3}", now - timedelta(minutes=i), event_id=str(i))
            for i in range(30)
        ]
    )


def test_paginator__small_table__exact_count(events):
    assert EstimatedCountPaginator(Event.objects.order_by("id"), 10).count == 30
    assert (
        EstimatedCountPaginator(Event.objects.filter(user_pseudo_id="v.1").order_by("id"), 10).count
        == 10
    )


def test_paginator__filtered__count_capped(events, monkeypatch):
    monkeypatch.setattr(admin_paging, "COUNT_CAP", 7)

    paginator = EstimatedCountPaginator(
        Event.objects.filter(event_name="page_view").order_by("id"), 5
    )

    assert paginator.count == 7
    assert paginator.num_pages == 2


def test_paginator__big_table_on_postgresql__planner_estimate_no_count(
    postgres, events, monkeypatch, django_assert_num_queries
):
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE analytics_event")
    monkeypatch.setattr(admin_paging, "ESTIMATE_ABOVE", 10)
    assert estimated_rows("analytics_event") == 30

    paginator = EstimatedCountPaginator(Event.objects.order_by("-occurred_at"), 10)
    with django_assert_num_queries(1) as captured:
        assert paginator.count == 30

    assert "pg_class" in captured.captured_queries[0]["sql"]
    assert "COUNT(" not in captured.captured_queries[0]["sql"].upper()


def test_estimated_rows__sqlite__none(events):
    if connection.vendor == "postgresql":
        pytest.skip("SQLite only")
    assert estimated_rows("analytics_event") is None
