"""Reads of the personalization app: the scoring model, rules, profiles, conversion."""

from __future__ import annotations

import hashlib
import json
import logging
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from django.conf import settings
from django.db.models import Count, Exists, OuterRef, QuerySet, TextField
from django.db.models.functions import Cast
from django.utils import timezone

from analytics.consent import profiling_denied_q
from analytics.models import Event, Visitor
from ops.metrics import SIGNAL_CONDITION_ERRORS

from . import cache as p13n_cache
from .models import (
    PersonalizationRule,
    Project,
    RuleSetVersion,
    RuleStatus,
    Segment,
    Signal,
    Skill,
    VisitorProfile,
)
from .scoring import (
    CASUAL,
    CatalogTags,
    EventView,
    ScoringModel,
    SegmentSpec,
    SignalSpec,
    explanation,
    score_visitor,
)

CONVERSION_EVENTS = ("contact_intent", "download_resume")

logger = logging.getLogger(__name__)


def ruleset_state() -> tuple[int, str]:
    """(version, changed_at): the number the cache compares, and the moment that makes it
    unique even if the counter is ever reset (a database restored from backup)."""
    row = RuleSetVersion.objects.order_by("pk").first()
    return (row.version, row.changed_at.isoformat()) if row else (0, "")


_model_cache: dict[str, Any] = {"version": None, "model": None}


def scoring_model_get() -> ScoringModel:
    """The scoring model from admin-edited data, rebuilt when the rule-set version moves
    (every segment, signal, catalog or rule edit bumps it)."""
    version = ruleset_state()
    if _model_cache["version"] != version or _model_cache["model"] is None:
        _model_cache["model"] = scoring_model_build()
        _model_cache["version"] = version
    return _model_cache["model"]


def scoring_model_build() -> ScoringModel:
    segments = [
        SegmentSpec(
            code=s.code,
            name=s.name,
            prior=s.prior,
            description=s.description,
            recommendation=s.recommendation,
            topic_tags=tuple(s.topic_tags or ()),
        )
        for s in Segment.objects.all()
    ]
    signals = [
        SignalSpec(
            id=s.pk,
            segment=s.segment.code,
            label=s.label,
            event_name=s.event_name,
            # Whatever the row holds: the model checks it and skips the signal if broken.
            conditions=tuple(s.conditions) if isinstance(s.conditions, list) else s.conditions,
            weight=s.weight,
            cap=s.cap,
            half_life_days=s.half_life_days,
        )
        for s in Signal.objects.filter(is_active=True).select_related("segment").order_by("pk")
    ]
    catalog = CatalogTags(
        projects=dict(Project.objects.filter(is_active=True).values_list("slug", "tags")),
        skills=dict(Skill.objects.values_list("name", "tags")),
    )
    model = ScoringModel(
        segments=segments,
        signals=signals,
        catalog=catalog,
        temperature=settings.SCORING_TEMPERATURE,
        min_events=settings.SCORING_MIN_EVENTS,
        on_condition_error=_condition_failed,
    )
    for signal_id, problems in model.broken.items():
        SIGNAL_CONDITION_ERRORS.labels(str(signal_id)).inc()
        _report_once("p13n.signal.condition_broken", signal_id, "; ".join(problems))
    for clamped in model.clamped:  # a number saved before the admin's bounds, or by raw SQL
        _report_once("p13n.scoring.number_clamped", 0, clamped)
    return model


_reported: set[tuple[str, int, str]] = set()  # what this process has logged already


def _report_once(event: str, signal_id: int, detail: str) -> None:
    """Log a broken signal (or, id 0, a clamped number) once per process and problem, not on
    every model build or event."""
    key = (event, signal_id, detail[:200])
    if key in _reported or len(_reported) > 1000:
        return
    _reported.add(key)
    logger.error(event, extra={"signal_id": signal_id, "error": detail[:500]})


