"""GA4-compatible collection: POST /mp/collect, POST /debug/mp/collect, GET|POST /g/collect.

Thin views: check the stream and the body size, parse (measurement_protocol, gtag), store,
answer as GA4 does. No CSRF (APIView with no authentication: these are cross-site posts
without cookies) and no DRF parser: the body is read as bytes whatever its Content-Type, since
gtag sends text/plain and MP clients send application/json or text/plain.
"""

from __future__ import annotations

import hmac
import logging
import re
from collections.abc import Iterable
from typing import Any

from django.conf import settings
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    inline_serializer,
)
from rest_framework import serializers, status
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.parsers import BaseParser
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from portfolio.api.throttling import enforce_rate_limit

from .gtag import gtag_parse
from .measurement_protocol import mp_parse
from .models import EventSource, MeasurementStream
from .services import collected_store

logger = logging.getLogger(__name__)

MEASUREMENT_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,40}")
STREAM_REFUSED = "Unknown or inactive measurement_id, or wrong api_secret."
GTAG_STREAM_REFUSED = "Unknown or inactive measurement id (tid)."

_Detail = inline_serializer("CollectDetail", fields={"detail": serializers.CharField()})
_ValidationMessages = inline_serializer(
    "MPValidationMessages",
    fields={
        "validationMessages": serializers.ListField(
            child=inline_serializer(
                "MPValidationMessage",
                fields={
                    "fieldPath": serializers.CharField(),
                    "description": serializers.CharField(),
                    "validationCode": serializers.ChoiceField(
                        choices=[
                            "VALUE_INVALID",
                            "VALUE_REQUIRED",
                            "NAME_INVALID",
                            "NAME_RESERVED",
                            "VALUE_OUT_OF_BOUNDS",
                            "EXCEEDED_MAX_ENTITIES",
                            "NAME_DUPLICATED",
                        ]
                    ),
                },
            )
        )
    },
)
_MP_PARAMETERS = [
    OpenApiParameter("measurement_id", str, required=True, description="e.g. G-ABC123XYZ"),
    OpenApiParameter("api_secret", str, required=True, description="The stream's API secret"),
]
_RECEIVED = OpenApiResponse(description="Received (also when the payload was invalid)")
# Any body at all: like GA4, /mp/collect answers 204 to whatever it is sent (a body that is no
# JSON object becomes a dead letter) and /debug/mp/collect 200 with the validation messages.
# A schema that asked for an object would promise a 4xx for anything else.
_MP_BODY = {"application/json": OpenApiTypes.ANY, "text/plain": OpenApiTypes.STR}


def _refusals(forbidden: str) -> dict[int, OpenApiResponse]:
    return {
        403: OpenApiResponse(_Detail, description=forbidden),
        413: OpenApiResponse(_Detail, description="Body over the endpoint's limit"),
        429: OpenApiResponse(_Detail, description="Rate limited; see Retry-After"),
        503: OpenApiResponse(_Detail, description="Database unavailable; see Retry-After"),
    }


class _AnyAccept(BaseContentNegotiation):
    """Answer JSON whatever Accept says: beacons and GA4 clients send anything there."""

    def select_parser(self, request: Request, parsers: Iterable[BaseParser]) -> BaseParser | None:
        return next(iter(parsers), None)

    def select_renderer(
        self,
        request: Request,
        renderers: Iterable[BaseRenderer],
        format_suffix: str | None = None,
    ) -> tuple[BaseRenderer, str]:
        renderer = next(iter(renderers))
        return renderer, renderer.media_type


class _CollectApi(APIView):
    content_negotiation_class = _AnyAccept
    rate_limit_group = ""

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        enforce_rate_limit(request, group=self.rate_limit_group, rate=settings.RATELIMIT_EVENTS)


def _too_large(request: Request, limit: int) -> Response | None:
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > limit or len(request.body) > limit:
        return Response(
            {"detail": f"Request body over {limit} bytes."},
            status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
        )
    return None


def _active_stream(measurement_id: str) -> MeasurementStream | None:
    if not MEASUREMENT_ID_RE.fullmatch(measurement_id):
        return None
    return MeasurementStream.objects.filter(measurement_id=measurement_id, is_active=True).first()


def _mp_refusal(request: Request) -> Response | None:
    """403 for an unknown stream or wrong secret, 413 for an oversized body, else None."""
    if not _mp_stream_allowed(request):
        return Response({"detail": STREAM_REFUSED}, status=status.HTTP_403_FORBIDDEN)
    return _too_large(request, settings.MP_MAX_BODY_BYTES)


def _mp_stream_allowed(request: Request) -> bool:
    stream = _active_stream(request.query_params.get("measurement_id", ""))
    secret = request.query_params.get("api_secret", "")
    return stream is not None and hmac.compare_digest(
        stream.api_secret.encode(), secret.encode("utf-8", errors="replace")
    )


