"""Operational writes: demo data and the bootstrap admin user."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.contrib.auth import get_user_model
from django.utils import timezone

from analytics.models import EventSource
from analytics.services import EventIn, events_store, timestamp_to_datetime
from personalization.personas import generate_visitors
from personalization.services import CatalogCounts, catalog_load_demo

DEMO_SEED = 20261129


@dataclass(frozen=True)
class DemoSeedResult:
    catalog: CatalogCounts
    visitors: int
    events_accepted: int
    events_existing: int


def demo_seed(
    *, visitors: int = 300, seed: int = DEMO_SEED, now: datetime | None = None
) -> DemoSeedResult:
    """Load the demo catalog and synthetic visitors. Event ids are derived from the seed, so a
    second run adds nothing."""
    catalog = catalog_load_demo()
    accepted = existing = 0
    for visitor in generate_visitors(count=visitors, seed=seed, now=now or timezone.now()):
        result = events_store(
            events=[
                EventIn(
                    event_name=event["event_name"],
                    user_pseudo_id=event["user_pseudo_id"],
                    event_params=event["event_params"],
                    occurred_at=timestamp_to_datetime(event["event_timestamp"]),
                    event_id=event["event_id"],
                )
                for event in visitor.events
            ],
            source=EventSource.SEED,
        )
        accepted += result.accepted
        existing += result.duplicates
    return DemoSeedResult(
        catalog=catalog, visitors=visitors, events_accepted=accepted, events_existing=existing
    )


@dataclass(frozen=True)
class AdminResult:
    username: str
    created: bool
    password: str | None  # only when we generated it, so the caller can show it once


def admin_ensure(*, username: str | None = None, password: str | None = None) -> AdminResult:
    """Create the superuser if missing. An explicit password (ADMIN_PASSWORD) is always applied;
    without one a new user gets a generated password and an existing user is left alone."""
    username = username or settings.ADMIN_USERNAME
    password = password if password is not None else settings.ADMIN_PASSWORD
    User = get_user_model()
    user = User.objects.filter(username=username).first()
    generated = None
    if user is None:
        if not password:
            password = generated = secrets.token_urlsafe(16)
        User.objects.create_superuser(
            username=username, email=settings.ADMIN_EMAIL, password=password
        )
        return AdminResult(username=username, created=True, password=generated)
    if password:
        user.set_password(password)
        user.is_staff = user.is_superuser = user.is_active = True
        user.save(update_fields=["password", "is_staff", "is_superuser", "is_active"])
    return AdminResult(username=username, created=False, password=None)
