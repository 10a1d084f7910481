"""portfolio.db.bulk_upsert: the same rows as bulk_create(update_conflicts=True), every type."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.db import IntegrityError, transaction

from personalization.models import VisitorProfile
from personalization.recompute import PROFILE_FIELDS
from portfolio.db import bulk_upsert

pytestmark = pytest.mark.django_db
AT = datetime(2026, 11, 29, 10, 42, 17, 123456, tzinfo=UTC)


def profile(uid: str, **overrides) -> VisitorProfile:
    fields = {
        "segment": "ML_ENGINEER",
        "confidence": 0.1 + 0.2,  # not exactly representable: must come back bit for bit
        "scores": {"ML_ENGINEER": 0.700001, "CASUAL": 1e-07},
        "raw_scores": {"ML_ENGINEER": 2**70},
        "explanation": {"why": 'Lé "quoted" \\ back\nslash ✓', "items": [1, None, True]},
        "event_count": 7,
        "computed_at": AT,
        "model_version": "v1",
        "version": 3,
    }
    return VisitorProfile(user_pseudo_id=uid, **{**fields, **overrides})


def stored(uid: str) -> dict:
    return dict(VisitorProfile.objects.filter(user_pseudo_id=uid).values().get())


def test_new_rows__every_field_as_written__defaults_filled():
    bulk_upsert(
        VisitorProfile,
        [profile("a"), profile("b")],
        unique_field="user_pseudo_id",
        update_fields=["segment"],
    )

    row = stored("a")
    expected = profile("a")
    for name in PROFILE_FIELDS:
        assert row[name] == getattr(expected, name), name
    assert row["second_opinion"] == {}
    assert VisitorProfile.objects.count() == 2


def test_existing_row__only_update_fields_change():
    VisitorProfile.objects.create(
        **{k: v for k, v in vars(profile("a")).items() if not k.startswith("_") and k != "id"}
        | {"second_opinion": {"segment": "RECRUITER"}}
    )
    first_id = stored("a")["id"]

    bulk_upsert(
        VisitorProfile,
        [profile("a", segment="STUDENT", event_count=9, model_version="v2"), profile("c")],
        unique_field="user_pseudo_id",
        update_fields=["segment", "event_count"],
    )

    row = stored("a")
    assert (row["id"], row["segment"], row["event_count"]) == (first_id, "STUDENT", 9)
    assert row["model_version"] == "v1"  # not in update_fields
    assert row["second_opinion"] == {"segment": "RECRUITER"}
    assert stored("c")["segment"] == "ML_ENGINEER"


def test_nothing_to_write__no_query(django_assert_num_queries):
    with django_assert_num_queries(0):
        bulk_upsert(VisitorProfile, [], unique_field="user_pseudo_id", update_fields=["segment"])


def test_non_finite_number__refused_before_anything_is_written():
    # JSON refuses NaN on PostgreSQL; SQLite stores it as NULL, which the column refuses.
    with pytest.raises((ValueError, IntegrityError)), transaction.atomic():
        bulk_upsert(
            VisitorProfile,
            [profile("a"), profile("b", confidence=float("nan"))],
            unique_field="user_pseudo_id",
            update_fields=["segment"],
        )
    assert not VisitorProfile.objects.exists()
