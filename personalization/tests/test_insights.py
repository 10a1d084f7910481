"""The analysis input, number verification, catalog filtering, drafts and the per-period run."""

import json
from datetime import date, timedelta

import hypothesis
import pytest
from django.utils import timezone
from hypothesis import strategies as st

from analytics.models import GA4DailyAggregate
from personalization.insights import insight_input_build
from personalization.insights_services import insight_drafts_approve, insight_run
from personalization.llm.prompt import build_request
from personalization.llm.schema import InsightReply, InvalidReply, reply_parse
from personalization.llm.second_opinion import opinions_parse
from personalization.llm.verify import numbers_verify, suggestions_filter
from personalization.models import (
    InsightStatus,
    LLMInsight,
    PersonalizationRule,
    RuleSetVersion,
    RuleSource,
    RuleStatus,
)
from personalization.services import catalog_load_demo

from .fake_llm import FINDING, add_events, fake_server, openai_ok, valid_reply, valid_text

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _catalog():
    catalog_load_demo()


@pytest.fixture
def llm_server(settings):
    with fake_server() as server:
        settings.LLM_PROVIDERS = ["openai_compatible"]
        settings.OPENAI_COMPATIBLE_BASE_URL = server.url
        settings.OPENAI_COMPATIBLE_MODEL = "test"
        settings.LLM_DAILY_TOKEN_BUDGET = 0
        settings.LLM_AUTO_ACTIVATE = False
        yield server


def period(days=7):
    end = timezone.now().replace(microsecond=0)
    return end - timedelta(days=days), end


def build(days=7, **kwargs):
    start, end = period(days)
    return insight_input_build(period_start=start, period_end=end, **kwargs)


def reply(**overrides) -> InsightReply:
    return reply_parse(json.dumps(valid_reply(**overrides)))


# --- The aggregate ----------------------------------------------------------------------------


def test_aggregate__segments_trend_engagement__counted_per_segment():
    for i in range(3):
        add_events(
            f"ml.{i}",
            "ML_ENGINEER",
            [
                ("project_click", {"project_id": "llm-router"}),
                ("deep_read", {"project_id": "llm-router"}),
                ("skill_hover", {"skill_name": "PyTorch"}),
                ("section_view", {"section_name": "projects"}),
            ],
        )
    add_events("ml.old", "ML_ENGINEER", [("page_view", {})], days_ago=10)
    add_events("rec.1", "RECRUITER", [("download_resume", {})])
    add_events("anon.1", None, [("page_view", {})])

    data = build()

    assert data["totals"]["visitors"] == 5
    assert data["totals"]["events"] == 14
    assert data["totals"]["previous_visitors"] == 1
    segments = {row["segment"]: row for row in data["segments"]}
    assert segments["ML_ENGINEER"]["visitors"] == 3
    assert segments["ML_ENGINEER"]["share_pct"] == 60.0
    assert segments["ML_ENGINEER"]["previous_visitors"] == 1
    assert segments["ML_ENGINEER"]["change"] == 2
    assert segments["ML_ENGINEER"]["change_pct"] == 200.0
    assert segments["UNSEGMENTED"]["visitors"] == 1
    engagement = {row["segment"]: row for row in data["engagement"]}
    assert engagement["ML_ENGINEER"]["projects"] == [{"name": "llm-router", "count": 6}]
    assert engagement["ML_ENGINEER"]["skills"] == [{"name": "PyTorch", "count": 3}]
    assert engagement["ML_ENGINEER"]["sections"] == [{"name": "projects", "count": 3}]
    assert data["top_events"][0] == {"event_name": "deep_read", "count": 3}
    assert data["ga4"] is None


def test_aggregate__many_distinct_names__bounded_size_and_catalog_only():
    def noisy(count):
        for i in range(count):
            add_events(
                f"v.{count}.{i}",
                "CASUAL",
                [
                    (f"event_{i}", {}),
                    ("project_click", {"project_id": f"invented-{i}"}),
                    ("skill_hover", {"skill_name": f"Skill {i}"}),
                ],
            )

    noisy(20)
    small = len(json.dumps(build(top_n=10)))
    noisy(400)
    data = build(top_n=10)
    large = len(json.dumps(data))

    assert len(data["top_events"]) == 10
    assert large < small * 1.2
    assert large < 8000
    assert data["engagement"] == []  # none of the clicked names is in the catalog
    assert "invented-" not in json.dumps(data)


