"""Writes to the personalization app's tables."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.core.cache import cache as djcache
from django.db import InterfaceError, OperationalError, transaction
from django.utils import timezone

from analytics.consent import denied_visitor_ids
from analytics.models import Visitor
from analytics.services import visitor_erase
from ops.erasure import visitor_hash
from ops.metrics import VISITORS_SEGMENTED
from portfolio.db import bulk_upsert

from . import cache, demo_catalog
from .models import (
    PersonalizationRule,
    Project,
    RuleChange,
    RuleChangeAction,
    RuleSetVersion,
    RuleSource,
    RuleStatus,
    Section,
    Segment,
    Skill,
    VisitorProfile,
)
from .scoring import Decision, ScoringModel, explanation, score_visitor
from .selectors import personalization_responses, scoring_model_get, visitors_events

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CatalogCounts:
    sections: int
    projects: int
    skills: int


@transaction.atomic
def catalog_load_demo() -> CatalogCounts:
    """Create or refresh the demo catalog by its natural keys; safe to run again."""
    for section in demo_catalog.SECTIONS:
        Section.objects.update_or_create(slug=section["slug"], defaults=dict(section))
    for project in demo_catalog.PROJECTS:
        Project.objects.update_or_create(slug=project["slug"], defaults=dict(project))
    for skill in demo_catalog.SKILLS:
        Skill.objects.update_or_create(name=skill["name"], defaults={"tags": skill["tags"]})
    ruleset_bump()  # topics feed scoring and featured lists
    return CatalogCounts(
        sections=Section.objects.count(),
        projects=Project.objects.count(),
        skills=Skill.objects.count(),
    )


# --- Segmentation ------------------------------------------------------------------------------


def visitor_resegment(*, user_pseudo_id: str, now: datetime | None = None) -> VisitorProfile | None:
    """Score one visitor from all its events and store the profile; None if it has no events
    (or denied profiling)."""
    return visitors_resegment(user_pseudo_ids=[user_pseudo_id], now=now).get(user_pseudo_id)


PROFILE_CHANGE_FIELDS = ("segment", "scores", "explanation", "event_count")
PROFILE_WRITE_FIELDS = [  # what profile_fields sets: every re-segmentation rewrites them
    "segment",
    "confidence",
    "scores",
    "raw_scores",
    "explanation",
    "event_count",
    "computed_at",
    "model_version",
]


def visitors_resegment(
    *, user_pseudo_ids: Sequence[str], now: datetime | None = None
) -> dict[str, VisitorProfile]:
    """Score a batch of visitors from all their events and store their profiles: one query for
    consent, one for the events, one short transaction for the writes, whatever the batch size.

    A profile's version goes up only when its answer changes. After commit the new versions
    and the rebuilt responses go to the cache, so the visitor's next personalization request
    is a hit that already reflects the new events.
    """
    now = now or timezone.now()
    ids = sorted(set(user_pseudo_ids))  # one lock order for every batch: no deadlocks
    denied = denied_visitor_ids(ids)
    for uid in sorted(denied):
        _profile_forget(uid)
    model = scoring_model_get()
    events = visitors_events(user_pseudo_ids=[uid for uid in ids if uid not in denied])
    if not events:
        return {}
    decisions = {uid: score_visitor(model, events[uid], now=now) for uid in ids if uid in events}
    with transaction.atomic():
        current = {
            p.user_pseudo_id: p
            for p in VisitorProfile.objects.select_for_update()
            .filter(user_pseudo_id__in=list(decisions))
            .order_by("user_pseudo_id")
        }
        profiles: dict[str, VisitorProfile] = {}
        for uid, decision in decisions.items():
            fields = profile_fields(decision, model, now)
            before = current.get(uid)
            changed = before is None or any(
                getattr(before, name) != fields[name] for name in PROFILE_CHANGE_FIELDS
            )
            profiles[uid] = VisitorProfile(
                user_pseudo_id=uid,
                version=(before.version if before else 0) + int(changed),
                second_opinion=before.second_opinion if before else {},
                **fields,
            )
        # ON CONFLICT covers a profile a concurrent task created after the lock was taken.
        bulk_upsert(
            VisitorProfile,
            list(profiles.values()),
            unique_field="user_pseudo_id",
            update_fields=[*PROFILE_WRITE_FIELDS, "version"],
        )
        stored = list(profiles.values())
        transaction.on_commit(lambda: _profiles_publish(stored))
    for decision in decisions.values():
        VISITORS_SEGMENTED.labels(decision.segment).inc()
    return profiles


def _profiles_publish(profiles: list[VisitorProfile]) -> None:
    ruleset, responses = personalization_responses(profiles)
    cache.publish_profiles(
        {p.user_pseudo_id: p.version for p in profiles}, ruleset=ruleset, responses=responses
    )


def _profile_forget(user_pseudo_id: str) -> None:
    """A visitor who denied profiling: no profile, no cached answer (the default is served)."""
    deleted, _ = VisitorProfile.objects.filter(user_pseudo_id=user_pseudo_id).delete()
    if deleted:
        transaction.on_commit(lambda: cache.forget_visitor(user_pseudo_id))


def profile_fields(decision: Decision, model: ScoringModel, now: datetime) -> dict[str, Any]:
    segments = {s.code: s for s in model.segments}
    return {
        "segment": decision.segment,
        "confidence": round(decision.confidence, 6),
        "scores": {code: round(value, 6) for code, value in decision.scores.items()},
        "raw_scores": {code: round(value, 6) for code, value in decision.raw_scores.items()},
        "explanation": explanation(decision, segments),
        "event_count": decision.event_count,
        "computed_at": now,
        "model_version": model.version,
    }


def resegment_request(*, user_pseudo_ids: Iterable[str]) -> int:
    """Queue re-segmentation of visitors after new events; the number newly queued.

    With Redis as the cache, visitors go into one pending set, and the first event after a
    drain schedules the next drain `RESEGMENT_DEBOUNCE_SECONDS` later: every visitor with new
    events in that window is scored once, in batches (one message per window, not per event).
    With another cache, each visitor gets a pending mark and the first event of its burst
    queues a task. A bulk load (more than DEBOUNCE_UP_TO visitors at once, a GA4 export import)
    is queued in chunks straight away, spread over the worker pool.
    """
    ids = list(dict.fromkeys(user_pseudo_ids))
    if len(ids) > DEBOUNCE_UP_TO:
        return _chunks_queue(ids)
    client = cache.redis_client()
    if client is not None:
        try:
            return _pending_add(client, ids)
        except Exception as exc:  # Redis is down: queue them directly, undebounced
            logger.warning("p13n.resegment.pending_failed", extra={"error": type(exc).__name__})
    delay = settings.RESEGMENT_DEBOUNCE_SECONDS
    return _chunks_queue([uid for uid in ids if _first_pending(uid, timeout=delay * 6 + 60)])


RESEGMENT_CHUNK = 200
DEBOUNCE_UP_TO = 50  # visitors per request debounced; above, a bulk load
DRAIN_MAX_BATCHES = 25  # per drain task: 5,000 visitors, then the next task takes over
PENDING_SET = "p13n:pending"  # Redis set of visitors with events not yet scored
DRAIN_FLAG = "p13n:drain"  # set while a drain is scheduled


def _chunks_queue(ids: list[str]) -> int:
    """One task per chunk: a bulk import touches thousands of visitors at once, and a message
    per visitor would cost more than the scoring."""
    from .tasks import resegment_visitors

    queued = 0
    try:
        for start in range(0, len(ids), RESEGMENT_CHUNK):
            chunk = ids[start : start + RESEGMENT_CHUNK]
            resegment_visitors.apply_async(
                args=[chunk], countdown=settings.RESEGMENT_DEBOUNCE_SECONDS
            )
            queued += len(chunk)
    except Exception as exc:
        # The broker is down. The events are stored (this runs after commit) and must not be
        # answered with an error; the stale-profile sweep (resegment_stale) catches these
        # visitors up once the broker is back. Their pending marks go, so that their next
        # event queues them again.
        _queue_failed(exc, visitors=len(ids) - queued)
        with contextlib.suppress(Exception):
            djcache.delete_many([pending_key(uid) for uid in ids[queued:]])
    return queued


def _queue_failed(exc: Exception, *, visitors: int) -> None:
    logger.warning(
        "p13n.resegment.queue_failed", extra={"visitors": visitors, "error": type(exc).__name__}
    )


def _pending_add(client: Any, ids: list[str]) -> int:
    pipe = client.pipeline(transaction=False)
    pipe.sadd(djcache.make_key(PENDING_SET), *ids)
    pipe.set(djcache.make_key(DRAIN_FLAG), 1, nx=True, ex=_drain_flag_ttl())
    added, first = pipe.execute()
    if first:
        _drain_schedule(client, countdown=settings.RESEGMENT_DEBOUNCE_SECONDS, flagged=True)
    return int(added)


def _drain_flag_ttl() -> int:
    # Outlives the countdown with room for a busy queue; if the task is lost, the flag expires
    # and the next event schedules another drain.
    return settings.RESEGMENT_DEBOUNCE_SECONDS * 6 + 60


def _drain_schedule(client: Any, *, countdown: int, flagged: bool = False) -> None:
    from .tasks import resegment_drain

    flag = djcache.make_key(DRAIN_FLAG)
    if not flagged and not client.set(flag, 1, nx=True, ex=_drain_flag_ttl()):
        return  # a drain is on its way already
    try:
        resegment_drain.apply_async(countdown=countdown)
    except Exception as exc:
        # The broker is down: the visitors stay pending; the next event (or the stale-profile
        # sweep) schedules them again.
        _queue_failed(exc, visitors=int(client.scard(djcache.make_key(PENDING_SET)) or 0))
        with contextlib.suppress(Exception):
            client.delete(flag)


def pending_visitors_drain(
    *, batch: int = RESEGMENT_CHUNK, max_batches: int = DRAIN_MAX_BATCHES
) -> int:
    """Score the pending visitors, `batch` at a time; the number scored. Run by the drain task."""
    client = cache.redis_client()
    if client is None:
        return 0
    pending = djcache.make_key(PENDING_SET)
    # Cleared first: an event arriving from now on schedules the next drain.
    client.delete(djcache.make_key(DRAIN_FLAG))
    done = 0
    for _ in range(max_batches):
        # Popped before scoring: an event arriving meanwhile puts its visitor back for the
        # next drain, so none is missed.
        ids = [uid.decode() for uid in client.spop(pending, batch) or ()]
        if not ids:
            return done
        try:
            visitors_resegment(user_pseudo_ids=ids)
        except (OperationalError, InterfaceError):
            # The database is away: every one of them waits for a later drain.
            with contextlib.suppress(Exception):
                client.sadd(pending, *ids)
                _drain_schedule(client, countdown=_drain_flag_ttl())
            raise
        except Exception:
            # Something in one visitor's data breaks the batch: score them one by one, so a bad
            # one cannot hold the others back (or come back forever).
            done += _one_by_one(ids)
        else:
            done += len(ids)
    if client.scard(pending):  # more than one task takes: the next one starts right away
        _drain_schedule(client, countdown=0)
    return done


def _one_by_one(ids: list[str]) -> int:
    scored = 0
    for uid in ids:
        try:
            visitor_resegment(user_pseudo_id=uid)
        except Exception as exc:
            # The type only: a database error's message quotes the row ("Key (user_pseudo_id)
            # =(...)") or the value refused, and a visitor id has no place in a log line.
            logger.error("p13n.resegment.failed", extra={"error": type(exc).__name__})
        else:
            scored += 1
    return scored


def resegment_pending(user_pseudo_id: str) -> bool:
    """Whether the visitor is waiting for re-segmentation (queued, not yet scored)."""
    client = cache.redis_client()
    if client is not None:
        return bool(client.sismember(djcache.make_key(PENDING_SET), user_pseudo_id))
    return djcache.get(pending_key(user_pseudo_id)) is not None


def _first_pending(user_pseudo_id: str, *, timeout: int) -> bool:
    """Mark the visitor pending; False if it already was (a task is on its way)."""
    try:
        return bool(djcache.add(pending_key(user_pseudo_id), 1, timeout=timeout))
    except Exception:  # no cache, no debounce: queue anyway
        return True


def pending_key(user_pseudo_id: str) -> str:
    return f"p13n:pending:{user_pseudo_id}"


# --- Rules ----------------------------------------------------------------------------------------


def ruleset_bump() -> int:
    """Every rule, signal, segment or catalog change calls this: cached responses and the
    in-process scoring model turn over on the next request."""
    with transaction.atomic():
        row = RuleSetVersion.objects.select_for_update().order_by("pk").first()
        if row is None:
            row = RuleSetVersion.objects.create(version=1)
        row.version += 1
        row.save(update_fields=["version", "changed_at"])
        version = row.version
        transaction.on_commit(lambda: cache.publish_ruleset(version))
    return version


RULE_CONTENT_FIELDS = (
    "source",
    "priority_sections",
    "featured_projects",
    "highlight_skills",
    "reasoning",
)


def rule_snapshot(rule: PersonalizationRule) -> dict[str, Any]:
    """The rule as the audit trail keeps it: plain JSON, readable after the rule is gone."""
    return {
        "id": rule.pk,
        "segment": rule.segment.code,
        "version": rule.version,
        "status": rule.status,
        "source": rule.source,
        "priority_sections": list(rule.priority_sections),
        "featured_projects": list(rule.featured_projects),
        "highlight_skills": list(rule.highlight_skills),
        "reasoning": rule.reasoning,
        "created_by": rule.created_by,
        "activated_at": rule.activated_at.isoformat() if rule.activated_at else None,
    }


def _record(
    rule: PersonalizationRule,
    action: str,
    actor: str,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
) -> RuleChange:
    return RuleChange.objects.create(
        rule=rule if after is not None else None,
        rule_ref=rule.pk,
        segment_code=rule.segment.code,
        version=rule.version,
        action=action,
        actor=actor[:150],
        before=before,
        after=after,
    )


def _lock_segment(segment: Segment) -> None:
    # Serializes version numbering and activation per segment.
    Segment.objects.select_for_update().filter(pk=segment.pk).first()


@transaction.atomic
def rule_create(
    *,
    segment: Segment,
    priority_sections: Sequence[str] = (),
    featured_projects: Sequence[str] = (),
    highlight_skills: Sequence[str] = (),
    reasoning: str = "",
    source: str = RuleSource.ADMIN,
    actor: str = "",
    activate: bool = False,
) -> PersonalizationRule:
    """A new draft with the segment's next version; `activate` makes it live at once. Limits
    are the caller's to check (validation.rule_errors, rule_catalog_errors)."""
    _lock_segment(segment)
    rule = PersonalizationRule.objects.create(
        segment=segment,
        version=rule_next_version(segment=segment),
        status=RuleStatus.DRAFT,
        source=source,
        priority_sections=list(priority_sections),
        featured_projects=list(featured_projects),
        highlight_skills=list(highlight_skills),
        reasoning=reasoning,
        created_by=actor[:150],
    )
    _record(rule, RuleChangeAction.CREATED, actor, None, rule_snapshot(rule))
    if activate:
        rule_activate(rule=rule, actor=actor)
    else:
        ruleset_bump()
    return rule


