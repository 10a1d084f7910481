"""Writes to the personalization app's tables."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.core.cache import cache as djcache
from django.db import IntegrityError, transaction
from django.utils import timezone

from analytics.consent import denied_visitor_ids
from ops.metrics import VISITORS_SEGMENTED

from . import cache, demo_catalog
from .models import (
    PersonalizationRule,
    Project,
    RuleSetVersion,
    RuleStatus,
    Section,
    Segment,
    Skill,
    VisitorProfile,
)
from .scoring import Decision, ScoringModel, explanation, score_visitor
from .selectors import scoring_model_get, visitor_events

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
    """Score one visitor from all its events and store the profile; None if it has no events.

    The profile's version goes up only when the answer changes, and the new version is
    published to the cache after commit so the next personalization request sees it.
    """
    now = now or timezone.now()
    if denied_visitor_ids([user_pseudo_id]):
        _profile_forget(user_pseudo_id)
        return None
    model = scoring_model_get()
    events = visitor_events(user_pseudo_id=user_pseudo_id)
    if not events:
        return None
    decision = score_visitor(model, events, now=now)
    with transaction.atomic():
        profile = (
            VisitorProfile.objects.select_for_update().filter(user_pseudo_id=user_pseudo_id).first()
        )
        fields = profile_fields(decision, model, now)
        created = False
        if profile is None:
            try:
                with transaction.atomic():  # savepoint: a concurrent task may create it first
                    profile = VisitorProfile.objects.create(user_pseudo_id=user_pseudo_id, **fields)
                created = True
            except IntegrityError:
                profile = VisitorProfile.objects.select_for_update().get(
                    user_pseudo_id=user_pseudo_id
                )
        if not created:
            changed = any(
                getattr(profile, name) != fields[name]
                for name in ("segment", "scores", "explanation", "event_count")
            )
            for name, value in fields.items():
                setattr(profile, name, value)
            profile.version += int(changed)
            profile.save()
        version = profile.version
        transaction.on_commit(lambda: cache.publish_profile_version(user_pseudo_id, version))
    VISITORS_SEGMENTED.labels(decision.segment).inc()
    return profile


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
    """Queue re-segmentation of visitors after new events, at most one pending task each.

    The first event of a burst queues a task `RESEGMENT_DEBOUNCE_SECONDS` later; later events
    of the burst find it pending and add nothing, and the task reads them all when it runs.
    """
    from .tasks import resegment_visitors

    delay = settings.RESEGMENT_DEBOUNCE_SECONDS
    ids = list(dict.fromkeys(user_pseudo_ids))
    if len(ids) > DEBOUNCE_UP_TO:
        # A bulk load (GA4 export import): one cache round trip per visitor would cost more than
        # the burst it saves; every visitor is queued.
        due = ids
    else:
        due = [uid for uid in ids if _first_pending(uid, timeout=delay * 6 + 60)]
    # One task per chunk: a bulk import touches thousands of visitors at once, and a message
    # per visitor would cost more than the scoring.
    queued = 0
    try:
        for start in range(0, len(due), RESEGMENT_CHUNK):
            chunk = due[start : start + RESEGMENT_CHUNK]
            resegment_visitors.apply_async(args=[chunk], countdown=delay)
            queued += len(chunk)
    except Exception as exc:
        # The broker is down. The events are stored (this runs after commit) and must not be
        # answered with an error; the stale-profile sweep (resegment_stale) catches these
        # visitors up once the broker is back. Their pending marks go, so that their next
        # event queues them again.
        logger.warning(
            "p13n.resegment.queue_failed",
            extra={"visitors": len(due) - queued, "error": type(exc).__name__},
        )
        with contextlib.suppress(Exception):
            djcache.delete_many([pending_key(uid) for uid in due[queued:]])
    return queued


RESEGMENT_CHUNK = 200
DEBOUNCE_UP_TO = 50  # visitors per request debounced one by one; above, a bulk load


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


@transaction.atomic
def rule_activate(*, rule: PersonalizationRule, actor: str = "") -> PersonalizationRule:
    """Make `rule` its segment's active rule; the one it replaces is archived."""
    PersonalizationRule.objects.filter(segment=rule.segment, status=RuleStatus.ACTIVE).exclude(
        pk=rule.pk
    ).update(status=RuleStatus.ARCHIVED)
    rule.status = RuleStatus.ACTIVE
    rule.activated_at = timezone.now()
    rule.save(update_fields=["status", "activated_at"])
    ruleset_bump()
    return rule


def rule_next_version(*, segment: Segment) -> int:
    last = segment.rules.order_by("-version").values_list("version", flat=True).first()
    return (last or 0) + 1
