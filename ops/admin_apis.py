"""POST /api/admin/login: staff credentials in, a short-lived Bearer JWT out."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth import authenticate
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.exceptions import AuthenticationFailed, PermissionDenied
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework_simplejwt.tokens import AccessToken

from portfolio.api.admin_auth import can_use_admin_api
from portfolio.api.admin_schema import INVALID, MALFORMED
from portfolio.api.throttling import enforce_rate_limit

from .admin_login import LOGIN_RATE_GROUP


class LoginSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150, trim_whitespace=False)
    password = serializers.CharField(max_length=4096, trim_whitespace=False)


_TokenSerializer = inline_serializer(
    "AdminToken",
    fields={
        "access_token": serializers.CharField(),
        "token_type": serializers.ChoiceField(choices=["bearer"]),
        "expires_in": serializers.IntegerField(help_text="Seconds until the token expires."),
    },
)
_Error = inline_serializer("AdminLoginError", fields={"detail": serializers.CharField()})


class AdminLoginApi(APIView):
    authentication_classes: list = []
    permission_classes: list = []

    @extend_schema(
        request=LoginSerializer,
        responses={
            200: _TokenSerializer,
            **MALFORMED,
            401: OpenApiResponse(_Error, description="Wrong username or password."),
            403: OpenApiResponse(_Error, description="The account may not use the admin API."),
            **INVALID,
            429: OpenApiResponse(_Error, description="Too many attempts from this address."),
        },
        tags=["admin"],
        auth=[],
    )
    def post(self, request: Request) -> Response:
        # Every attempt counts, successful or not: the limit is on guessing, per client IP.
        enforce_rate_limit(request, group=LOGIN_RATE_GROUP, rate=settings.RATELIMIT_ADMIN_LOGIN)
        credentials = LoginSerializer(data=request.data)
        credentials.is_valid(raise_exception=True)
        user = authenticate(
            request._request,
            username=credentials.validated_data["username"],
            password=credentials.validated_data["password"],
        )
        if user is None:
            raise AuthenticationFailed("Invalid username or password.")
        if not can_use_admin_api(user):
            raise PermissionDenied("This account may not use the admin API.")
        token = AccessToken.for_user(user)
        return Response(
            {
                "access_token": str(token),
                "token_type": "bearer",
                "expires_in": int(settings.SIMPLE_JWT["ACCESS_TOKEN_LIFETIME"].total_seconds()),
            }
        )
