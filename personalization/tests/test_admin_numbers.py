"""No number an admin can save breaks a decision (issue 18).

Segment priors and positions, signal weights, caps and half-lives are checked against
documented bounds where they are saved (docs/SEGMENTATION.md, "Numbers"); a row that holds
anything else (saved before the bounds, raw SQL) is scored with the number clamped into them,
so no decision is NaN or infinite and every endpoint answers.
"""

from __future__ import annotations

import itertools
import json
import math
import sys
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.test import TestCase
from django.utils import timezone
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from analytics.models import EventSource
from analytics.services import EventIn, events_store
from personalization import selectors
from personalization.models import Section, Segment, Signal, VisitorProfile
from personalization.scoring import (
    CatalogTags,
    EventView,
    ScoringModel,
    SegmentSpec,
    SignalSpec,
    explanation,
    score_visitor,
)
from personalization.selectors import variant_for
from personalization.services import catalog_load_demo, ruleset_bump, visitor_resegment

from .admin_forms import segment_form, segment_with_signal

URL = "/api/personalization"
NOW = timezone.now()
EXAMPLES = itertools.count()

# Every float an admin form or a model save can carry: both signs, subnormals, the extremes.
FINITE = st.floats(allow_nan=False, allow_infinity=False) | st.sampled_from(
    [sys.float_info.max, -sys.float_info.max, 5e-324, -5e-324, 1e308, -1e308, 0.0, -0.0]
)
NUMBERS = FINITE | st.integers(min_value=-(10**15), max_value=10**15).map(float)


def personalized_id(prefix: str) -> str:
    return next(
        f"{prefix}.{i}" for i in range(1000) if variant_for(f"{prefix}.{i}") == "personalized"
    )


def ml_events(uid: str, *, n: int = 6) -> list[EventIn]:
    now = timezone.now()
    slugs = ["llm-router", "vision-defect-detector", "sentiment-pipeline"]
    return [
        EventIn(
            event_name="deep_read" if i % 2 else "project_click",
            user_pseudo_id=uid,
            # One event in the future and some old ones: decay sees negative and large ages.
            occurred_at=now - timedelta(days=400 * i - 1),
            event_id=f"{uid}-{i}",
            event_params={"project_id": slugs[i % 3], "duration": 20_000},
        )
        for i in range(n)
    ]


def store(events: list[EventIn]) -> None:
    with TestCase.captureOnCommitCallbacks(execute=True):
        events_store(events=events, source=EventSource.API)


def assert_finite_decision(
    scores: dict[str, float], confidence: float, *, tolerance: float = 1e-9
) -> None:
    assert scores
    assert all(
        isinstance(v, float) and math.isfinite(v) and 0.0 <= v <= 1.0 for v in scores.values()
    )
    assert math.isclose(sum(scores.values()), 1.0, abs_tol=tolerance)
    assert math.isfinite(confidence)


# --- Stored past the forms: the decision still answers -------------------------------------------


@pytest.mark.django_db
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    prior=NUMBERS,
    casual_prior=NUMBERS,
    weight=NUMBERS,
    other_weight=NUMBERS,
    cap=NUMBERS,
    half_life=st.none() | NUMBERS,
)
@example(
    prior=1e308, casual_prior=1e308, weight=1e308, other_weight=1e308, cap=1e308, half_life=None
)
@example(
    prior=-1e308, casual_prior=1e308, weight=-1e308, other_weight=1e308, cap=-5.0, half_life=5e-324
)
@example(prior=0.0, casual_prior=0.0, weight=1e308, other_weight=1e308, cap=10.0, half_life=1e308)
def test_personalization__any_finite_number_stored_past_the_forms__200_finite_scores(
    client, prior, casual_prior, weight, other_weight, cap, half_life
):
    catalog_load_demo()
    Segment.objects.filter(code="ML_ENGINEER").update(prior=prior)
    Segment.objects.filter(code="CASUAL").update(prior=casual_prior)
    Signal.objects.filter(segment__code="ML_ENGINEER").update(
        weight=weight, cap=cap, half_life_days=half_life
    )
    Signal.objects.exclude(segment__code="ML_ENGINEER").update(weight=other_weight)
    ruleset_bump()
    uid = personalized_id(f"num{next(EXAMPLES)}")

    store(ml_events(uid))
    known = client.get(URL, {"user_id": uid})
    new = client.get(URL, {"user_id": "never.seen"})
    call_command("resegment", "--all", "--quiet")

    assert known.status_code == 200, known.content[:300]
    assert known.json()["segmented_at"] is not None
    assert new.status_code == 200
    profile = VisitorProfile.objects.get(user_pseudo_id=uid)
    # Stored rounded to 6 places.
    assert_finite_decision(profile.scores, profile.confidence, tolerance=1e-5)
    assert all(math.isfinite(v) for v in profile.raw_scores.values())
    json.dumps(profile.explanation, allow_nan=False)


