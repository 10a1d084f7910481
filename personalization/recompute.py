"""Full recompute: every visitor's profile from all events, in one ordered pass.

One query streams the events ordered by visitor (the (user_pseudo_id, occurred_at) index
serves the order), the scorer runs per visitor in memory, and profiles are written in batches
of set-based upserts, each batch in its own short transaction.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import datetime
from itertools import groupby
from operator import itemgetter

from django.db import transaction
from django.utils import timezone
from tqdm import tqdm

from analytics.consent import denied_visitor_ids
from analytics.models import Event, Visitor
from portfolio.db import bulk_upsert

from . import cache
from .models import VisitorProfile
from .scoring import EventView, score_visitor
from .selectors import scoring_events, scoring_model_get
from .services import PROFILE_WRITE_FIELDS, profile_fields

PROFILE_FIELDS = [*PROFILE_WRITE_FIELDS, "version"]


@dataclass
class RecomputeSummary:
    visitors: int = 0
    events: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict[str, int]:
        return {k: int(v) for k, v in asdict(self).items()}


def _events_by_visitor() -> Iterator[tuple[str, list[EventView]]]:
    rows = scoring_events(
        Event.objects.order_by("user_pseudo_id", "occurred_at"), chunk_size=10_000
    )
    for uid, group in groupby(rows, key=itemgetter(0)):
        yield uid, [event for _, event in group]


def profiles_recompute_all(
    *, batch_size: int = 2_000, progress: bool = False, now: datetime | None = None
) -> RecomputeSummary:
    started = timezone.now()
    now = now or started
    model = scoring_model_get()
    summary = RecomputeSummary()
    bar = tqdm(total=Visitor.objects.count(), unit="visitor", disable=not progress, file=sys.stderr)
    denied = denied_visitor_ids()
    if denied:
        VisitorProfile.objects.filter(user_pseudo_id__in=denied).delete()
        for uid in denied:
            cache.forget_visitor(uid)
    batch: list[VisitorProfile] = []
    for uid, events in _events_by_visitor():
        if uid in denied:
            continue
        decision = score_visitor(model, events, now=now)
        batch.append(VisitorProfile(user_pseudo_id=uid, **profile_fields(decision, model, now)))
        summary.visitors += 1
        summary.events += len(events)
        if len(batch) >= batch_size:
            _write(batch)
            bar.update(len(batch))
            batch = []
    if batch:
        _write(batch)
        bar.update(len(batch))
    bar.close()
    summary.seconds = (timezone.now() - started).total_seconds()
    return summary


def _write(batch: list[VisitorProfile]) -> None:
    with transaction.atomic():
        versions = dict(
            VisitorProfile.objects.select_for_update()
            .filter(user_pseudo_id__in=[p.user_pseudo_id for p in batch])
            .values_list("user_pseudo_id", "version")
        )
        for profile in batch:
            profile.version = versions.get(profile.user_pseudo_id, 0) + 1
        bulk_upsert(
            VisitorProfile, batch, unique_field="user_pseudo_id", update_fields=PROFILE_FIELDS
        )
        published = {p.user_pseudo_id: p.version for p in batch}
        transaction.on_commit(lambda: cache.publish_profile_versions(published))
