"""The first-party JSON events API: POST /api/events."""

from __future__ import annotations

import math
import time
from datetime import timedelta
from typing import Any

from django.conf import settings
from drf_spectacular.extensions import OpenApiSerializerFieldExtension
from drf_spectacular.utils import (
    OpenApiResponse,
    PolymorphicProxySerializer,
    extend_schema,
    extend_schema_field,
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
# No NUL in text (JSON Schema regex, not Python's); surrogates are no JSON text to begin with.
_NO_NUL = "^[^\\u0000]*$"


@extend_schema_field(
    {
        "type": "object",
        "nullable": True,
        "description": "≤ 10,000 bytes as JSON; no NUL in keys or text (PostgreSQL refuses it)",
        "propertyNames": {"pattern": _NO_NUL},
        "additionalProperties": {"$ref": "#/components/schemas/JsonValue"},
    }
)
class _EventParamsField(serializers.DictField):
    pass


@extend_schema_field({"not": {}, "description": "Not allowed here: one event or a batch."})
class _ForbiddenField(serializers.Field):
    pass


class _EventTimestampField(serializers.FloatField):
    """Documented by _EventTimestampExtension, with the bounds of the moment it is served."""


class _EventTimestampExtension(OpenApiSerializerFieldExtension):
    """The unit is read from the magnitude (services.timestamp_to_datetime): seconds, then
    milliseconds, then microseconds, each from 2000-01-01 to EVENTS_MAX_FUTURE_HOURS past the
    moment the schema is served. The API's own bound moves on with its clock, so what this
    schema allows stays accepted; a value just past the schema's bound may be accepted too, a
    little later (the one gap between schema and API: portfolio/tests/test_schemathesis.py)."""

    target_class = "analytics.apis._EventTimestampField"

    def map_serializer_field(self, auto_schema: Any, direction: Any) -> dict[str, Any]:
        low = EARLIEST.timestamp()
        high = math.floor(time.time()) + settings.EVENTS_MAX_FUTURE_HOURS * 3600
        return {
            "type": "number",
            "nullable": True,
            "description": "Unix s, ms or µs, from 2000-01-01; ≤ 72 h ahead; default: now",
            "anyOf": [
                {"minimum": low * scale, "maximum": high * scale} for scale in (1, 1000, 10**6)
            ],
        }


_EVENT_FIELDS: dict[str, serializers.Field] = {
    "event_name": serializers.RegexField(r"^[A-Za-z0-9_]{1,100}$"),
    "user_pseudo_id": serializers.RegexField(r"^[A-Za-z0-9._-]{1,200}$"),
    "event_params": _EventParamsField(required=False, allow_null=True),
    "event_timestamp": _EventTimestampField(required=False, allow_null=True),
    "event_id": serializers.CharField(
        required=False,
        allow_null=True,
        max_length=MAX_EVENT_ID_LENGTH,
        help_text="Client id used to drop duplicates",
    ),
}
_EventSchema = inline_serializer(
    "Event", fields={**_EVENT_FIELDS, "events": _ForbiddenField(required=False)}
)
_BatchedEventSchema = inline_serializer("BatchedEvent", fields=_EVENT_FIELDS)
# A body is one event XOR a batch: the validator refuses a mixture (validation.MIXED_MESSAGE).
_EventBatchSchema = inline_serializer(
    "EventBatch",
    fields={
        "events": serializers.ListField(child=_BatchedEventSchema, min_length=1, max_length=500),
        **{name: _ForbiddenField(required=False) for name in _EVENT_FIELDS},
    },
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