@settings(max_examples=200, deadline=None)
@given(
    prior=st.floats() | st.integers(-(10**400), 10**400),
    weight=st.floats(),
    cap=st.floats(),
    half_life=st.none() | st.floats(),
    temperature=st.floats(),
)
@example(prior=1e308, weight=1e308, cap=1e308, half_life=None, temperature=1.0)
@example(prior=0.0, weight=1.0, cap=5.0, half_life=30.0, temperature=0.0)
@example(prior=0.0, weight=1.0, cap=5.0, half_life=30.0, temperature=5e-324)
@example(
    prior=float("nan"),
    weight=float("inf"),
    cap=float("nan"),
    half_life=float("nan"),
    temperature=float("nan"),
)
def test_score_visitor__any_number_in_the_model__finite_scores_summing_to_one(
    prior, weight, cap, half_life, temperature
):
    # Pure scoring, any float at all (NaN and infinities included: raw SQL can store them).
    model = ScoringModel(
        segments=[SegmentSpec("ML", "ML", prior), SegmentSpec("CASUAL", "Casual", -prior)],
        signals=[
            SignalSpec(1, "ML", "a", "*", (), weight, cap, half_life),
            SignalSpec(2, "CASUAL", "b", "click", (), -weight, cap, half_life),
        ],
        catalog=CatalogTags({}, {}),
        temperature=temperature,
    )
    events = [EventView("click", {}, NOW - timedelta(days=d)) for d in (-1, 0, 3, 4000)]

    decision = score_visitor(model, events, now=NOW)

    assert_finite_decision(decision.scores, decision.confidence)
    assert all(math.isfinite(v) for v in decision.raw_scores.values())
    why = explanation(decision, {s.code: s for s in model.segments})
    json.dumps(why, allow_nan=False)
    for code, raw in decision.raw_scores.items():  # the explanation still adds up
        own = sum(c["contribution"] for c in why["contributions"] if c["segment"] == code)
        assert math.isclose(raw, why["priors"][code] + own, rel_tol=1e-6, abs_tol=1e-3)


# --- Refused where saved -------------------------------------------------------------------------


@pytest.fixture
def staff_client(client):
    user = get_user_model().objects.create_superuser("root", "r@example.com", "pw-123456789")
    client.force_login(user)
    return client


def signal_form(**overrides: Any) -> dict[str, Any]:
    data = {
        "segment": Segment.objects.get(code="STUDENT").pk,
        "label": "referred by a school",
        "event_name": "*",
        "conditions": "[]",
        "weight": "1.0",
        "cap": "1",
        "half_life_days": "30",
        "is_active": "on",
    }
    data.update(overrides)
    return data


def form_errors(response: Any) -> dict[str, list[str]]:
    assert response.status_code == 200, response.status_code  # the form again, not a 500
    return dict(response.context["adminform"].form.errors)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("weight", "1e308", "less than or equal to 1000"),
        ("weight", "-1001", "greater than or equal to -1000"),
        ("cap", "0", "greater than or equal to 0.01"),
        ("cap", "-5", "greater than or equal to 0.01"),
        ("cap", "10001", "less than or equal to 10000"),
        ("half_life_days", "0", "greater than or equal to 0.01"),
        (
            "half_life_days",
            "5e-324",
            "greater than or equal to 0.01",
        ),  # a subnormal: below the bound
        ("half_life_days", "-1", "greater than or equal to 0.01"),
        ("half_life_days", "3651", "less than or equal to 3650"),
        ("weight", "1e999", "Enter a number"),  # overflows to infinity: not a number
        ("weight", "nan", "Enter a number"),
    ],
)
def test_signal_admin_add__number_out_of_bounds__refused_with_message(
    staff_client, field, value, message
):
    response = staff_client.post(
        "/admin/personalization/signal/add/", signal_form(**{field: value})
    )

    errors = form_errors(response)
    assert list(errors) == [field]
    assert message in errors[field][0]
    assert not Signal.objects.filter(label="referred by a school").exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("prior", "1e308", "less than or equal to 1000"),
        ("prior", "-1e308", "greater than or equal to -1000"),
        ("position", "1" + "0" * 30, "less than or equal to 32767"),
        ("position", "-1", "greater than or equal to 0"),
    ],
)
def test_segment_admin_add__number_out_of_bounds__refused_with_message(
    staff_client, field, value, message
):
    response = staff_client.post(
        "/admin/personalization/segment/add/", segment_form(**{field: value})
    )

    errors = form_errors(response)
    assert list(errors) == [field]
    assert message in errors[field][0]
    assert not Segment.objects.filter(code="RESEARCHER").exists()


