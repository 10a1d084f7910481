"""Admin API over events: GET /api/admin/events/search."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from django.db.models import QuerySet
from django.http import HttpResponse
from django.utils import timezone
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request

from portfolio.api.admin_auth import AdminApiView
from portfolio.api.admin_schema import AUTH_ERRORS, INVALID
from portfolio.api.fields import StrictIntegerField

from .models import Event
from .selectors import EVENT_ORDERINGS, events_page_json, events_search, events_search_count
from .validation import EVENT_NAME_RE, USER_PSEUDO_ID_RE

MAX_HOURS = 2160  # 90 days
MAX_LIMIT = 500
MAX_OFFSET = 10_000_000


class EventsSearchParams(serializers.Serializer):
    hours = StrictIntegerField(
        min_value=1, max_value=MAX_HOURS, default=24, help_text="Look back this many hours."
    )
    limit = StrictIntegerField(min_value=1, max_value=MAX_LIMIT, default=50)
    offset = StrictIntegerField(min_value=0, max_value=MAX_OFFSET, default=0)
    event_name = serializers.RegexField(f"^{EVENT_NAME_RE.pattern}$", required=False)
    user_pseudo_id = serializers.RegexField(f"^{USER_PSEUDO_ID_RE.pattern}$", required=False)
    q = serializers.CharField(
        max_length=200, required=False, help_text="Text in the event name or its params."
    )
    ordering = serializers.ChoiceField(
        choices=list(EVENT_ORDERINGS), default="-event_timestamp", required=False
    )


EVENT_FIELDS = {
    "id": serializers.IntegerField(),
    "event_name": serializers.CharField(),
    "user_pseudo_id": serializers.CharField(),
    "event_params": serializers.DictField(),
    "event_timestamp": serializers.IntegerField(help_text="Unix microseconds, as GA4."),
    "occurred_at": serializers.DateTimeField(),
    "received_at": serializers.DateTimeField(),
    "source": serializers.CharField(),
    "session_id": serializers.CharField(),
    "page_location": serializers.CharField(),
    "page_referrer": serializers.CharField(),
}
EventOut = type("AdminEvent", (serializers.Serializer,), dict(EVENT_FIELDS))
EventSearchOut = inline_serializer(
    "AdminEventSearch",
    fields={"count": serializers.IntegerField(), "results": EventOut(many=True)},
)
JSON = "application/json"


def event_rows(queryset: QuerySet[Event]) -> list[dict[str, Any]]:
    return json.loads(events_page_json(queryset))  # not orjson: params may hold big integers


class EventsSearchApi(AdminApiView):
    @extend_schema(
        parameters=[EventsSearchParams],
        responses={200: EventSearchOut, **AUTH_ERRORS, **INVALID},
        tags=["admin"],
        summary="Search events, newest first",
        operation_id="admin_events_search",
    )
    def get(self, request: Request) -> HttpResponse:
        params = EventsSearchParams(data=request.query_params)
        params.is_valid(raise_exception=True)
        p = params.validated_data
        filters = {name: p.get(name) for name in ("hours", "event_name", "user_pseudo_id", "q")}
        events = events_search(
            since=timezone.now() - timedelta(hours=p["hours"]),
            event_name=p.get("event_name"),
            user_pseudo_id=p.get("user_pseudo_id"),
            q=p.get("q"),
            ordering=p.get("ordering") or "-event_timestamp",
        )
        page = events_page_json(events[p["offset"] : p["offset"] + p["limit"]])
        count = events_search_count(events, filters=filters)
        # The page is JSON already (PostgreSQL writes it): spliced in, never decoded here.
        return HttpResponse(b'{"count":%d,"results":%s}' % (count, page), content_type=JSON)
