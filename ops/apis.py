from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from .health import OK, readiness

_ReadySerializer = inline_serializer(
    "Readiness",
    fields={
        "status": serializers.ChoiceField(choices=["ok", "error"]),
        "checks": serializers.DictField(child=serializers.CharField()),
        "failing": serializers.ListField(child=serializers.CharField(), required=False),
    },
)


class HealthApi(APIView):
    """Liveness: the process serves requests. Touches nothing else."""

    @extend_schema(
        responses=inline_serializer("Health", fields={"status": serializers.CharField()}),
        tags=["ops"],
    )
    def get(self, request: Request) -> Response:
        return Response({"status": "ok"})


class ReadyApi(APIView):
    """Readiness: database, cache and broker reachable; 503 naming what is not."""

    @extend_schema(responses={200: _ReadySerializer, 503: _ReadySerializer}, tags=["ops"])
    def get(self, request: Request) -> Response:
        checks = readiness()
        failing = [name for name, result in checks.items() if result != OK]
        if failing:
            return Response({"status": "error", "checks": checks, "failing": failing}, status=503)
        return Response({"status": "ok", "checks": checks})
