from datetime import UTC, datetime, timedelta

import pytest

from personalization.scoring import (
    CASUAL,
    CatalogTags,
    EventView,
    ScoringModel,
    SegmentSpec,
    SignalSpec,
    compile_condition,
    explanation,
    score_visitor,
)

NOW = datetime(2026, 11, 29, 12, tzinfo=UTC)
CATALOG = CatalogTags(
    projects={"llm-router": ["ml", "llm"], "shop": ["web"], "thesis": ["school"]},
    skills={"PyTorch": ["ml"], "React": ["web"]},
)


def ev(name, at=NOW, referrer="", **params):
    return EventView(name, params, at, referrer)


def model(signals, *, priors=None, min_events=3, temperature=1.0):
    priors = priors or {"ML_ENGINEER": 0.0, "FULLSTACK_DEV": 0.0, CASUAL: 2.0}
    return ScoringModel(
        segments=[SegmentSpec(code, code.title(), prior) for code, prior in priors.items()],
        signals=[
            SignalSpec(i, seg, label, name, tuple(conds), weight, cap, half_life)
            for i, (seg, label, name, conds, weight, cap, half_life) in enumerate(signals)
        ],
        catalog=CATALOG,
        temperature=temperature,
        min_events=min_events,
    )


ML_CLICK = (
    "ML_ENGINEER",
    "click ml",
    "project_click",
    [{"param": "project_id", "op": "tag", "value": ["ml"]}],
    1.0,
    4,
    None,
)
WEB_CLICK = (
    "FULLSTACK_DEV",
    "click web",
    "project_click",
    [{"param": "project_id", "op": "tag", "value": ["web"]}],
    1.0,
    4,
    None,
)


def test_score__contributions_plus_prior__equal_raw_scores():
    m = model([ML_CLICK, WEB_CLICK])
    events = [ev("project_click", project_id="llm-router")] * 3 + [
        ev("project_click", project_id="shop")
    ]

    decision = score_visitor(m, events, now=NOW)

    for segment in m.segments:
        total = segment.prior + sum(
            c.contribution for c in decision.contributions if c.segment == segment.code
        )
        assert total == pytest.approx(decision.raw_scores[segment.code])
    assert decision.raw_scores == {"ML_ENGINEER": 3.0, "FULLSTACK_DEV": 1.0, CASUAL: 2.0}
    assert decision.segment == "ML_ENGINEER"
    assert sum(decision.scores.values()) == pytest.approx(1.0)
    assert decision.confidence == decision.scores["ML_ENGINEER"]


def test_score__topic_from_catalog_tags__not_site_category():
    m = model([ML_CLICK])
    events = [ev("project_click", project_id="shop", category="ML")] * 5

    assert score_visitor(m, events, now=NOW).raw_scores["ML_ENGINEER"] == 0.0


def test_score__matches_over_cap__capped():
    m = model([ML_CLICK])

    decision = score_visitor(m, [ev("project_click", project_id="llm-router")] * 10, now=NOW)

    assert decision.contributions[0].count == 4
    assert decision.raw_scores["ML_ENGINEER"] == 4.0


def test_score__half_life__old_event_counts_half():
    signal = (*ML_CLICK[:6], 30.0)
    m = model([signal])

    decision = score_visitor(
        m, [ev("project_click", at=NOW - timedelta(days=30), project_id="llm-router")], now=NOW
    )

    assert decision.contributions[0].count == pytest.approx(0.5)


def test_score__fewer_than_min_events__casual_whatever_the_evidence():
    m = model([(*ML_CLICK[:4], 10.0, 4, None)])

    decision = score_visitor(m, [ev("project_click", project_id="llm-router")] * 2, now=NOW)

    assert decision.raw_scores["ML_ENGINEER"] == 20.0
    assert decision.segment == CASUAL
    assert decision.thin_evidence


def test_score__weak_evidence__casual_prior_wins():
    m = model([(*ML_CLICK[:4], 0.5, 4, None)])

    decision = score_visitor(m, [ev("project_click", project_id="llm-router")] * 3, now=NOW)

    assert decision.segment == CASUAL


def test_score__no_events__casual_from_priors():
    decision = score_visitor(model([ML_CLICK]), [], now=NOW)

    assert decision.segment == CASUAL
    assert decision.contributions == []


def test_explanation__contributions__named_and_narrated():
    m = model([ML_CLICK, WEB_CLICK])
    decision = score_visitor(m, [ev("project_click", project_id="llm-router")] * 4, now=NOW)

    text = explanation(decision, {s.code: s for s in m.segments})

    assert set(text) >= {"what", "why", "so_what", "recommendation", "contributions"}
    assert "click ml" in text["why"]
    assert text["contributions"][0] == {
        "signal": "click ml",
        "segment": "ML_ENGINEER",
        "weight": 1.0,
        "count": 4.0,
        "contribution": 4.0,
    }


@pytest.mark.parametrize(
    ("condition", "event", "expected"),
    [
        (
            {"param": "contact_type", "op": "equals", "value": "GitHub"},
            ev("x", contact_type="github"),
            True,
        ),
        (
            {"param": "contact_type", "op": "in", "value": ["email"]},
            ev("x", contact_type="github"),
            False,
        ),
        (
            {"param": "destination", "op": "contains", "value": "docs"},
            ev("x", destination="https://docs.x/"),
            True,
        ),
        (
            {"param": "page_referrer", "op": "regex", "value": r"linkedin\.com"},
            ev("x", referrer="https://www.linkedin.com/feed"),
            True,
        ),
        (
            {"param": "referrer_host", "op": "regex", "value": r"(^|\.)edu$"},
            ev("x", page_referrer="https://cs.mit.edu/x"),
            True,
        ),
        (
            {"param": "referrer_host", "op": "regex", "value": r"(^|\.)edu$"},
            ev("x", page_referrer="https://edu.evil.com/"),
            False,
        ),
        (
            {"param": "skill_name", "op": "tag", "value": ["ml"]},
            ev("x", skill_name="pytorch"),
            True,
        ),
        ({"param": "skill_name", "op": "tag", "value": ["ml"]}, ev("x", skill_name="React"), False),
        ({"param": "time_spent", "op": "gte", "value": 8000}, ev("x", time_spent=9000), True),
        ({"param": "time_spent", "op": "gte", "value": 8000}, ev("x", time_spent="12000"), True),
        ({"param": "time_spent", "op": "gte", "value": 8000}, ev("x", time_spent="soon"), False),
        ({"param": "time_spent", "op": "lte", "value": 8000}, ev("x"), False),
        ({"param": "x", "op": "exists"}, ev("x", x=1), True),
        ({"param": "x", "op": "no-such-op", "value": 1}, ev("x", x=1), False),
    ],
)
def test_condition__each_op__matches_as_documented(condition, event, expected):
    assert compile_condition(condition, CATALOG)(event) is expected


def test_model_version__signal_weight_changes__version_changes():
    assert model([ML_CLICK]).version != model([(*ML_CLICK[:4], 2.0, 4, None)]).version
    assert model([ML_CLICK]).version == model([ML_CLICK]).version