def _gtag_stream_allowed(measurement_id: str) -> bool:
    """gtag hits carry no secret. Once any stream is configured, a hit must name an active one;
    with none configured (a fresh install), every hit is welcome."""
    if not MeasurementStream.objects.exists():
        return True
    return _active_stream(measurement_id) is not None


class MpCollectApi(_CollectApi):
    """GA4 Measurement Protocol ingest. Like GA4 it answers 204 even to a malformed payload:
    valid events are stored, every invalid one (or the whole body when its envelope is bad) is
    kept as a RejectedEvent with GA4's validation codes. An unknown or inactive measurement_id
    or a wrong api_secret is 403 (API.md); a body over MP_MAX_BODY_BYTES is 413."""

    rate_limit_group = "mp.collect"

    @extend_schema(
        parameters=_MP_PARAMETERS,
        request=_MP_BODY,
        responses={204: _RECEIVED, **_refusals(STREAM_REFUSED)},
        tags=["collect"],
    )
    def post(self, request: Request) -> Response:
        refused = _mp_refusal(request)
        if refused:
            return refused
        measurement_id = request.query_params["measurement_id"]
        parsed = mp_parse(request.body, context=f"mp/collect {measurement_id}")
        accepted = collected_store(
            source=EventSource.MP,
            events=parsed.events,
            rejected=parsed.rejected,
            traits_by_visitor=parsed.traits_by_visitor,
        )
        logger.info(
            "mp.collected",
            extra={
                "measurement_id": measurement_id,
                "events": len(parsed.events),
                "accepted": accepted,
                "rejected": len(parsed.rejected),
            },
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


class MpDebugCollectApi(_CollectApi):
    """GA4's validation server: the same parsing and rules as /mp/collect, nothing stored.
    200 {"validationMessages": [...]}, [] when clean.

    GA4's own validation server does not check api_secret. Ours does, with the same 403 as
    /mp/collect: API.md fixes 403 for a wrong secret, a payload that validates here is then
    known to be accepted there, and an open validator would tell strangers which measurement
    ids exist."""

    rate_limit_group = "mp.collect"

    @extend_schema(
        parameters=_MP_PARAMETERS,
        request=_MP_BODY,
        responses={200: _ValidationMessages, **_refusals(STREAM_REFUSED)},
        tags=["collect"],
    )
    def post(self, request: Request) -> Response:
        refused = _mp_refusal(request)
        if refused:
            return refused
        parsed = mp_parse(request.body)
        return Response({"validationMessages": [m.as_ga4() for m in parsed.messages]})


class GtagCollectApi(_CollectApi):
    """gtag.js hits (server_container_url): shared fields in the query string, one event per
    body line, or the query string alone. 204 like GA4; bad lines become RejectedEvents with
    their line numbers. The stream is the query's `tid`: once any MeasurementStream exists it
    must name an active one, else 403; a body over GTAG_MAX_BODY_BYTES is 413."""

    rate_limit_group = "g.collect"
    # No HEAD: Django would answer it with get(), and a HEAD must not store an event.
    http_method_names = ["get", "post", "options"]

    @extend_schema(
        parameters=[OpenApiParameter("tid", str, description="Measurement id, e.g. G-ABC123XYZ")],
        request={"text/plain": OpenApiTypes.STR},
        responses={204: _RECEIVED, **_refusals(GTAG_STREAM_REFUSED)},
        tags=["collect"],
    )
    def post(self, request: Request) -> Response:
        return self._collect(request)

    @extend_schema(
        parameters=[OpenApiParameter("tid", str, description="Measurement id, e.g. G-ABC123XYZ")],
        responses={204: _RECEIVED, **_refusals(GTAG_STREAM_REFUSED)},
        tags=["collect"],
    )
    def get(self, request: Request) -> Response:
        return self._collect(request)

    def _collect(self, request: Request) -> Response:
        measurement_id = request.query_params.get("tid", "")
        if not _gtag_stream_allowed(measurement_id):
            return Response({"detail": GTAG_STREAM_REFUSED}, status=status.HTTP_403_FORBIDDEN)
        too_large = _too_large(request, settings.GTAG_MAX_BODY_BYTES)
        if too_large:
            return too_large
        body = request.body if request.method == "POST" else b""
        parsed = gtag_parse(
            query=request.META.get("QUERY_STRING", ""),
            body=body,
            context=f"g/collect {measurement_id}".strip(),
        )
        accepted = collected_store(
            source=EventSource.GTAG,
            events=parsed.events,
            rejected=parsed.rejected,
            traits_by_visitor=parsed.traits_by_visitor,
        )
        logger.info(
            "gtag.collected",
            extra={
                "measurement_id": parsed.measurement_id,
                "events": len(parsed.events),
                "accepted": accepted,
                "rejected": len(parsed.rejected),
            },
        )
        return Response(status=status.HTTP_204_NO_CONTENT)
