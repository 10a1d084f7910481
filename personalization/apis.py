"""GET /api/personalization: the visitor's segment and what to feature, from cache."""

from __future__ import annotations

import json
import logging
from typing import Any

from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    inline_serializer,
)
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.views import APIView

from analytics.validation import USER_ID_MESSAGE, USER_PSEUDO_ID_RE
from portfolio.api.exceptions import database_unavailable

from .selectors import personalization_degraded, personalization_get

logger = logging.getLogger(__name__)

JSON = "application/json"
DEGRADED_HEADER = "X-Personalization-Degraded"

_CONTRIBUTION_FIELDS: dict[str, serializers.Field] = {
    "signal": serializers.CharField(),
    "segment": serializers.CharField(),
    "weight": serializers.FloatField(),
    "count": serializers.FloatField(),
    "contribution": serializers.FloatField(),
}
_Explanation = inline_serializer(
    "Explanation",
    fields={
        "what": serializers.CharField(),
        "why": serializers.CharField(),
        "so_what": serializers.CharField(),
        "recommendation": serializers.CharField(),
        "priors": serializers.DictField(child=serializers.FloatField()),
        "contributions": inline_serializer("Contribution", fields=_CONTRIBUTION_FIELDS, many=True),
    },
)
_Personalization = inline_serializer(
    "Personalization",
    fields={
        "user_id": serializers.CharField(),
        "segment": serializers.CharField(),
        "confidence": serializers.FloatField(),
        "scores": serializers.DictField(child=serializers.FloatField()),
        "priority_sections": serializers.ListField(child=serializers.CharField()),
        "featured_projects": serializers.ListField(child=serializers.CharField()),
        "highlight_skills": serializers.ListField(child=serializers.CharField()),
        "reasoning": serializers.CharField(),
        "explanation": _Explanation,
        "variant": serializers.ChoiceField(choices=["personalized", "holdout"]),
        "rule_version": serializers.IntegerField(),
        "segmented_at": serializers.DateTimeField(allow_null=True),
    },
)


_ValidationError = inline_serializer(
    "PersonalizationError",
    fields={
        "detail": serializers.CharField(),
        "errors": serializers.DictField(child=serializers.ListField(child=serializers.CharField())),
    },
)


def _error(errors: dict[str, list[str]]) -> HttpResponse:
    field, messages = next(iter(errors.items()))
    body = {"detail": f"{field}: {messages[0]}", "errors": errors}
    return HttpResponse(json.dumps(body), status=422, content_type=JSON)


def _degraded(user_id: str, exc: DatabaseError) -> HttpResponse:
    """A visitor the cache cannot answer while the database is unreachable: the default
    experience (what an unknown visitor gets), marked so the frontend and monitoring can tell,
    and not to be cached anywhere. The page still renders; a 503 would leave it blank."""
    logger.warning(
        "personalization.degraded", extra={"reason": "database", "error": type(exc).__name__}
    )
    response = HttpResponse(personalization_degraded(user_pseudo_id=user_id), content_type=JSON)
    response[DEGRADED_HEADER] = "database"
    response["Cache-Control"] = "no-store"
    return response


class PersonalizationApi(APIView):
    """The hot path. DRF describes it (schema, docs) but does not serve it: `dispatch` skips
    DRF's request wrapping, negotiation, authentication and renderers, which cost more than
    the rest of the request on a cache hit. GET only; anything else is 405."""

    authentication_classes: list[type] = []
    permission_classes: list[type] = []
    http_method_names = ["get", "options"]

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if request.method != "GET":
            return super().dispatch(request, *args, **kwargs)
        user_id = request.GET.get("user_id")
        if not user_id:
            return _error({"user_id": ["This query parameter is required."]})
        if not USER_PSEUDO_ID_RE.fullmatch(user_id):
            return _error({"user_id": [USER_ID_MESSAGE]})
        try:
            # Already JSON: the cached bytes go out as they are.
            return HttpResponse(personalization_get(user_pseudo_id=user_id), content_type=JSON)
        except DatabaseError as exc:
            if not database_unavailable(exc):
                raise
            return _degraded(user_id, exc)

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "user_id",
                str,
                required=True,
                description="user_pseudo_id",
                pattern=f"^{USER_PSEUDO_ID_RE.pattern}$",
            ),
            OpenApiParameter(
                DEGRADED_HEADER,
                str,
                location=OpenApiParameter.HEADER,
                response=[200],
                enum=["database"],
                description="Present when the database was unreachable: the default (CASUAL) "
                "experience was served instead of the visitor's own.",
            ),
        ],
        responses={
            200: _Personalization,
            422: OpenApiResponse(_ValidationError, description="Missing or invalid user_id"),
        },
        tags=["personalization"],
    )
    def get(self, request: Request) -> HttpResponseBase:  # documentation only; dispatch serves GET
        return self.dispatch(request._request)
