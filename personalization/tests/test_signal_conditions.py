"""Admin-authored signal conditions never break a decision (issue 18, items 1 and 2).

What an admin saves is checked against the condition schema (docs/SEGMENTATION.md); what
reaches the database some other way and is still broken is skipped, counted and shown in admin.
Regexes run on RE2, so no pattern backtracks.
"""

from __future__ import annotations

import importlib
import itertools
import json
import uuid
from datetime import timedelta
from typing import Any

import pytest
from django.apps import apps as django_apps
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.db.models import JSONField, Value
from django.test import TestCase
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import REGISTRY

from analytics.models import Event, EventSource
from analytics.services import EventIn, events_store
from personalization import defaults
from personalization.models import Segment, Signal, VisitorProfile
from personalization.scoring import (
    CatalogTags,
    EventView,
    ScoringModel,
    SegmentSpec,
    SignalSpec,
    regex_compile,
    score_visitor,
)
from personalization.selectors import variant_for
from personalization.services import catalog_load_demo, ruleset_bump, visitor_resegment
from personalization.validation import signal_conditions_errors

from .admin_forms import segment_with_signal

URL = "/api/personalization"
ERRORS = "p13n_signal_condition_errors_total"
EVIL = "^(a+)+$"
NOW = timezone.now()


def personalized_id(prefix: str) -> str:
    return next(
        f"{prefix}.{i}" for i in range(1000) if variant_for(f"{prefix}.{i}") == "personalized"
    )


def errors_counted(signal: Signal) -> float:
    return REGISTRY.get_sample_value(ERRORS, {"signal": str(signal.pk)}) or 0.0


def ml_events(uid: str, *, n: int = 6, **extra: Any) -> list[EventIn]:
    now = timezone.now()
    slugs = ["llm-router", "vision-defect-detector", "sentiment-pipeline"]
    return [
        EventIn(
            event_name="deep_read" if i % 2 else "project_click",
            user_pseudo_id=uid,
            occurred_at=now - timedelta(minutes=i),
            event_id=f"{uid}-{i}",
            event_params={"project_id": slugs[i % 3], "duration": 20_000, **extra},
        )
        for i in range(n)
    ]


def store(events: list[EventIn]) -> None:
    """Store events and run what their commit queues (re-segmentation, eager Celery)."""
    with TestCase.captureOnCommitCallbacks(execute=True):
        events_store(events=events, source=EventSource.API)


def break_signal(conditions: Any, *, label: str = "referred by an ML site") -> Signal:
    """Write conditions straight to the row, past every validation (raw SQL, an old row)."""
    signal = Signal.objects.get(label=label)
    # JSON null itself, not SQL NULL (the column refuses that).
    stored = Value(None, JSONField()) if conditions is None else conditions
    Signal.objects.filter(pk=signal.pk).update(conditions=stored)
    ruleset_bump()
    signal.refresh_from_db()
    return signal


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
        "conditions": json.dumps([{"param": "referrer_host", "op": "regex", "value": r"\.edu$"}]),
        "weight": "1.0",
        "cap": "1",
        "half_life_days": "30",
        "is_active": "on",
    }
    data.update(overrides)
    return data


BAD_REGEX = [{"param": "referrer_host", "op": "regex", "value": "(edu"}]
UNKNOWN_OP = [{"param": "referrer_host", "op": "startswith", "value": "edu"}]


# --- Item 1: refused where saved ----------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("conditions", "message"),
    [
        (BAD_REGEX, "not a valid RE2 regular expression"),
        (UNKNOWN_OP, "unknown op 'startswith'"),
    ],
)
def test_signal_admin_add__bad_condition__refused_with_message_on_conditions(
    staff_client, conditions, message
):
    response = staff_client.post(
        "/admin/personalization/signal/add/", signal_form(conditions=json.dumps(conditions))
    )

    assert response.status_code == 200  # the form again, not a redirect
    errors = response.context["adminform"].form.errors
    assert list(errors) == ["conditions"]
    assert message in errors["conditions"][0]
    assert not Signal.objects.filter(label="referred by a school").exists()