@pytest.mark.django_db
def test_section_admin_add__huge_position__refused_with_message(staff_client):
    response = staff_client.post(
        "/admin/personalization/section/add/",
        {"slug": "talks", "title": "Talks", "position": "9" * 40, "tags": "[]"},
    )

    errors = form_errors(response)
    assert "less than or equal to 32767" in errors["position"][0]
    assert not Section.objects.filter(slug="talks").exists()


@pytest.mark.django_db
def test_segment_admin_inline__signal_weight_out_of_bounds__refused_on_the_row(staff_client):
    data = segment_with_signal(weight="-1e308")

    response = staff_client.post("/admin/personalization/segment/add/", data)

    assert response.status_code == 200
    (formset,) = response.context["inline_admin_formsets"]
    assert "greater than or equal to -1000" in formset.formset.errors[0]["weight"][0]
    assert not Segment.objects.filter(code="RESEARCHER").exists()


@settings(max_examples=100, deadline=None)
@given(weight=FINITE, cap=FINITE, half_life=st.none() | FINITE, prior=FINITE)
@pytest.mark.django_db
def test_full_clean__any_finite_number__valid_only_inside_the_documented_bounds(
    weight, cap, half_life, prior
):
    segment = Segment(code="X", name="X", prior=prior)
    signal = Signal(
        segment=Segment(code="Y", name="Y"),
        label="s",
        event_name="*",
        weight=weight,
        cap=cap,
        half_life_days=half_life,
    )
    inside = {
        "weight": -1000 <= weight <= 1000,
        "cap": 0.01 <= cap <= 10000,
        "half_life_days": half_life is None or 0.01 <= half_life <= 3650,
    }

    try:
        signal.full_clean(exclude=["segment"])
        refused: set[str] = set()
    except ValidationError as exc:
        refused = set(exc.message_dict)
    assert refused == {name for name, ok in inside.items() if not ok}
    try:
        segment.full_clean()
        refused = set()
    except ValidationError as exc:
        refused = set(exc.message_dict)
    assert refused == (set() if -1000 <= prior <= 1000 else {"prior"})


def test_default_numbers__inside_the_bounds():
    from personalization import defaults

    for segment in defaults.SEGMENTS:
        assert -1000 <= segment["prior"] <= 1000
    for signal in defaults.SIGNALS:
        assert -1000 <= signal["weight"] <= 1000
        assert 0.01 <= signal["cap"] <= 10000
        half_life = signal.get("half_life_days")
        assert half_life is None or 0.01 <= half_life <= 3650


@pytest.mark.django_db
def test_resegment__weight_past_the_bound_in_db__scored_as_the_bound_explained_and_logged(
    caplog, monkeypatch
):
    monkeypatch.setattr(selectors, "_reported", set())  # logged once per process: forget
    catalog_load_demo()
    Signal.objects.filter(label="deep_read on ML projects").update(weight=1e308)
    Segment.objects.filter(code="CASUAL").update(prior=-1e308)
    ruleset_bump()
    uid = personalized_id("clamp")
    store(ml_events(uid))

    profile = visitor_resegment(user_pseudo_id=uid)

    assert profile is not None
    assert profile.segment == "ML_ENGINEER"
    (deep_read,) = [
        c for c in profile.explanation["contributions"] if c["signal"] == "deep_read on ML projects"
    ]
    assert deep_read["weight"] == 1000.0
    assert profile.explanation["priors"]["CASUAL"] == -1000.0
    logged = [r for r in caplog.records if r.getMessage() == "p13n.scoring.number_clamped"]
    assert any("weight 1e+308 counted as 1000.0" in r.error for r in logged)
