"""Schemathesis against the schema the service publishes at /api/schema/: every operation,
public and admin (with a real Bearer token), with a configured measurement stream, in-process
over WSGI, on whatever database the suite runs on (PostgreSQL in CI, SQLite without it).

All of schemathesis' checks run (the pytest equivalent of `st run --checks all`): no 5xx; every
status code, content type, header and body is documented; schema-invalid input is rejected and
schema-valid input accepted. Two gaps no static schema can close are named in
`events_schema_gaps`, case by case; nothing else is excused.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import hypothesis
import pytest
import schemathesis
from django.contrib.auth.models import Permission, User
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from django.test import Client
from django.utils import timezone
from rest_framework_simplejwt.settings import api_settings
from rest_framework_simplejwt.tokens import AccessToken
from rest_framework_simplejwt.utils import get_md5_hash_password
from schemathesis.specs.openapi.checks import negative_data_rejection, positive_data_acceptance

from analytics.models import MeasurementStream
from analytics.services import EventIn, events_store, timestamp_to_datetime
from analytics.validation import has_unstorable_text
from personalization.models import (
    InsightStatus,
    LLMInsight,
    PersonalizationRule,
    Project,
    Section,
    Segment,
    Skill,
)
from personalization.schema import apply_enums, enum_values
from personalization.services import visitor_resegment

pytestmark = pytest.mark.django_db

# Bounded: well under two minutes for every operation together on two cores.
MAX_EXAMPLES = 40

# The content catalog the tests seed; segments are the five the migrations ship. The published
# schema enumerates both from the database (personalization/schema.py), so the schema loaded at
# collection, when no database may be read, gets the same values through the same function;
# `seeded` checks the database holds exactly these.
SEGMENTS = ["CASUAL", "FULLSTACK_DEV", "ML_ENGINEER", "RECRUITER", "STUDENT"]
CATALOG = {
    "sections": ["about", "career", "projects", "skills"],
    "projects": ["llm-router", "portfolio-site", "vision-kit"],
    "skills": ["AI/ML Integration", "Django", "PyTorch", "React"],
}
ENUMS = {"segments": SEGMENTS, **CATALOG}


def _load_schema() -> Any:
    app = WSGIHandler()
    response = Client().get("/api/schema/", HTTP_ACCEPT="application/json")
    raw = apply_enums(json.loads(response.content), ENUMS)
    loaded = schemathesis.openapi.from_dict(raw)
    loaded.app = app
    loaded.location = "/api/schema/"
    return loaded


# Loaded at collection from the app itself (schemathesis' lazy `from_fixture` loader does not
# work with pytest 9).
schema = _load_schema()

# Schemathesis builds some cases (its coverage phase) at collection, auth included, so the token
# cannot come from a per-test fixture: it names a fixed user id that each test creates.
ADMIN_PK = 900_001
# A fixed (unusable) password hash, so the token's password claim is known at collection.
ADMIN_PASSWORD_HASH = "!schemathesis-admin"


def _admin_token() -> str:
    token = AccessToken()
    token.set_exp(lifetime=timedelta(hours=12))
    token[api_settings.USER_ID_CLAIM] = str(ADMIN_PK)
    token[api_settings.REVOKE_TOKEN_CLAIM] = get_md5_hash_password(ADMIN_PASSWORD_HASH)
    return str(token)


ADMIN_TOKEN = _admin_token()


@schema.auth(refresh_interval=None)
class AdminBearer:
    """Sent on every operation that declares adminBearer; left off when schemathesis drops it
    on purpose to see the 401."""

    def get(self, case: Any, context: Any) -> str:
        return ADMIN_TOKEN

    def set(self, case: Any, data: str, context: Any) -> None:
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}


VISITOR = "schemathesis.visitor-1"
MEASUREMENT_ID = "G-SCHEMATHESIS"
MP_SECRET = "schemathesis-secret"


@dataclass(frozen=True)
class Seeded:
    rule_ids: tuple[int, ...]


@pytest.fixture(autouse=True)
def seeded(settings: Any) -> Iterator[Seeded]:
    # Staff with the admin API permission, not a superuser, as conftest's admin_api_user.
    user = User.objects.create_user("schemathesis-admin", pk=ADMIN_PK, is_staff=True)
    User.objects.filter(pk=ADMIN_PK).update(password=ADMIN_PASSWORD_HASH)
    user.user_permissions.add(Permission.objects.get(codename="use_admin_api"))
    Section.objects.bulk_create(
        Section(slug=slug, title=slug, position=i) for i, slug in enumerate(CATALOG["sections"])
    )
    Project.objects.bulk_create(Project(slug=slug, title=slug) for slug in CATALOG["projects"])
    Skill.objects.bulk_create(Skill(name=name) for name in CATALOG["skills"])
    # What /api/schema/ would publish now is what the collected schema says.
    assert enum_values() == ENUMS
    assert list(Segment.objects.order_by("code").values_list("code", flat=True)) == SEGMENTS
    # Rows for the read endpoints to return, so their bodies are checked with real data.
    now = timezone.now()
    events_store(
        events=[
            EventIn(
                event_name=name,
                user_pseudo_id=VISITOR,
                occurred_at=now - timedelta(minutes=i),
                event_params={"project_id": "llm-router", "engagement_time_msec": 1200},
                page_location="https://portfolio.example/projects",
            )
            for i, name in enumerate(["page_view", "project_click", "deep_read", "skill_hover"])
        ]
    )
    visitor_resegment(user_pseudo_id=VISITOR)
    LLMInsight.objects.create(
        period_start=now - timedelta(days=7),
        period_end=now,
        provider="offline",
        status=InsightStatus.OK,
        summary="Seeded insight.",
    )
    MeasurementStream.objects.create(
        name="schemathesis", measurement_id=MEASUREMENT_ID, api_secret=MP_SECRET
    )
    settings.LLM_PROVIDERS = ["offline"]
    # The rate limits have their own tests; here they would only turn cases into 429s.
    settings.RATELIMIT_ENABLE = False
    # As Django's test client does: a request must not close the test's connection (it is
    # inside the test transaction).
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield Seeded(rule_ids=tuple(PersonalizationRule.objects.values_list("pk", flat=True)))
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


def aim_at_seeded_rows(case: Any, seeded: Seeded) -> None:
    """Random ids and secrets would only ever meet 404 and 403. Half the valid cases (by the
    parity of what was generated, to stay deterministic) name a seeded row or stream instead,
    so updates, deletes and the collectors' parsers run for real."""
    meta = case.meta
    if meta is None:
        return
    query = case.query if isinstance(case.query, dict) else {}
    if not meta.generation.mode.is_positive:
        # A schema-invalid body must meet the collectors' parsers too, not only the 403.
        query_invalid = any(
            location.name == "QUERY" and not info.mode.is_positive
            for location, info in meta.components.items()
        )
        if not query_invalid and "api_secret" in query:
            query.update(measurement_id=MEASUREMENT_ID, api_secret=MP_SECRET)
        return
    path = case.path_parameters or {}
    rule_id = path.get("rule_id")
    if isinstance(rule_id, int) and rule_id % 2 == 0 and seeded.rule_ids:
        path["rule_id"] = seeded.rule_ids[rule_id // 2 % len(seeded.rule_ids)]
    visitor = path.get("user_pseudo_id")
    if isinstance(visitor, str) and len(visitor) % 2 == 0:
        path["user_pseudo_id"] = VISITOR
    secret = query.get("api_secret")
    if isinstance(secret, str) and len(secret) % 2 == 0:
        query.update(measurement_id=MEASUREMENT_ID, api_secret=MP_SECRET)
    tid = query.get("tid")
    if isinstance(tid, str) and len(tid) % 2 == 0:
        query["tid"] = MEASUREMENT_ID


def _events_of(body: Any) -> list[Any]:
    if isinstance(body, dict) and isinstance(body.get("events"), list):
        return body["events"]
    return [body]


def _published_timestamp_bound() -> float:
    """The largest event_timestamp (in µs) the collected schema allows."""
    event = schema.raw_schema["components"]["schemas"]["EventRequest"]
    return max(part["maximum"] for part in event["properties"]["event_timestamp"]["anyOf"])


def events_schema_gaps(case: Any) -> list[Any]:
    """POST /api/events: the checks a case's response cannot be held to, and why. Each applies
    only to the cases that meet its gap; every other check runs on them.

    - NUL in event params below the first level: PostgreSQL's jsonb cannot store it and the API
      refuses it (422), as the schema says of keys and values at every level (JsonValue). But
      schemathesis stops following a recursive schema after a few levels and then generates any
      JSON, NUL included: a case it calls valid that is not.
    - An event_timestamp past the schema's bound: the schema states the API's bound (72 h past
      the clock) as of the moment it was served; the API's own moves on with its clock, so a
      value just past the published bound is still accepted a moment later. No fixed number can
      be both bounds at once; the published one is the one that is always safe to send.
    """
    gaps = []
    events = _events_of(case.body)
    if any(isinstance(e, dict) and has_unstorable_text(e.get("event_params")) for e in events):
        gaps.append(positive_data_acceptance)
    bound = _published_timestamp_bound()
    for event in events:
        stamp = event.get("event_timestamp") if isinstance(event, dict) else None
        if isinstance(stamp, (int, float)) and not isinstance(stamp, bool):
            in_micros = timestamp_to_datetime(stamp).timestamp() * 1_000_000
            if in_micros > bound and in_micros <= (time.time() + 73 * 3600) * 1_000_000:
                gaps.append(negative_data_rejection)
                break
    return gaps


@schema.parametrize()
@hypothesis.settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(hypothesis.HealthCheck),
)
def test_api__schemathesis_cases__no_server_error_and_responses_match_schema(
    case: Any, seeded: Seeded
) -> None:
    aim_at_seeded_rows(case, seeded)
    gaps = events_schema_gaps(case) if case.path == "/api/events" else []
    case.call_and_validate(excluded_checks=gaps)


def test_api__published_schema__enumerates_the_database(client: Any, seeded: Seeded) -> None:
    Skill.objects.create(name="Kubernetes")

    published = client.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    rule = published["components"]["schemas"]["RuleInRequest"]["properties"]

    assert rule["segment"]["enum"] == SEGMENTS
    assert rule["priority_sections"]["items"]["enum"] == CATALOG["sections"]
    assert rule["featured_projects"]["items"]["enum"] == CATALOG["projects"]
    assert rule["highlight_skills"]["items"]["enum"] == sorted([*CATALOG["skills"], "Kubernetes"])