@pytest.mark.django_db
def test_signal_admin_add__valid_condition__saved(staff_client):
    response = staff_client.post("/admin/personalization/signal/add/", signal_form())

    assert response.status_code == 302
    assert Signal.objects.get(label="referred by a school").conditions[0]["op"] == "regex"


@pytest.mark.django_db
def test_segment_admin_inline__bad_regex__refused_with_message_on_the_signal(staff_client):
    data = segment_with_signal(conditions=json.dumps(BAD_REGEX))

    response = staff_client.post("/admin/personalization/segment/add/", data)

    assert response.status_code == 200
    (formset,) = response.context["inline_admin_formsets"]
    assert "not a valid RE2 regular expression" in formset.formset.errors[0]["conditions"][0]
    assert not Segment.objects.filter(code="RESEARCHER").exists()


@pytest.mark.django_db
@pytest.mark.parametrize("conditions", [BAD_REGEX, UNKNOWN_OP, "oops", [{"op": "regex"}]])
def test_signal_full_clean__bad_conditions__validation_error_on_conditions(conditions):
    # The path every other writer of signals (a service, a shell, a future API) goes through.
    signal = Signal(
        segment=Segment.objects.get(code="STUDENT"),
        label="x",
        event_name="*",
        conditions=conditions,
    )

    with pytest.raises(ValidationError) as caught:
        signal.full_clean()

    assert list(caught.value.message_dict) == ["conditions"]


def test_default_signals__every_condition__valid():
    for data in defaults.SIGNALS:
        assert signal_conditions_errors(data["conditions"]) == {}, data["label"]


@pytest.mark.django_db
def test_defaults_migration__bad_default_condition__refused(monkeypatch):
    migration = importlib.import_module(
        "personalization.migrations.0003_default_segments_signals_rules"
    )
    bad = {**defaults.SIGNALS[0], "label": "broken default", "conditions": BAD_REGEX}
    monkeypatch.setattr(defaults, "SIGNALS", [*defaults.SIGNALS, bad])

    with pytest.raises(ValueError, match="broken default"):
        migration.load_defaults(django_apps, None)


@pytest.mark.parametrize(
    ("pattern", "why"),
    [
        (r"(a)\1", "backreference"),
        ("(?P<x>a)(?P=x)", "backreference"),
        ("(?=a)b", "lookahead"),
        ("(?<!a)b", "lookbehind"),
        ("a++", "possessive"),
        ("(?>a)", "atomic"),
        (r"edu\Z", r"\z"),
    ],
)
def test_signal_conditions_errors__python_only_regex__refused_saying_why(pattern, why):
    errors = signal_conditions_errors([{"param": "q", "op": "regex", "value": pattern}])

    assert why in errors["conditions"][0]


@pytest.mark.parametrize(
    ("condition", "message"),
    [
        ({"param": "q", "op": "in", "value": "abc"}, "a non-empty list"),
        ({"param": "q", "op": "gte", "value": "lots"}, "a number"),
        ({"param": "q", "op": "tag", "value": [1]}, "a non-empty list of strings"),
        ({"param": "q", "op": "exists", "value": "x"}, "takes no value"),
        ({"param": "q", "op": "equals", "value": {"a": 1}}, "a string, a number or true/false"),
        ({"param": "q", "op": "regex", "vaule": "x"}, "unknown key 'vaule'"),
        ({"param": "", "op": "exists"}, "param"),
        ({"param": "q", "op": "contains", "value": "a\x00b"}, "NUL"),
        ({"op": "exists"}, "param"),
    ],
)
def test_signal_conditions_errors__near_valid__message_names_the_problem(condition, message):
    errors = signal_conditions_errors([{"param": "ok", "op": "exists"}, condition])

    assert errors["conditions"][0].startswith("Condition 2:")
    assert message in errors["conditions"][0]


# --- Item 1: a broken row in the database never fails a decision --------------------------------


