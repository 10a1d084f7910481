"""Writes for LLM insights: run an analysis of a period, store it with its draft rules, approve
drafts. Rule changes always go through `services.rule_activate` (it audits and bumps)."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Count
from django.utils import timezone

from analytics.models import Event

from .insights import ENGAGEMENT, catalog_names, insight_input_build
from .llm.chain import NoProviderAnswered, generate
from .llm.prompt import PROMPT_VERSION, build_request
from .llm.providers import providers_from_settings
from .llm.second_opinion import PROMPT_VERSION as OPINION_PROMPT_VERSION
from .llm.second_opinion import opinion_request, opinions_parse
from .llm.verify import numbers_verify, suggestions_filter
from .models import (
    InsightStatus,
    LLMInsight,
    PersonalizationRule,
    RuleSource,
    RuleStatus,
    Segment,
    VisitorProfile,
)
from .services import rule_activate, rule_next_version

logger = logging.getLogger(__name__)

LLM_ACTOR = "llm"


def insight_period(*, days: int, end: datetime | None = None) -> tuple[datetime, datetime]:
    """The `days` before `end`; by default before today's midnight UTC, so a scheduled run and
    its redelivery name the same period."""
    if end is None:
        end = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0)
    return end - timedelta(days=days), end


def insight_run(*, period_start: datetime, period_end: datetime) -> LLMInsight:
    """Analyse a period and store the insight with its draft rules, once per period: a run
    that finds the period already analysed (a redelivered task) returns that insight."""
    existing = LLMInsight.objects.filter(period_start=period_start, period_end=period_end).first()
    if existing is not None and existing.status != InsightStatus.FAILED:
        return existing
    try:
        aggregate = insight_input_build(period_start=period_start, period_end=period_end)
        catalog = catalog_names()
        generation = generate(build_request(aggregate, catalog), providers_from_settings())
    except Exception as exc:
        logger.exception("llm.insight_failed")
        return _store_failure(period_start, period_end, exc)
    rules, dropped = suggestions_filter(generation.reply, catalog)
    verification = numbers_verify(generation.reply, aggregate)
    status = InsightStatus.UNVERIFIED if verification["mismatched"] else InsightStatus.OK
    fields: dict[str, Any] = {
        "provider": generation.provider,
        "model": generation.model[:100],
        "status": status,
        "summary": generation.reply.summary,
        "findings": [f.model_dump() for f in generation.reply.findings],
        "dropped_items": dropped,
        "verification": verification,
        "prompt_tokens": generation.prompt_tokens,
        "completion_tokens": generation.completion_tokens,
        "latency_ms": generation.latency_ms,
        "prompt_version": PROMPT_VERSION,
        "attempts": generation.attempts,
        "error": generation.error,
    }
    try:
        with transaction.atomic():
            LLMInsight.objects.filter(
                period_start=period_start, period_end=period_end, status=InsightStatus.FAILED
            ).delete()
            insight = LLMInsight.objects.create(
                period_start=period_start, period_end=period_end, **fields
            )
            insight.suggested_rules = _drafts_create(insight, rules)
            insight.save(update_fields=["suggested_rules"])
    except IntegrityError:
        # A concurrent run of the same period committed first: its insight is the one.
        winner = LLMInsight.objects.filter(period_start=period_start, period_end=period_end)
        if not winner.exists():
            raise
        return winner.get()
    if settings.LLM_AUTO_ACTIVATE and status == InsightStatus.OK:
        for rule in insight.suggested_rule_objects.filter(status=RuleStatus.DRAFT):
            rule_activate(rule=rule, actor=f"{LLM_ACTOR}:auto")
    logger.info(
        "llm.insight_stored",
        extra={"insight_id": insight.pk, "provider": insight.provider, "status": status},
    )
    return insight


def _store_failure(period_start: datetime, period_end: datetime, exc: Exception) -> LLMInsight:
    insight, _ = LLMInsight.objects.update_or_create(
        period_start=period_start,
        period_end=period_end,
        defaults={
            "provider": "",
            "status": InsightStatus.FAILED,
            "prompt_version": PROMPT_VERSION,
            "error": f"{type(exc).__name__}: {exc}"[:1000],
        },
    )
    return insight


def _drafts_create(insight: LLMInsight, rules: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A draft rule per suggestion, unless it repeats the segment's active rule or a pending
    draft. Returns the suggestions annotated with what became of them."""
    segments = {s.code: s for s in Segment.objects.filter(code__in=[r["segment"] for r in rules])}
    fields = ("priority_sections", "featured_projects", "highlight_skills")
    annotated = []
    for rule in rules:
        segment = segments[rule["segment"]]
        same = [
            r
            for r in segment.rules.filter(status__in=[RuleStatus.ACTIVE, RuleStatus.DRAFT])
            if all(getattr(r, f) == rule[f] for f in fields)
        ]
        if same:
            annotated.append({**rule, "rule_id": None, "note": f"same as rule v{same[0].version}"})
            continue
        draft = PersonalizationRule.objects.create(
            segment=segment,
            version=rule_next_version(segment=segment),
            status=RuleStatus.DRAFT,
            source=RuleSource.LLM,
            priority_sections=rule["priority_sections"],
            featured_projects=rule["featured_projects"],
            highlight_skills=rule["highlight_skills"],
            reasoning=rule["reasoning"],
            created_by=f"{LLM_ACTOR}:{insight.provider}"[:150],
            insight=insight,
        )
        annotated.append({**rule, "rule_id": draft.pk, "version": draft.version})
    return annotated


