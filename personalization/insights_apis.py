"""Admin API for LLM insights: list them, queue an analysis."""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.utils import timezone
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from portfolio.api.admin_auth import AdminApiView
from portfolio.api.admin_schema import AUTH_ERRORS, INVALID, MALFORMED
from portfolio.api.fields import StrictIntegerField

from .models import LLMInsight

logger = logging.getLogger(__name__)

MAX_DAYS = 90
MAX_LIMIT = 100
MAX_OFFSET = 10_000_000
QUEUE_RETRY_AFTER_SECONDS = 30


class InsightRunSerializer(serializers.Serializer):
    days = StrictIntegerField(min_value=1, max_value=MAX_DAYS, required=False)


class InsightListQuerySerializer(serializers.Serializer):
    limit = StrictIntegerField(min_value=1, max_value=MAX_LIMIT, default=20)
    offset = StrictIntegerField(min_value=0, max_value=MAX_OFFSET, default=0)


class DraftRuleSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    segment = serializers.CharField(source="segment.code")
    version = serializers.IntegerField()
    status = serializers.CharField()


class InsightSerializer(serializers.ModelSerializer):
    draft_rules = DraftRuleSerializer(many=True, source="suggested_rule_objects")

    class Meta:
        model = LLMInsight
        fields = [
            "id",
            "created_at",
            "period_start",
            "period_end",
            "provider",
            "model",
            "status",
            "summary",
            "findings",
            "suggested_rules",
            "dropped_items",
            "verification",
            "prompt_tokens",
            "completion_tokens",
            "latency_ms",
            "prompt_version",
            "attempts",
            "error",
            "draft_rules",
        ]


_Detail = inline_serializer("InsightsError", fields={"detail": serializers.CharField()})
_Queued = inline_serializer(
    "InsightRunQueued",
    fields={
        "task_id": serializers.CharField(),
        "period_start": serializers.DateTimeField(),
        "period_end": serializers.DateTimeField(),
    },
)
_Page = inline_serializer(
    "InsightPage",
    fields={"count": serializers.IntegerField(), "results": InsightSerializer(many=True)},
)


class InsightListApi(AdminApiView):
    @extend_schema(
        parameters=[InsightListQuerySerializer],
        responses={
            200: _Page,
            **AUTH_ERRORS,
            **INVALID,
        },
        tags=["admin"],
    )
    def get(self, request: Request) -> Response:
        query = InsightListQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        limit, offset = query.validated_data["limit"], query.validated_data["offset"]
        insights = LLMInsight.objects.order_by("-created_at", "-id")
        page = insights.prefetch_related("suggested_rule_objects__segment")[offset : offset + limit]
        return Response(
            {"count": insights.count(), "results": InsightSerializer(page, many=True).data}
        )


class InsightRunApi(AdminApiView):
    @extend_schema(
        request=InsightRunSerializer,
        responses={
            202: _Queued,
            **MALFORMED,
            **AUTH_ERRORS,
            **INVALID,
            503: OpenApiResponse(_Detail, description="The task queue is unreachable."),
        },
        tags=["admin"],
    )
    def post(self, request: Request) -> Response:
        from .tasks import insights_run

        # No body at all parses to {} (the defaults); a body must be a JSON object, not `null`.
        data = request.data
        if not isinstance(data, dict):
            raise ValidationError({"non_field_errors": ["Expected a JSON object."]})
        body = InsightRunSerializer(data=data)
        body.is_valid(raise_exception=True)
        days = body.validated_data.get("days", settings.LLM_INSIGHTS_DAYS)
        # To the minute: a double click names the same period, so it is analysed once.
        end = timezone.now().replace(second=0, microsecond=0)
        start = end - timedelta(days=days)
        try:
            result = insights_run.apply_async(
                kwargs={"period_start": start.isoformat(), "period_end": end.isoformat()}
            )
        except Exception:
            logger.exception("llm.insight_queue_failed")
            return Response(
                {"detail": "The task queue is unavailable. Retry later."},
                status=status.HTTP_503_SERVICE_UNAVAILABLE,
                headers={"Retry-After": str(QUEUE_RETRY_AFTER_SECONDS)},
            )
        return Response(
            {"task_id": result.id, "period_start": start, "period_end": end},
            status=status.HTTP_202_ACCEPTED,
        )
