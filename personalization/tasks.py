"""Celery tasks of the personalization app."""

from __future__ import annotations

import contextlib
import logging

from celery import shared_task
from django.core.cache import cache

logger = logging.getLogger(__name__)


@shared_task(name="personalization.tasks.resegment_visitor", ignore_result=True)
def resegment_visitor(user_pseudo_id: str) -> None:
    """Re-segment one visitor. Idempotent: it recomputes from all stored events."""
    resegment_visitors([user_pseudo_id])


@shared_task(name="personalization.tasks.resegment_visitors", ignore_result=True)
def resegment_visitors(user_pseudo_ids: list[str]) -> None:
    """Re-segment visitors queued by `resegment_request`. Idempotent, like the single one."""
    from .services import pending_key, visitors_resegment

    # Cleared first: an event arriving while we compute queues a fresh run.
    # The debounce is an optimisation: compute even when the cache is down.
    with contextlib.suppress(Exception):
        cache.delete_many([pending_key(uid) for uid in user_pseudo_ids])
    visitors_resegment(user_pseudo_ids=user_pseudo_ids)


@shared_task(name="personalization.tasks.resegment_drain", ignore_result=True)
def resegment_drain() -> int:
    """Score the visitors `resegment_request` marked pending since the last drain."""
    from .services import pending_visitors_drain

    return pending_visitors_drain()


@shared_task(name="personalization.tasks.resegment_stale", ignore_result=True)
def resegment_stale() -> int:
    """Catch up visitors whose re-segmentation was never queued (the broker was down when
    their events arrived), and drop profiles whose visitor is gone: scheduled by beat every
    RESEGMENT_SWEEP_MINUTES."""
    from django.conf import settings

    from .selectors import orphaned_profile_ids, stale_visitor_ids
    from .services import RESEGMENT_CHUNK, profiles_forget

    orphaned = orphaned_profile_ids(limit=settings.RESEGMENT_SWEEP_LIMIT)
    if orphaned:
        profiles_forget(user_pseudo_ids=orphaned)
    stale = stale_visitor_ids(limit=settings.RESEGMENT_SWEEP_LIMIT)
    for start in range(0, len(stale), RESEGMENT_CHUNK):
        resegment_visitors.delay(stale[start : start + RESEGMENT_CHUNK])
    return len(stale)


@shared_task(name="personalization.tasks.resegment_all", soft_time_limit=3300, time_limit=3600)
def resegment_all() -> dict[str, int]:
    """Recompute every visitor's profile (after a signal or catalog change)."""
    from .recompute import profiles_recompute_all

    return profiles_recompute_all().as_dict()


@shared_task(name="personalization.tasks.insights_run", soft_time_limit=600, time_limit=660)
def insights_run(
    period_start: str | None = None, period_end: str | None = None, days: int | None = None
) -> dict[str, object]:
    """Analyse a period (ISO datetimes), or the `days` before today's midnight UTC. Idempotent:
    a redelivered task finds its period's insight stored and returns it."""
    from datetime import datetime

    from django.conf import settings

    from .insights_services import insight_period, insight_run, second_opinions_run

    if period_start and period_end:
        start, end = datetime.fromisoformat(period_start), datetime.fromisoformat(period_end)
    else:
        start, end = insight_period(days=days or settings.LLM_INSIGHTS_DAYS)
    insight = insight_run(period_start=start, period_end=end)
    # Optional, and never at the insight's expense.
    try:
        opinions = second_opinions_run(period_start=start, period_end=end)
    except Exception:
        logger.exception("llm.second_opinion_failed")
        opinions = 0
    return {
        "insight_id": insight.pk,
        "status": insight.status,
        "provider": insight.provider,
        "second_opinions": opinions,
    }