@transaction.atomic
def rule_update(
    *, rule: PersonalizationRule, actor: str = "", changes: dict[str, Any]
) -> PersonalizationRule:
    """Change a rule's content (fields in RULE_CONTENT_FIELDS). An active rule gets the
    segment's next version number, so clients see in `rule_version` that what they are served
    changed; the audit entry keeps the content before."""
    unknown = set(changes) - set(RULE_CONTENT_FIELDS)
    if unknown:
        raise ValueError(f"not rule content: {sorted(unknown)}")
    _lock_segment(rule.segment)
    rule = PersonalizationRule.objects.select_for_update().select_related("segment").get(pk=rule.pk)
    before = rule_snapshot(rule)
    for name, value in changes.items():
        setattr(rule, name, list(value) if isinstance(value, (list, tuple)) else value)
    if rule_snapshot(rule) == before:
        return rule
    if rule.status == RuleStatus.ACTIVE:
        rule.version = rule_next_version(segment=rule.segment)
    rule.save()
    _record(rule, RuleChangeAction.UPDATED, actor, before, rule_snapshot(rule))
    ruleset_bump()
    return rule


@transaction.atomic
def rule_activate(*, rule: PersonalizationRule, actor: str = "") -> PersonalizationRule:
    """Make `rule` its segment's active rule; the one it replaces is archived."""
    _lock_segment(rule.segment)
    replaced = PersonalizationRule.objects.select_for_update().filter(
        segment=rule.segment, status=RuleStatus.ACTIVE
    )
    for old in replaced.exclude(pk=rule.pk):
        before = rule_snapshot(old)
        old.status = RuleStatus.ARCHIVED
        old.save(update_fields=["status"])
        _record(old, RuleChangeAction.ARCHIVED, actor, before, rule_snapshot(old))
    if rule.status != RuleStatus.ACTIVE:
        before = rule_snapshot(rule)
        rule.status = RuleStatus.ACTIVE
        rule.activated_at = timezone.now()
        rule.save(update_fields=["status", "activated_at"])
        _record(rule, RuleChangeAction.ACTIVATED, actor, before, rule_snapshot(rule))
    ruleset_bump()
    return rule