def _condition_failed(signal: SignalSpec, exc: Exception) -> None:
    SIGNAL_CONDITION_ERRORS.labels(str(signal.id)).inc()
    _report_once("p13n.signal.condition_failed", signal.id, type(exc).__name__)


def stale_visitor_ids(*, limit: int) -> list[str]:
    """Visitors whose profile is missing or counts other than their events: their
    re-segmentation was never queued (broker down), lost, or retention removed events. Most
    recently seen first; visitors who denied profiling never."""
    return list(stale_visitors(limit=limit))


def stale_visitors(*, limit: int) -> QuerySet[Visitor, str]:
    up_to_date = VisitorProfile.objects.filter(
        user_pseudo_id=OuterRef("user_pseudo_id"), event_count=OuterRef("event_count")
    )
    return (
        Visitor.objects.filter(event_count__gt=0)
        .exclude(Exists(up_to_date))
        # Not exclude(q) itself: a visitor without the trait makes q NULL, and NOT NULL drops it.
        .exclude(pk__in=Visitor.objects.filter(profiling_denied_q()).values("pk"))
        .order_by("-last_seen")
        .values_list("user_pseudo_id", flat=True)[:limit]
    )


def orphaned_profile_ids(*, limit: int) -> list[str]:
    """Profiles whose visitor no longer exists: left by retention before it deleted them
    with their visitor. None are made any more; the sweep removes the ones there are."""
    visitor = Visitor.objects.filter(user_pseudo_id=OuterRef("user_pseudo_id"))
    return list(
        VisitorProfile.objects.filter(~Exists(visitor))
        .order_by()
        .values_list("user_pseudo_id", flat=True)[:limit]
    )


def visitor_events(*, user_pseudo_id: str) -> list[EventView]:
    return visitors_events(user_pseudo_ids=[user_pseudo_id]).get(user_pseudo_id, [])


def scoring_events(
    events: QuerySet[Event], *, chunk_size: int | None = None
) -> Iterator[tuple[str, EventView]]:
    """(user_pseudo_id, what scoring reads of the event) for each row, in the queryset's order;
    with `chunk_size`, streamed through a server-side cursor instead of read at once.

    Params and times come as text, read by orjson and datetime.fromisoformat: Django decodes
    JSON with the stdlib and times with a Python loader, together a third of a full
    recompute's time. An integer past 64 bits in params takes the stdlib path.
    """
    rows = events.annotate(
        params_text=Cast("event_params", TextField()), at_text=Cast("occurred_at", TextField())
    ).values_list("user_pseudo_id", "event_name", "params_text", "at_text", "page_referrer")
    for uid, name, params, at, referrer in (
        rows.iterator(chunk_size=chunk_size) if chunk_size else rows
    ):
        yield uid, EventView(name, _params_load(params), _at_load(at), referrer)


