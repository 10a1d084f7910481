"""Who may use the admin API: active staff users holding `ops.use_admin_api`, with a Bearer JWT.

Every admin endpoint derives from AdminApiView, so authentication and permission are decided
here once: no token or a bad/expired one is 401 with `WWW-Authenticate: Bearer`, a valid token
of a user who lost staff status or the permission is 403.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.views import APIView
from rest_framework_simplejwt.authentication import JWTAuthentication

ADMIN_API_PERMISSION = "ops.use_admin_api"


def can_use_admin_api(user: Any) -> bool:
    return bool(
        user is not None
        and user.is_active
        and user.is_staff
        and user.has_perm(ADMIN_API_PERMISSION)
    )


class AdminJWTAuthentication(JWTAuthentication):
    """simplejwt's Bearer token check; the realm names what the token is for."""

    www_authenticate_realm = "admin-api"


class IsAdminApiUser(BasePermission):
    message = "This account may not use the admin API."

    def has_permission(self, request: Request, view: APIView) -> bool:
        return can_use_admin_api(request.user)


class AdminApiView(APIView):
    authentication_classes = [AdminJWTAuthentication]
    permission_classes = [IsAdminApiUser]


class AdminJWTScheme(OpenApiAuthenticationExtension):
    target_class = "portfolio.api.admin_auth.AdminJWTAuthentication"
    name = "adminBearer"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