def test_aggregate_and_prompt__visitor_ids__never_included():
    secret_ids = ["GA1.2.987654321.1764400000", "person-jane-doe-42", "abc.123"]
    for uid in secret_ids:
        add_events(uid, "RECRUITER", [("download_resume", {}), ("contact_intent", {})])

    data = build()
    request = build_request(data, {"segments": ["RECRUITER"], "projects": [], "skills": []})

    serialized = json.dumps(data) + request.prompt + request.system
    for uid in secret_ids:
        assert uid not in serialized


def test_aggregate__ga4_rows__summed_without_page_paths():
    today = date.today()
    for day in (today - timedelta(days=1), today - timedelta(days=2)):
        GA4DailyAggregate.objects.create(
            property_id="1",
            date=day,
            event_name="page_view",
            page_path="/projects?email=jane@example.com",
            source="linkedin.com",
            medium="referral",
            event_count=40,
            total_users=9,
        )

    data = build()

    assert data["ga4"]["events"] == 80
    assert data["ga4"]["days_with_data"] == 2
    assert data["ga4"]["top_sources"] == [
        {"source": "linkedin.com", "medium": "referral", "count": 80}
    ]
    assert "jane@example.com" not in json.dumps(data)


# --- Schema -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("[1, 2]", "one JSON object"),
        ('{"summary": "x", "findings": []}', "findings"),
        ('{"summary": "x", "findings": [{"what": "a"}]}', "findings.0.why"),
        ('{"summary": 5, "findings": [' + json.dumps(FINDING) + "]}", "summary"),
    ],
)
def test_reply_parse__invalid__says_what_is_wrong(text, message):
    with pytest.raises(InvalidReply, match=message):
        reply_parse(text)


def test_reply_parse__fenced_json__accepted():
    assert reply_parse("```json\n" + valid_text() + "\n```").findings[0].what == FINDING["what"]


# --- Number verification --------------------------------------------------------------------------

AGGREGATE = {
    "totals": {"visitors": 1234, "events": 5678, "events_change_pct": 21.4},
    "segments": [{"segment": "ML_ENGINEER", "visitors": 12, "share_pct": 42.86, "change": -4}],
    "conversion": [{"segment": "RECRUITER", "personalized_rate_pct": 12.5, "lift_pp": 2.5}],
}


def verify(summary, **finding):
    return numbers_verify(reply(summary=summary, findings=[{**FINDING, **finding}]), AGGREGATE)


@pytest.mark.parametrize(
    "summary",
    [
        "1,234 visitors produced 5678 events, up 21.4% (about 21%).",
        "ML engineers are 42.9% of visitors (42.86 exactly, 43 rounded); 12 of them.",
        "ML engineers fell by 4; recruiters convert at 12.5%, a lift of 2.5 pp.",
        "Seen in GA4 on 2026-11-28 for ML_ENGINEER v2; the top 3 projects.",
    ],
)
def test_numbers_verify__quoted_from_the_data__all_match(summary):
    result = verify(summary)

    assert result["mismatched"] == 0, result["numbers"]


@pytest.mark.parametrize(
    ("summary", "bad"),
    [
        ("1,500 visitors came.", "1,500"),
        ("Conversion is 87% for recruiters.", "87%"),
        ("Events rose 21.9%.", "21.9%"),
        ("Share is 42.7%.", "42.7%"),
    ],
)
def test_numbers_verify__not_in_the_data__mismatch_named(summary, bad):
    result = verify(summary)

    assert result["mismatched"] == 1
    [mismatch] = [n for n in result["numbers"] if n["outcome"] == "mismatch"]
    assert mismatch["text"] == bad
    assert mismatch["where"] == "summary"


def test_numbers_verify__in_a_finding__checked_too():
    result = verify("Fine.", recommendation="Expect 3,333 more visitors.")

    assert result["mismatched"] == 1
    assert result["numbers"][0]["where"] == "findings.0.recommendation"


# --- Catalog filtering -----------------------------------------------------------------------

CATALOG = {
    "segments": ["ML_ENGINEER", "RECRUITER"],
    "sections": ["projects", "skills", "career"],
    "projects": ["llm-router", "shop-platform"],
    "skills": ["PyTorch", "React"],
}