@transaction.atomic
def rule_archive(*, rule: PersonalizationRule, actor: str = "") -> PersonalizationRule:
    """Take a rule out of service; a segment without an active rule gets the CASUAL one."""
    if rule.status == RuleStatus.ARCHIVED:
        return rule
    before = rule_snapshot(rule)
    rule.status = RuleStatus.ARCHIVED
    rule.save(update_fields=["status"])
    _record(rule, RuleChangeAction.ARCHIVED, actor, before, rule_snapshot(rule))
    ruleset_bump()
    return rule


@transaction.atomic
def rule_delete(*, rule: PersonalizationRule, actor: str = "") -> None:
    before = rule_snapshot(rule)
    # The audit row points at the rule only by rule_ref: the foreign key would cascade to NULL.
    _record(rule, RuleChangeAction.DELETED, actor, before, None)
    rule.delete()
    ruleset_bump()


def rule_next_version(*, segment: Segment) -> int:
    last = segment.rules.order_by("-version").values_list("version", flat=True).first()
    return (last or 0) + 1


# --- Erasure ------------------------------------------------------------------------------------


def profile_erase(*, user_pseudo_id: str) -> int:
    """The personalization side of a visitor erasure (analytics.services.visitor_erase sends
    `visitor_erased` inside its transaction): the profile now, its cache entries and pending
    mark after commit, so a reader never re-caches the old answer from rows still visible to
    it. Returns the number of profiles deleted."""
    profiles = VisitorProfile.objects.filter(user_pseudo_id=user_pseudo_id).delete()[0]
    transaction.on_commit(lambda: _forget_cached(user_pseudo_id))
    return profiles


