from datetime import UTC, datetime

from personalization.demo_catalog import PROJECTS
from personalization.personas import PERSONAS, generate_visitors

NOW = datetime(2026, 11, 29, tzinfo=UTC)
TOPICS = {p["slug"]: set(p["tags"]) for p in PROJECTS}


def flatten(visitors):
    return [
        (v.user_pseudo_id, v.segment, [(e["event_name"], e["event_params"]) for e in v.events])
        for v in visitors
    ]


def test_generate_visitors__same_seed__same_visitors():
    assert flatten(generate_visitors(count=20, seed=7, now=NOW)) == flatten(
        generate_visitors(count=20, seed=7, now=NOW)
    )


def test_generate_visitors__other_seed__other_visitors():
    assert flatten(generate_visitors(count=20, seed=7, now=NOW)) != flatten(
        generate_visitors(count=20, seed=8, now=NOW)
    )


def test_generate_visitors__events__within_persona_range_and_in_the_past():
    for visitor in generate_visitors(count=200, seed=1, now=NOW):
        low, high = PERSONAS[visitor.segment].events_range
        assert low <= len(visitor.events) <= high
        stamps = [e["event_timestamp"] for e in visitor.events]
        assert max(stamps) <= NOW.timestamp() * 1000 + 3 * 3600 * 1000


def test_ml_persona__project_clicks__mostly_ml_topics():
    ml_clicks = total = 0
    for visitor in generate_visitors(count=300, seed=3, now=NOW, mix={"ML_ENGINEER": 1}):
        for e in visitor.events:
            if e["event_name"] == "project_click":
                total += 1
                ml_clicks += bool(TOPICS[e["event_params"]["project_id"]] & {"ml", "ai", "data"})
    assert total > 100
    assert ml_clicks / total > 0.8