def test_suggestions_filter__invented_names__dropped_and_reported():
    suggested = reply(
        suggested_rules=[
            {
                "segment": "ML_ENGINEER",
                "priority_sections": ["projects", "blog"],
                "featured_projects": ["llm-router", "quantum-blockchain"],
                "highlight_skills": ["pytorch", "COBOL"],
                "reasoning": "r",
            },
            {"segment": "ALIENS", "featured_projects": ["llm-router"]},
            {"segment": "RECRUITER", "featured_projects": ["made-up"]},
        ]
    )

    rules, dropped = suggestions_filter(suggested, CATALOG)

    assert rules == [
        {
            "segment": "ML_ENGINEER",
            "priority_sections": ["projects"],
            "featured_projects": ["llm-router"],
            "highlight_skills": ["PyTorch"],
            "reasoning": "r",
        }
    ]
    reported = {(d["segment"], d["field"], d["value"]) for d in dropped}
    assert reported >= {
        ("ML_ENGINEER", "priority_sections", "blog"),
        ("ML_ENGINEER", "featured_projects", "quantum-blockchain"),
        ("ML_ENGINEER", "highlight_skills", "COBOL"),
        ("ALIENS", "segment", "ALIENS"),
        ("RECRUITER", "featured_projects", "made-up"),
        ("RECRUITER", "rule", "RECRUITER"),
    }


def test_suggestions_filter__over_the_rule_limit__trimmed_and_reported():
    catalog = {**CATALOG, "sections": [f"s{i}" for i in range(12)]}
    suggested = reply(
        suggested_rules=[{"segment": "ML_ENGINEER", "priority_sections": catalog["sections"]}]
    )

    [rule], dropped = suggestions_filter(suggested, catalog)

    assert rule["priority_sections"] == [f"s{i}" for i in range(10)]
    assert [d["value"] for d in dropped] == ["s10", "s11"]


# --- The run -------------------------------------------------------------------------------------


def test_run__invented_items__dropped_items_stored_and_draft_only_real(llm_server):
    llm_server.queue(
        openai_ok(
            valid_text(
                suggested_rules=[
                    {
                        "segment": "ML_ENGINEER",
                        "priority_sections": ["projects"],
                        "featured_projects": ["llm-router", "hyperloop-ai"],
                        "highlight_skills": ["PyTorch"],
                        "reasoning": "ML readers.",
                    }
                ]
            )
        )
    )
    start, end = period()

    insight = insight_run(period_start=start, period_end=end)

    assert insight.dropped_items == [
        {
            "segment": "ML_ENGINEER",
            "field": "featured_projects",
            "value": "hyperloop-ai",
            "reason": "not in the catalog",
        }
    ]
    draft = insight.suggested_rule_objects.get()
    assert draft.featured_projects == ["llm-router"]
    assert insight.suggested_rules[0]["rule_id"] == draft.pk


def test_run__drafts__llm_source_next_version_and_nothing_goes_live(llm_server):
    llm_server.queue(openai_ok(valid_text()))
    active = PersonalizationRule.objects.get(segment__code="ML_ENGINEER", status="active")
    ruleset = RuleSetVersion.objects.get().version
    start, end = period()

    insight = insight_run(period_start=start, period_end=end)

    draft = insight.suggested_rule_objects.get()
    assert (draft.status, draft.source) == (RuleStatus.DRAFT, RuleSource.LLM)
    assert draft.version == active.version + 1
    assert draft.segment.code == "ML_ENGINEER"
    assert draft.created_by == "llm:openai_compatible"
    active.refresh_from_db()
    assert active.status == RuleStatus.ACTIVE
    assert RuleSetVersion.objects.get().version == ruleset


def test_run__auto_activate_on__verified_drafts_activated_through_the_service(llm_server, settings):
    settings.LLM_AUTO_ACTIVATE = True
    llm_server.queue(openai_ok(valid_text()))
    previous = PersonalizationRule.objects.get(segment__code="ML_ENGINEER", status="active")
    start, end = period()

    insight = insight_run(period_start=start, period_end=end)

    draft = insight.suggested_rule_objects.get()
    assert draft.status == RuleStatus.ACTIVE
    assert draft.activated_at is not None
    previous.refresh_from_db()
    assert previous.status == RuleStatus.ARCHIVED


def test_run__auto_activate_but_unverified__stays_draft(llm_server, settings):
    settings.LLM_AUTO_ACTIVATE = True
    llm_server.queue(openai_ok(valid_text(summary="Traffic grew to 98,765 visitors.")))
    start, end = period()

    insight = insight_run(period_start=start, period_end=end)

    assert insight.status == InsightStatus.UNVERIFIED
    assert insight.verification["mismatched"] == 1
    assert insight.suggested_rule_objects.get().status == RuleStatus.DRAFT