@pytest.fixture
def catalog():
    catalog_load_demo()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "conditions",
    [BAD_REGEX, UNKNOWN_OP, "oops", 7, {"param": "x"}, [["nested"]], [{"op": "in", "value": 3}]],
)
def test_personalization__broken_condition_in_db__200_for_new_and_known_visitor_and_counted(
    client, catalog, conditions
):
    signal = break_signal(conditions)
    before = errors_counted(signal)
    known = personalized_id("known")
    store(ml_events(known))

    new_answer = client.get(URL, {"user_id": personalized_id("new")})
    known_answer = client.get(URL, {"user_id": known})

    assert new_answer.status_code == 200
    assert new_answer.json()["segment"] == "CASUAL"
    assert known_answer.status_code == 200
    assert known_answer.json()["segment"] == "ML_ENGINEER"
    assert errors_counted(signal) > before


@pytest.mark.django_db
def test_resegment__broken_condition_in_db__finishes_and_skips_only_that_signal(catalog, capsys):
    signal = break_signal(BAD_REGEX)
    uid = personalized_id("cmd")
    store(ml_events(uid))
    VisitorProfile.objects.filter(user_pseudo_id=uid).delete()

    call_command("resegment", uid)
    profile = visitor_resegment(user_pseudo_id=uid)

    assert f"{uid}: ML_ENGINEER" in capsys.readouterr().out
    assert profile is not None
    assert profile.segment == "ML_ENGINEER"
    labels = {c["signal"] for c in profile.explanation["contributions"]}
    assert "deep_read on ML projects" in labels
    assert signal.label not in labels


@pytest.mark.django_db
def test_resegment__condition_raises_on_a_raw_event__event_skipped_counted_rest_scored(catalog):
    # A row written past ingestion's checks: params that are a list, not an object.
    uid = personalized_id("raw")
    store(ml_events(uid))
    Event.objects.create(
        event_name="page_view",
        user_pseudo_id=uid,
        event_params=[1, 2],
        occurred_at=timezone.now(),
        dedupe_key=uuid.uuid4(),
    )
    wildcard = Signal.objects.get(label="referred by an ML site")
    before = errors_counted(wildcard)

    profile = visitor_resegment(user_pseudo_id=uid)

    assert profile is not None
    assert profile.event_count == 7
    assert profile.segment == "ML_ENGINEER"
    assert errors_counted(wildcard) == before + 1


@pytest.mark.django_db
def test_resegment_all__broken_condition_in_db__finishes(catalog, capsys):
    break_signal(UNKNOWN_OP)
    store(ml_events(personalized_id("all")))

    call_command("resegment", "--all", "--quiet")

    assert "Re-segmented 1 visitors" in capsys.readouterr().out


@pytest.mark.django_db
def test_signal_admin__broken_condition_in_db__flagged_in_list_change_form_and_segment(
    staff_client,
):
    signal = break_signal(BAD_REGEX)

    listing = staff_client.get("/admin/personalization/signal/").content.decode()
    change = staff_client.get(f"/admin/personalization/signal/{signal.pk}/change/")
    segment = staff_client.get(f"/admin/personalization/segment/{signal.segment_id}/change/")

    assert "broken condition" in listing.lower()
    assert "missing )" in listing
    assert any("counts for nothing" in str(m) for m in change.context["messages"])
    assert "missing )" in segment.content.decode()


@pytest.mark.django_db
def test_admin_api_segments__broken_condition_in_db__signal_lists_its_errors(admin_client):
    signal = break_signal(UNKNOWN_OP)

    body = admin_client.get("/api/admin/segments").json()

    signals = {s["id"]: s for seg in body["results"] for s in seg["signals"]}
    assert "unknown op 'startswith'" in signals[signal.pk]["condition_errors"][0]
    assert all(s["condition_errors"] == [] for pk, s in signals.items() if pk != signal.pk)


# --- Item 2: no pattern backtracks ---------------------------------------------------------------


def test_regex_compile__catastrophic_pattern__re2_engine_and_linear_answer():
    pattern = regex_compile(EVIL)

    assert type(pattern).__module__ == "re2"
    assert pattern.search("a" * 33 + "!") is None
    assert pattern.search("a" * 100_000 + "!") is None
    assert pattern.search("A" * 33) is not None  # case-insensitive, like before


