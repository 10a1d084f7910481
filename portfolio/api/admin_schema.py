"""OpenAPI pieces every admin endpoint shares: its error responses."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, inline_serializer
from rest_framework import serializers

AdminError = inline_serializer("AdminError", fields={"detail": serializers.CharField()})
AdminValidationError = inline_serializer(
    "AdminValidationError",
    fields={
        "detail": serializers.CharField(),
        "errors": serializers.DictField(child=serializers.ListField(child=serializers.CharField())),
    },
)

AUTH_ERRORS = {
    401: OpenApiResponse(
        AdminError, description="No token, or a bad or expired one (WWW-Authenticate: Bearer)."
    ),
    403: OpenApiResponse(AdminError, description="The account may not use the admin API."),
}
MALFORMED = {400: OpenApiResponse(AdminError, description="Malformed JSON.")}
INVALID = {422: OpenApiResponse(AdminValidationError, description="Invalid input, by field.")}
NOT_FOUND = {404: OpenApiResponse(AdminError, description="No such object.")}

# Primary keys are bigint: anything else, or out of range, is simply not found.
MAX_ID = 2**63 - 1


def parse_id(value: str) -> int | None:
    if not value.isascii() or not value.isdigit() or len(value) > 19:
        return None
    number = int(value)
    return number if 0 < number <= MAX_ID else None