def profiles_erase_ledgered(*, ledger: set[str]) -> int:
    """After a restore: erase every restored profile whose visitor the erasure ledger names
    (visitors with a Visitor row or events are erased whole by analytics)."""
    if not ledger:
        return 0
    ids = VisitorProfile.objects.values_list("user_pseudo_id", flat=True)
    erased = [uid for uid in ids if visitor_hash(uid) in ledger]
    for uid in erased:
        visitor_erase(user_pseudo_id=uid, record=False)
    return len(erased)


def cache_reset_after_restore() -> bool:
    """After a database restore, nothing cached before it may be served: the rule-set version
    moves past both the restored one and the cached one (a cached entry tagged with a version
    the restored counter will reach again must never match), then every visitor's cached
    version and response is dropped and every process's local copy with them. False if the
    cache could not be reached (the operator is told to clear it)."""
    cached = cache.ruleset_cached()
    with transaction.atomic():
        row = RuleSetVersion.objects.select_for_update().order_by("pk").first()
        if row is None:
            row = RuleSetVersion.objects.create(version=1)
        row.version = max(row.version, cached or 0) + 1
        row.save(update_fields=["version", "changed_at"])
    return cache.invalidate_all(ruleset=row.version)


def profiles_forget(*, user_pseudo_ids: Sequence[str]) -> int:
    """Drop the profiles of visitors that no longer exist (retention deleted them with their
    last events), and their cached answers after commit; the number of profiles deleted.

    Visitors that exist again (events arrived since) keep theirs: a profile is what their
    events say, and the next re-segmentation rewrites it."""
    ids = sorted(set(user_pseudo_ids))
    existing = Visitor.objects.filter(user_pseudo_id__in=ids).values("user_pseudo_id")
    gone = VisitorProfile.objects.filter(user_pseudo_id__in=ids).exclude(
        user_pseudo_id__in=existing
    )
    deleted = gone.delete()[0]

    def forget() -> None:
        for uid in ids:
            _forget_cached(uid)

    # Every id, not only those with a profile row: an answer may be cached without one.
    transaction.on_commit(forget)
    return deleted


def _forget_cached(user_pseudo_id: str) -> None:
    cache.forget_visitor(user_pseudo_id)
    try:
        djcache.delete(pending_key(user_pseudo_id))
        client = cache.redis_client()
        if client is not None:
            client.srem(djcache.make_key(PENDING_SET), user_pseudo_id)
    except Exception:  # a cache outage: the pending mark expires on its own
        logger.warning("visitor.erase.pending_key_kept")