def test_score_visitor__catastrophic_regex__long_param_scored_no_match():
    signal = SignalSpec(
        1, "ML", "evil", "*", ({"param": "q", "op": "regex", "value": EVIL},), 1, 5, None
    )
    model = ScoringModel(
        segments=[SegmentSpec("ML", "ML", 0.0), SegmentSpec("CASUAL", "Casual", 0.0)],
        signals=[signal],
        catalog=CatalogTags({}, {}),
    )
    events = [
        EventView("click", {"q": "a" * 33 + "!"}, NOW),
        EventView("click", {"q": "a" * 5000 + "!"}, NOW),
        EventView("click", {"q": "aaaa"}, NOW),
    ]

    decision = score_visitor(model, events, now=NOW)

    assert [c.count for c in decision.contributions] == [1.0]


def test_score_visitor__regex_on_param_with_lone_surrogate__matches_rest_never_raises():
    # SQLite keeps such text in event params; RE2 reads UTF-8 only.
    condition = {"param": "referrer_host", "op": "regex", "value": r"\.edu$"}
    signal = SignalSpec(1, "ML", "edu", "*", (condition,), 1, 5, None)
    model = ScoringModel(
        segments=[SegmentSpec("ML", "ML", 0.0)], signals=[signal], catalog=CatalogTags({}, {})
    )
    events = [EventView("click", {}, NOW, "https://a\ud800.MIT.EDU/"), EventView("c", {}, NOW)]

    decision = score_visitor(model, events, now=NOW)

    assert [c.count for c in decision.contributions] == [1.0]


@pytest.mark.django_db
def test_events_batch__catastrophic_regex_signal__every_visitor_in_it_segmented(client, catalog):
    evil = Signal.objects.create(
        segment=Segment.objects.get(code="ML_ENGINEER"),
        label="all-a query",
        event_name="*",
        conditions=[{"param": "q", "op": "regex", "value": EVIL}],
        weight=1.0,
        cap=1,
    )
    ruleset_bump()
    attacker, bystander = personalized_id("attacker"), personalized_id("bystander")
    events = [
        {
            "event_name": "page_view",
            "user_pseudo_id": attacker,
            "event_params": {"q": "a" * 33 + "!"},
        },
        *[
            {
                "event_name": e.event_name,
                "user_pseudo_id": bystander,
                "event_params": {**e.event_params, "q": "aaaa"},
            }
            for e in ml_events(bystander)
        ],
    ]

    with TestCase.captureOnCommitCallbacks(execute=True):
        response = client.post(
            URL.replace("personalization", "events"), {"events": events}, "application/json"
        )

    assert response.status_code == 201
    profiles = {p.user_pseudo_id: p for p in VisitorProfile.objects.all()}
    assert profiles[attacker].segment == "CASUAL"
    assert profiles[bystander].segment == "ML_ENGINEER"
    assert evil.label in {c["signal"] for c in profiles[bystander].explanation["contributions"]}
    assert evil.label not in {c["signal"] for c in profiles[attacker].explanation["contributions"]}


# --- Any JSON an admin can type ------------------------------------------------------------------

PATTERNS = [
    "(edu",
    EVIL,
    r"(a)\1",
    "(?=x)",
    "[",
    "*",
    "\\",
    ".*",
    "a{1001}",
    "(?P<n>x)(?P=n)",
    "^$",
]
OPS = ["exists", "equals", "in", "contains", "regex", "tag", "gte", "lte"]
PARAMS = ["project_id", "q", "time_spent", "contact_type", "tags", "referrer_host", "page_referrer"]


def json_values(text: st.SearchStrategy[str]) -> st.SearchStrategy[Any]:
    scalars = (
        st.none()
        | st.booleans()
        | st.integers(-(10**18), 10**18)
        | st.floats(allow_nan=False, allow_infinity=False)
        | text
        | st.sampled_from(PATTERNS)
    )
    return st.recursive(
        scalars,
        lambda children: (
            st.lists(children, max_size=4)
            | st.dictionaries(
                text | st.sampled_from(["param", "op", "value"]), children, max_size=4
            )
        ),
        max_leaves=10,
    )