def insight_drafts_approve(*, insight: LLMInsight, actor: str) -> list[PersonalizationRule]:
    """Activate the insight's draft rules, one per segment, through `rule_activate`."""
    approved = []
    with transaction.atomic():
        for rule in insight.suggested_rule_objects.filter(status=RuleStatus.DRAFT).select_related(
            "segment"
        ):
            approved.append(rule_activate(rule=rule, actor=actor))
    return approved


# --- Second opinions on ambiguous visitors ----------------------------------------------------


def second_opinions_run(*, period_start: datetime, period_end: datetime) -> int:
    """Ask a remote LLM about the period's least confident visitors and record its answer
    beside theirs. Off unless LLM_SECOND_OPINION_BELOW is set; no remote provider, no
    opinion (the offline analyzer has none to give). Returns how many were recorded."""
    threshold = settings.LLM_SECOND_OPINION_BELOW
    providers = [p for p in providers_from_settings() if p.remote and p.configured()]
    if threshold <= 0 or not providers:
        return 0
    active = Event.objects.filter(occurred_at__gte=period_start, occurred_at__lt=period_end).values(
        "user_pseudo_id"
    )
    profiles = list(
        VisitorProfile.objects.filter(user_pseudo_id__in=active, confidence__lt=threshold)
        .order_by("confidence", "pk")
        .only("pk", "user_pseudo_id", "segment", "confidence", "scores", "version")[
            : settings.LLM_SECOND_OPINION_MAX_VISITORS
        ]
    )
    if not profiles:
        return 0
    # Visitors are known to the model only by a reference local to this call.
    refs = {f"v{i + 1}": profile for i, profile in enumerate(profiles)}
    visitors = [
        visitor_activity(profile.user_pseudo_id, period_start, period_end)
        | {"ref": ref, "scores": profile.scores}
        for ref, profile in refs.items()
    ]
    segments = list(Segment.objects.values("code", "description"))
    try:
        generation = generate(opinion_request(visitors, segments), providers, parse=opinions_parse)
    except NoProviderAnswered:
        logger.warning("llm.second_opinion_unanswered")
        return 0
    codes = {s["code"] for s in segments}
    recorded = 0
    for opinion in generation.reply.opinions:
        profile = refs.get(opinion.ref)
        if profile is None or opinion.segment not in codes:
            continue
        # update(), not save(): a re-segmentation running now must not be overwritten.
        VisitorProfile.objects.filter(pk=profile.pk).update(
            second_opinion={
                "segment": opinion.segment,
                "confidence": round(opinion.confidence, 4),
                "reason": opinion.reason,
                "agrees": opinion.segment == profile.segment,
                "deterministic_segment": profile.segment,
                "for_version": profile.version,
                "provider": generation.provider,
                "model": generation.model[:100],
                "prompt_version": OPINION_PROMPT_VERSION,
                "at": timezone.now().isoformat(),
            }
        )
        recorded += 1
    return recorded


def visitor_activity(uid: str, period_start: datetime, period_end: datetime) -> dict[str, Any]:
    """What one visitor did in the period: event counts and catalog items, no id."""
    events = Event.objects.filter(
        user_pseudo_id=uid, occurred_at__gte=period_start, occurred_at__lt=period_end
    )
    counts = events.values("event_name").order_by().annotate(n=Count("id")).order_by("-n")[:10]
    catalog = catalog_names()
    touched: dict[str, dict[str, int]] = {"projects": {}, "skills": {}, "sections": {}}
    for kind, names, param in ENGAGEMENT:
        for params in events.filter(event_name__in=names).values_list("event_params", flat=True):
            item = (params or {}).get(param)
            if isinstance(item, str) and item in catalog[kind]:
                touched[kind][item] = touched[kind].get(item, 0) + 1
    return {
        "events": {row["event_name"]: row["n"] for row in counts},
        **{
            kind: sorted(items, key=lambda name: -items[name])[:5]
            for kind, items in touched.items()
        },
    }
