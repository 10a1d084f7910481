"""selectors.scoring_events reads params and times as text: the same values as the ORM's."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from analytics.models import Event
from analytics.services import EventIn, events_store
from personalization.selectors import scoring_events, visitors_events

pytestmark = pytest.mark.django_db
PARAMS = [
    {"project_id": "llm-router", "n": 3, "f": 0.1 + 0.2, "deep": {"a": [1, None, True]}},
    {"big": 2**70, "text": 'Lé ✓ "q" \\', "neg": -(2**63)},
    {},
]


def test_same_values_as_the_orm_reads__in_order():
    for i, params in enumerate(PARAMS):
        events_store(
            events=[
                EventIn(
                    event_name="page_view",
                    user_pseudo_id=f"s.{i % 2}",
                    occurred_at=datetime(2026, 11, 29, 10, i, 17, 123456 + i, tzinfo=UTC),
                    event_params=params,
                    page_referrer="https://ref/" if i else "",
                )
            ]
        )
    ordered = Event.objects.order_by("user_pseudo_id", "occurred_at")

    for chunk_size in (None, 2):
        got = list(scoring_events(ordered, chunk_size=chunk_size))
        expected = list(
            ordered.values_list(
                "user_pseudo_id", "event_name", "event_params", "occurred_at", "page_referrer"
            )
        )
        assert [
            (uid, e.event_name, e.params, e.occurred_at, e.page_referrer) for uid, e in got
        ] == expected
        assert all(e.occurred_at.utcoffset() is not None for _, e in got)

    by_visitor = visitors_events(user_pseudo_ids=["s.0", "s.1", "nobody"])
    assert sorted(by_visitor) == ["s.0", "s.1"]
    assert [e.params for e in by_visitor["s.0"]] == [PARAMS[0], PARAMS[2]]