def typed_conditions(text: st.SearchStrategy[str]) -> st.SearchStrategy[dict[str, Any]]:
    """Conditions whose value has the op's type (most are valid; odd text may still not be)."""
    param = st.sampled_from(PARAMS) | text
    number = st.integers(-(10**6), 10**6) | st.floats(-1e9, 1e9)
    scalar = text | number | st.booleans()
    values: dict[str, st.SearchStrategy[Any]] = {
        "equals": scalar,
        "in": st.lists(scalar, min_size=1, max_size=4),
        "contains": text,
        "regex": st.sampled_from([".*", "^a+$", "(^|\\.)edu$", "GIT", "[0-9]{2}%", *PATTERNS])
        | text,
        "tag": st.lists(st.sampled_from(["ml", "ai", "web"]) | text, min_size=1, max_size=3),
        "gte": number,
        "lte": number,
    }
    exists = st.builds(lambda p: {"param": p, "op": "exists"}, param)
    return exists | st.one_of(
        [
            st.builds(lambda p, v, op=op: {"param": p, "op": op, "value": v}, param, value)
            for op, value in values.items()
        ]
    )


def admin_conditions(text: st.SearchStrategy[str]) -> st.SearchStrategy[Any]:
    """Any JSON; lists of conditions typed as the schema says; and lists of conditions that are
    nearly right: random ops, values, params."""
    anything = json_values(text)
    near_valid: st.SearchStrategy[dict[str, Any]] = st.fixed_dictionaries(
        {"param": st.sampled_from(PARAMS) | text},
        optional={
            "op": st.sampled_from([*OPS, "startswith", "", "REGEX"]) | anything,
            "value": anything
            | st.lists(st.sampled_from(["ml", "ai", "github", "75%"]), max_size=3),
        },
    )
    return (
        anything
        | st.lists(typed_conditions(text), max_size=4)
        | st.lists(typed_conditions(text) | near_valid | anything, max_size=4)
    )


# What a database can hold: no NUL, no lone surrogates (PostgreSQL refuses both in jsonb).
STORABLE = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\x00"), max_size=20)
ANY_TEXT = st.text(max_size=20)
EXAMPLES = itertools.count()
EVENT_PARAMS: dict[str, Any] = {
    "project_id": "llm-router",
    "q": "a" * 40 + "!",
    "time_spent": 9000,
    "contact_type": "GitHub",
    "tags": ["ml"],
    "empty": None,
}


@pytest.mark.django_db
@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(conditions=admin_conditions(STORABLE))
def test_personalization__any_admin_json_as_conditions_in_db__200(client, conditions):
    break_signal(conditions)
    break_signal(conditions, label="deep_read on ML projects")
    uid = personalized_id(f"any{next(EXAMPLES)}")
    store(ml_events(uid, page_referrer="https://cs.mit.edu/", **EVENT_PARAMS))

    known = client.get(URL, {"user_id": uid})
    new = client.get(URL, {"user_id": "never.seen"})

    assert known.status_code == 200
    assert known.json()["segmented_at"] is not None
    assert new.status_code == 200


@settings(max_examples=200, deadline=None)
@given(conditions=admin_conditions(ANY_TEXT))
def test_signal_conditions_errors__any_json__accepted_and_scores_or_field_error(conditions):
    errors = signal_conditions_errors(conditions)

    if errors:
        assert list(errors) == ["conditions"]
        assert all(isinstance(m, str) and m for m in errors["conditions"])
        return
    signal = SignalSpec(1, "ML", "s", "*", tuple(conditions), 1.0, 5.0, None)
    model = ScoringModel(
        segments=[SegmentSpec("ML", "ML", 0.0), SegmentSpec("CASUAL", "Casual", 0.0)],
        signals=[signal],
        catalog=CatalogTags({"llm-router": ["ml"]}, {}),
    )
    assert model.broken == {}
    events = [EventView("click", EVENT_PARAMS, NOW, "https://cs.mit.edu/"), EventView("x", {}, NOW)]
    decision = score_visitor(model, events, now=NOW)
    assert set(decision.scores) == {"ML", "CASUAL"}