def test_run__quoted_numbers_from_the_data__ok(llm_server):
    add_events("ml.1", "ML_ENGINEER", [("project_click", {"project_id": "llm-router"})] * 7)
    llm_server.queue(openai_ok(valid_text(summary="7 events from 1 visitor; ML_ENGINEER 100%.")))
    start, end = period()

    insight = insight_run(period_start=start, period_end=end)

    assert insight.status == InsightStatus.OK
    assert insight.verification["checked"] >= 1
    assert insight.verification["mismatched"] == 0


def test_run__same_period_again__no_second_call_and_no_duplicate_drafts(llm_server):
    llm_server.default = openai_ok(valid_text())
    start, end = period()

    first = insight_run(period_start=start, period_end=end)
    again = insight_run(period_start=start, period_end=end)

    assert again.pk == first.pk
    assert len(llm_server.requests) == 1
    assert LLMInsight.objects.count() == 1
    assert PersonalizationRule.objects.filter(source=RuleSource.LLM).count() == 1


def test_run__suggestion_equal_to_a_pending_draft__no_new_draft(llm_server):
    llm_server.default = openai_ok(valid_text())
    start, end = period()
    insight_run(period_start=start, period_end=end)

    second = insight_run(period_start=start - timedelta(days=1), period_end=end)

    assert second.suggested_rule_objects.count() == 0
    assert second.suggested_rules[0]["rule_id"] is None
    assert "same as rule" in second.suggested_rules[0]["note"]


def test_run__offline_with_conversion_and_ga4__verifies(settings):
    settings.LLM_PROVIDERS = ["offline"]
    for i in range(30):
        events = [("project_click", {"project_id": "shop-platform"})]
        if i % 3 == 0:
            events.append(("contact_intent", {"contact_type": "email"}))
        add_events(f"fs.{i}", "FULLSTACK_DEV", events)
    GA4DailyAggregate.objects.create(
        property_id="1",
        date=date.today() - timedelta(days=1),
        event_name="page_view",
        source="google",
        medium="organic",
        event_count=321,
    )
    start, end = period()

    insight = insight_run(period_start=start, period_end=end)

    assert insight.provider == "offline"
    assert insight.status == InsightStatus.OK, insight.verification
    assert insight.verification["checked"] >= 5
    assert len(insight.findings) >= 4
    assert all(set(f) == {"what", "why", "so_what", "recommendation"} for f in insight.findings)


def test_run__aggregate_fails__failed_insight_then_a_rerun_replaces_it(settings, monkeypatch):
    settings.LLM_PROVIDERS = ["offline"]
    start, end = period()
    settings.LLM_INSIGHTS_TOP_N = "not a number"  # the aggregate query cannot be built

    failed = insight_run(period_start=start, period_end=end)
    settings.LLM_INSIGHTS_TOP_N = 10
    rerun = insight_run(period_start=start, period_end=end)

    assert failed.status == InsightStatus.FAILED
    assert failed.error
    assert rerun.status == InsightStatus.OK
    assert LLMInsight.objects.get().pk == rerun.pk


def test_drafts_approve__activates_through_rule_activate(llm_server):
    llm_server.queue(openai_ok(valid_text()))
    start, end = period()
    insight = insight_run(period_start=start, period_end=end)
    ruleset = RuleSetVersion.objects.get().version

    [rule] = insight_drafts_approve(insight=insight, actor="root")

    rule.refresh_from_db()
    assert rule.status == RuleStatus.ACTIVE
    assert RuleSetVersion.objects.get().version > ruleset
    assert PersonalizationRule.objects.filter(segment=rule.segment, status="active").count() == 1


@pytest.mark.parametrize("parse", [reply_parse, opinions_parse])
@pytest.mark.parametrize("depth", [33, 1_000, 100_000])
def test_reply_parse__nested_past_the_limit__invalid_reply_not_recursion_error(parse, depth):
    """A provider's reply is outside input: nested thousands deep, json.loads would raise
    RecursionError and fail the whole analysis instead of retrying or moving on."""
    text = '{"summary": ' + "[" * depth + "]" * depth + "}"
    with pytest.raises(InvalidReply, match="nests deeper than 32 levels"):
        parse(text)


@hypothesis.settings(max_examples=60, deadline=None)
@hypothesis.given(depth=st.integers(1, 5_000), opener=st.sampled_from(["[", '{"a":']))
def test_reply_parse__any_nesting__invalid_reply_never_recursion_error(depth, opener):
    closer = "]" if opener == "[" else "}"
    text = '{"summary": ' + opener * depth + "1" + closer * depth + "}"
    for parse in (reply_parse, opinions_parse):
        with pytest.raises(InvalidReply):  # never RecursionError, whatever the depth
            parse(text)