def _at_load(text: str) -> datetime:
    # PostgreSQL writes "2025-11-29 07:06:40.123456+00" (the connection's zone is UTC); SQLite
    # keeps UTC without an offset.
    at = datetime.fromisoformat(text)
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def _params_load(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    try:
        params = orjson.loads(text)
    except orjson.JSONDecodeError:
        params = json.loads(text)
    return params or {}


def visitors_events(*, user_pseudo_ids: list[str]) -> dict[str, list[EventView]]:
    """Every event of these visitors, by visitor, in one query (the (user_pseudo_id,
    occurred_at) index serves it); visitors without events are absent."""
    events = Event.objects.filter(user_pseudo_id__in=user_pseudo_ids).order_by(
        "user_pseudo_id",
        "occurred_at",  # the full recompute's order: same sums
    )
    by_visitor: dict[str, list[EventView]] = defaultdict(list)
    for uid, event in scoring_events(events):
        by_visitor[uid].append(event)
    return by_visitor


def variant_for(user_pseudo_id: str) -> str:
    """Stable per visitor: the same id always lands in the same arm."""
    digest = hashlib.sha256(f"{settings.PERSONALIZATION_HOLDOUT_SALT}:{user_pseudo_id}".encode())
    bucket = int.from_bytes(digest.digest()[:8], "big") % 10_000
    return "holdout" if bucket < settings.PERSONALIZATION_HOLDOUT_PERCENT * 100 else "personalized"


@dataclass(frozen=True)
class RuleView:
    segment: str
    version: int
    priority_sections: list[str]
    featured_projects: list[str]
    highlight_skills: list[str]
    reasoning: str


def active_rules() -> dict[str, RuleView]:
    """Active rule per segment, with empty project/skill lists filled from the catalog by the
    segment's topic tags."""
    projects = list(Project.objects.filter(is_active=True).values_list("slug", "tags"))
    skills = list(Skill.objects.values_list("name", "tags"))
    return {
        rule.segment.code: _rule_view(rule, projects, skills)
        for rule in PersonalizationRule.objects.filter(status=RuleStatus.ACTIVE).select_related(
            "segment"
        )
    }


def _rule_view(
    rule: PersonalizationRule,
    projects: list[tuple[str, list[str]]],
    skills: list[tuple[str, list[str]]],
) -> RuleView:
    topics = {t.lower() for t in rule.segment.topic_tags or ()}
    return RuleView(
        segment=rule.segment.code,
        version=rule.version,
        priority_sections=list(rule.priority_sections),
        featured_projects=list(rule.featured_projects)
        or _by_topic(projects, topics, settings.PERSONALIZATION_FEATURED_PROJECTS),
        highlight_skills=list(rule.highlight_skills)
        or _by_topic(skills, topics, settings.PERSONALIZATION_HIGHLIGHT_SKILLS),
        reasoning=rule.reasoning,
    )


def rule_preview(*, rule: PersonalizationRule, user_pseudo_id: str) -> dict[str, Any]:
    """What the visitor would be served if `rule` (a draft, say) were its segment's active
    rule; built from the database, the cache untouched."""
    projects = list(Project.objects.filter(is_active=True).values_list("slug", "tags"))
    skills = list(Skill.objects.values_list("name", "tags"))
    rules = dict(active_rules())
    rules[rule.segment.code] = _rule_view(rule, projects, skills)
    return personalization_build(
        user_pseudo_id=user_pseudo_id,
        profile=profile_get(user_pseudo_id=user_pseudo_id),
        rules=rules,
    )


def _by_topic(items: list[tuple[str, list[str]]], topics: set[str], limit: int) -> list[str]:
    if not topics:
        return []
    scored = [(len(topics & {t.lower() for t in tags or ()}), name) for name, tags in items]
    return [name for overlap, name in sorted(scored, key=lambda x: (-x[0], x[1])) if overlap][
        :limit
    ]


EMPTY_RULE = RuleView(CASUAL, 0, [], [], [], "")


def profile_get(*, user_pseudo_id: str) -> VisitorProfile | None:
    return VisitorProfile.objects.filter(user_pseudo_id=user_pseudo_id).first()


def visitor_exists(*, user_pseudo_id: str) -> bool:
    return Visitor.objects.filter(user_pseudo_id=user_pseudo_id).exists()


def conversion_by_variant() -> dict[str, dict[str, dict[str, float]]]:
    """Per segment and arm: visitors, converted visitors (contact_intent or download_resume)
    and the rate, so the owner can see whether personalization changes behaviour."""
    converted = set(
        Event.objects.filter(event_name__in=CONVERSION_EVENTS)
        .values_list("user_pseudo_id", flat=True)
        .distinct()
    )
    table: dict[str, dict[str, dict[str, float]]] = defaultdict(
        lambda: {
            arm: {"visitors": 0, "converted": 0, "rate": 0.0} for arm in ("personalized", "holdout")
        }
    )
    for uid, segment in VisitorProfile.objects.values_list("user_pseudo_id", "segment").iterator():
        cell = table[segment][variant_for(uid)]
        cell["visitors"] += 1
        cell["converted"] += uid in converted
    for arms in table.values():
        for cell in arms.values():
            cell["rate"] = (
                round(cell["converted"] / cell["visitors"], 4) if cell["visitors"] else 0.0
            )
    return dict(table)


def segment_counts() -> dict[str, int]:
    """Visitors per segment, every defined segment present."""
    counts = dict.fromkeys(Segment.objects.values_list("code", flat=True), 0)
    rows = VisitorProfile.objects.values("segment").order_by().annotate(n=Count("id"))
    for row in rows:
        counts[row["segment"]] = row["n"]
    return counts


# --- The personalization answer ----------------------------------------------------------------

_rules_cache: dict[str, Any] = {"version": None, "rules": None}


def _rules_for(ruleset: tuple[int, str]) -> dict[str, RuleView]:
    if _rules_cache["version"] != ruleset or _rules_cache["rules"] is None:
        _rules_cache["rules"] = active_rules()
        _rules_cache["version"] = ruleset
    return _rules_cache["rules"]


def process_caches_clear() -> None:
    """Forget the in-process scoring model and rules (tests roll the database back under them)."""
    _model_cache.update(version=None, model=None)
    _rules_cache.update(version=None, rules=None)
    p13n_cache.local_responses_clear()


def _iso(moment: Any) -> str | None:
    return moment.isoformat().replace("+00:00", "Z") if moment else None


def personalization_build(
    *,
    user_pseudo_id: str,
    profile: VisitorProfile | None,
    rules: dict[str, RuleView],
    model: ScoringModel | None = None,
    variant: str | None = None,
) -> dict[str, Any]:
    """The answer; `variant` (default: the visitor's own) builds the answer unknown visitors
    share."""
    if profile is None:
        model = model or scoring_model_get()
        decision = score_visitor(model, [], now=timezone.now())
        segments = {s.code: s for s in model.segments}
        segment, confidence = decision.segment, decision.confidence
        scores = {code: round(value, 6) for code, value in decision.scores.items()}
        why = explanation(decision, segments)
        why["what"] = "No events from this visitor yet: the default experience applies."
        segmented_at = None
    else:
        segment, confidence, scores = profile.segment, profile.confidence, profile.scores
        why, segmented_at = profile.explanation, _iso(profile.computed_at)
    variant = variant or variant_for(user_pseudo_id)
    default = rules.get(CASUAL, EMPTY_RULE)
    rule = default if variant == "holdout" else rules.get(segment, default)
    return {
        "user_id": user_pseudo_id,
        "segment": segment,
        "confidence": round(confidence, 4),
        "scores": scores,
        "priority_sections": rule.priority_sections,
        "featured_projects": rule.featured_projects,
        "highlight_skills": rule.highlight_skills,
        "reasoning": rule.reasoning,
        "explanation": why,
        "variant": variant,
        "rule_version": rule.version,
        "segmented_at": segmented_at,
    }


def personalization_encode(
    *,
    user_pseudo_id: str,
    profile: VisitorProfile | None,
    rules: dict[str, RuleView],
    variant: str | None = None,
) -> bytes:
    """The response body the API serves and the cache keeps."""
    body = personalization_build(
        user_pseudo_id=user_pseudo_id, profile=profile, rules=rules, variant=variant
    )
    return json.dumps(body, separators=(",", ":")).encode()


VARIANTS = ("personalized", "holdout")


def anonymous_responses(*, rules: dict[str, RuleView]) -> dict[str, bytes]:
    """The answers of a visitor without events, per variant, with an empty id: what every
    unknown visitor shares."""
    return {
        variant: personalization_encode(
            user_pseudo_id="", profile=None, rules=rules, variant=variant
        )
        for variant in VARIANTS
    }


def personalization_responses(
    profiles: list[VisitorProfile],
) -> tuple[int, dict[str, bytes]]:
    """(rule-set version, response bytes by visitor): what re-segmentation pre-warms the cache
    with, so a visitor's next request after new events is still a hit."""
    state = ruleset_state()
    rules = _rules_for(state)
    return state[0], {
        p.user_pseudo_id: personalization_encode(
            user_pseudo_id=p.user_pseudo_id, profile=p, rules=rules
        )
        for p in profiles
    }


DEGRADED_WHAT = "Personalization is unavailable right now: the default experience applies."


def personalization_degraded(*, user_pseudo_id: str) -> bytes:
    """The default (CASUAL) answer, built without the database for while it is unreachable:
    from the scoring model and rules this process last loaded, or with an empty CASUAL rule
    in a process that never reached the database. Never cached: the next request tries the
    database again."""
    model, rules = _model_cache["model"], _rules_cache["rules"] or {}
    if model is not None:
        body = personalization_build(
            user_pseudo_id=user_pseudo_id, profile=None, rules=rules, model=model
        )
    else:
        rule = rules.get(CASUAL, EMPTY_RULE)
        body = {
            "user_id": user_pseudo_id,
            "segment": CASUAL,
            "confidence": 1.0,
            "scores": {CASUAL: 1.0},
            "priority_sections": rule.priority_sections,
            "featured_projects": rule.featured_projects,
            "highlight_skills": rule.highlight_skills,
            "reasoning": rule.reasoning,
            "explanation": {
                "why": "",
                "so_what": "",
                "recommendation": "",
                "priors": {},
                "contributions": [],
            },
            "variant": variant_for(user_pseudo_id),
            "rule_version": rule.version,
            "segmented_at": None,
        }
    body["explanation"]["what"] = DEGRADED_WHAT
    return json.dumps(body, separators=(",", ":")).encode()


_UNREAD: Any = object()


def personalization_get(*, user_pseudo_id: str) -> bytes:
    """The hot path, as the response's JSON bytes: one cache round trip and no encoding on a
    hit; the database on a miss or a cache outage. A visitor without events gets the shared
    answer and leaves nothing behind, in Redis or the database."""
    found = p13n_cache.lookup(user_pseudo_id)
    if found.response is not None:
        return found.response
    profile = _UNREAD
    if found.anonymous is not None and found.profile_version is None:
        # No version cached: a visitor without events, or one whose keys were evicted. Only
        # the database can tell (one indexed query).
        profile = profile_get(user_pseudo_id=user_pseudo_id)
        variant = variant_for(user_pseudo_id)
        if profile is None and variant in found.anonymous:
            return p13n_cache.anonymous_response(
                user_pseudo_id,
                answers=found.anonymous,
                variant=variant,
                generation=found.generation,
            )
        p13n_cache.count_miss()
    state = ruleset_state()
    ruleset = state[0]
    if profile is _UNREAD:
        profile = profile_get(user_pseudo_id=user_pseudo_id)
    rules = _rules_for(state)
    response = personalization_encode(user_pseudo_id=user_pseudo_id, profile=profile, rules=rules)
    if found.failed:
        return response
    # Re-publish versions the cache lost or never got, or every later lookup would miss.
    if found.ruleset not in (None, ruleset):
        p13n_cache.publish_ruleset(ruleset)
    if profile is None:
        if found.profile_version is not None:
            # Keys of an erased profile, or written for an unknown visitor by an older release.
            p13n_cache.forget_visitor(user_pseudo_id)
        p13n_cache.store_anonymous(ruleset=ruleset, responses=anonymous_responses(rules=rules))
        return response
    if found.profile_version not in (None, profile.version):
        p13n_cache.publish_profile_version(user_pseudo_id, profile.version)
    p13n_cache.store(
        user_pseudo_id, response=response, ruleset=ruleset, profile_version=profile.version
    )
    return response
