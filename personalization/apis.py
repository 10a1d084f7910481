"""GET /api/personalization: the visitor's segment and what to feature, from cache."""

from __future__ import annotations

from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    inline_serializer,
)
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from analytics.validation import USER_ID_MESSAGE, USER_PSEUDO_ID_RE
from portfolio.api.exceptions import validation_error_response

from .selectors import personalization_get

_CONTRIBUTION_FIELDS = {
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


class PersonalizationApi(APIView):
    """Lean on purpose: no authentication, no throttling, one cache read on a hit."""

    authentication_classes: list[type] = []
    permission_classes: list[type] = []

    @extend_schema(
        parameters=[OpenApiParameter("user_id", str, required=True, description="user_pseudo_id")],
        responses={
            200: _Personalization,
            422: OpenApiResponse(description="Missing or invalid user_id"),
        },
        tags=["personalization"],
    )
    def get(self, request: Request) -> Response:
        user_id = request.query_params.get("user_id")
        if not user_id:
            return validation_error_response({"user_id": ["This query parameter is required."]})
        if not USER_PSEUDO_ID_RE.fullmatch(user_id):
            return validation_error_response({"user_id": [USER_ID_MESSAGE]})
        return Response(personalization_get(user_pseudo_id=user_id))
