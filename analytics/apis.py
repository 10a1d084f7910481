"""The first-party JSON events API: POST /api/events."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from drf_spectacular.utils import (
    OpenApiResponse,
    PolymorphicProxySerializer,
    extend_schema,
    inline_serializer,
)
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from ops.metrics import events_rejected
from portfolio.api.exceptions import validation_error_response
from portfolio.api.throttling import enforce_rate_limit

from .models import EventSource
from .services import events_store
from .validation import (
    EARLIEST,
    MAX_EVENT_ID_LENGTH,
    MalformedJSON,
    parse_json,
    validate_payload,
)

_Detail = inline_serializer("Detail", fields={"detail": serializers.CharField()})
_ValidationError = inline_serializer(
    "ValidationError",
    fields={
        "detail": serializers.CharField(),
        "errors": serializers.DictField(child=serializers.ListField(child=serializers.CharField())),
    },
)
_EventSchema = inline_serializer(
    "Event",
    fields={
        "event_name": serializers.RegexField(r"^[A-Za-z0-9_]{1,100}$"),
        "user_pseudo_id": serializers.RegexField(r"^[A-Za-z0-9._-]{1,200}$"),
        "event_params": serializers.DictField(
            required=False, allow_null=True, help_text="≤ 10,000 bytes as JSON"
        ),
        "event_timestamp": serializers.FloatField(
            required=False,
            allow_null=True,
            min_value=EARLIEST.timestamp(),
            help_text="Unix s, ms or µs, from 2000-01-01; ≤ 72 h ahead; default: now",
        ),
        "event_id": serializers.CharField(
            required=False,
            allow_null=True,
            max_length=MAX_EVENT_ID_LENGTH,
            help_text="Client id used to drop duplicates",
        ),
    },
)
_EventBatchSchema = inline_serializer(
    "EventBatch",
    fields={"events": serializers.ListField(child=_EventSchema, min_length=1, max_length=500)},
)


class EventsApi(APIView):
    """Ingest one event or a batch. All or nothing: one invalid event rejects the request."""

    @extend_schema(
        request=PolymorphicProxySerializer(
            component_name="EventOrBatch",
            serializers=[_EventSchema, _EventBatchSchema],
            resource_type_field_name=None,
        ),
        responses={
            201: inline_serializer(
                "EventsAccepted",
                fields={
                    "accepted": serializers.IntegerField(),
                    "duplicates": serializers.IntegerField(),
                },
            ),
            400: OpenApiResponse(_Detail, description="Malformed JSON"),
            413: OpenApiResponse(_Detail, description="Body over EVENTS_MAX_BODY_BYTES"),
            422: OpenApiResponse(_ValidationError, description="Invalid events, per field"),
            429: OpenApiResponse(_Detail, description="Rate limited; see Retry-After"),
            503: OpenApiResponse(_Detail, description="Database unavailable; see Retry-After"),
        },
        tags=["events"],
    )
    def post(self, request: Request) -> Response:
        enforce_rate_limit(request, group="api.events", rate=settings.RATELIMIT_EVENTS)
        limit = settings.EVENTS_MAX_BODY_BYTES
        if _content_length(request) > limit or len(request.body) > limit:
            events_rejected(source=EventSource.API, reason="too_large")
            return Response(
                {"detail": f"Request body over {limit} bytes."},
                status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
            )
        try:
            payload = parse_json(request.body)
        except MalformedJSON as exc:
            events_rejected(source=EventSource.API, reason="malformed_json")
            return Response({"detail": str(exc)}, status=status.HTTP_400_BAD_REQUEST)
        validation = validate_payload(
            payload,
            max_batch=settings.EVENTS_MAX_BATCH,
            max_future=timedelta(hours=settings.EVENTS_MAX_FUTURE_HOURS),
        )
        if validation.errors:
            events_rejected(source=EventSource.API, reason="invalid", count=_event_count(payload))
            return validation_error_response(validation.errors)
        result = events_store(events=validation.events, source=EventSource.API)
        return Response(
            {"accepted": result.accepted, "duplicates": result.duplicates},
            status=status.HTTP_201_CREATED,
        )


def _content_length(request: Request) -> int:
    try:
        return int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return 0


def _event_count(payload: object) -> int:
    """How many events a refused request held: all of them are refused together."""
    if isinstance(payload, dict) and isinstance(payload.get("events"), list):
        return max(1, len(payload["events"]))
    return 1
