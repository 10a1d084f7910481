"""Who may use the admin API: active staff users holding `ops.use_admin_api`, with a Bearer JWT.

Every admin endpoint derives from AdminApiView, so authentication and permission are decided
here once: no token or a bad/expired one is 401 with `WWW-Authenticate: Bearer`, a valid token
of a user who lost staff status or the permission is 403.

A token dies with its user's password: it carries a digest of the password hash it was issued
under (simplejwt's CHECK_REVOKE_TOKEN claim), and a token whose digest no longer matches, or
whose user is inactive, is 401. Any change of the stored hash counts (set_password, the admin
form, `manage.py changepassword`, a hasher upgrade at login).

The token's user, with the decision, is kept per process for ADMIN_API_USER_CACHE_SECONDS (10):
an admin script's requests then cost no user and permission queries. The copy is keyed by a
generation number in the shared cache, which every saved change to a user, group or permission
moves (ORM signals, in any process): the next request anywhere looks the user up again. Only a
change that bypasses the ORM's signals (a queryset update, raw SQL) waits for the seconds to
pass; with the shared cache unreachable, nothing is kept. The checked token is kept as long,
never past its own expiry: its signature and claims are checked once, not on every request.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.cache import cache
from django.db import transaction
from django.db.models.signals import m2m_changed, post_delete, post_save
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.views import APIView
from rest_framework_simplejwt.authentication import JWTAuthentication
from rest_framework_simplejwt.settings import api_settings

logger = logging.getLogger(__name__)

ADMIN_API_PERMISSION = "ops.use_admin_api"
USERS_GENERATION_KEY = "admin-api:users-generation"


def can_use_admin_api(user: Any) -> bool:
    return bool(
        user is not None
        and user.is_active
        and user.is_staff
        and user.has_perm(ADMIN_API_PERMISSION)
    )


class _Recent:
    """Entries looked up lately, each with its own expiry, in this process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[Any, tuple[float, Any]] = {}

    def get(self, key: Any) -> Any | None:
        entry = self._entries.get(key)
        return entry[1] if entry is not None and entry[0] > time.monotonic() else None

    def put(self, key: Any, value: Any, seconds: float) -> None:
        with self._lock:
            if len(self._entries) >= 1000:  # admins are few; this only bounds a flood of keys
                self._entries.clear()
            self._entries[key] = (time.monotonic() + seconds, value)

    def clear(self, **_: Any) -> None:
        with self._lock:
            self._entries.clear()


recent_users = _Recent()
recent_tokens = _Recent()


class AdminJWTAuthentication(JWTAuthentication):
    """simplejwt's Bearer token check; the realm names what the token is for."""

    www_authenticate_realm = "admin-api"

    def get_validated_token(self, raw_token: bytes) -> Any:
        seconds = settings.ADMIN_API_USER_CACHE_SECONDS
        if seconds > 0 and (token := recent_tokens.get(raw_token)) is not None:
            return token
        token = super().get_validated_token(raw_token)
        # Kept only while it is still valid: an expired token is checked again, and refused.
        seconds = min(seconds, float(token.get("exp", 0)) - time.time())
        if seconds > 0:
            recent_tokens.put(raw_token, token, seconds)
        return token

    def get_user(self, validated_token: Any) -> Any:
        seconds = settings.ADMIN_API_USER_CACHE_SECONDS
        generation = users_generation() if seconds > 0 else None
        # The password claim is part of the key: a copy only ever answers for tokens that
        # passed simplejwt's check against the hash it was loaded with.
        key = (
            generation,
            validated_token.get(api_settings.USER_ID_CLAIM),
            validated_token.get(api_settings.REVOKE_TOKEN_CLAIM),
        )
        if generation is not None and (user := recent_users.get(key)) is not None:
            return user
        user = super().get_user(validated_token)  # 401 if inactive or the password changed
        if generation is not None:
            can_use_admin_api(user)  # fills the user's permission cache before it is shared
            recent_users.put(key, user, seconds)
        return user


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


def users_generation() -> str | None:
    """The shared generation of users and permissions; None when the cache cannot say."""
    try:
        return str(cache.get(USERS_GENERATION_KEY, "0"))
    except Exception:  # the shared cache is down: check every request against the database
        return None


def _forget_users() -> None:
    recent_users.clear()
    recent_tokens.clear()
    try:
        cache.set(USERS_GENERATION_KEY, uuid.uuid4().hex, timeout=None)
    except Exception:  # other processes then notice within ADMIN_API_USER_CACHE_SECONDS
        logger.warning("admin_api.users_generation_not_shared")


def _users_changed(**kwargs: Any) -> None:
    # Now, for this process; and again once committed, so no process reloads the user from
    # the database between the two and keeps the old row under the new generation.
    _forget_users()
    transaction.on_commit(_forget_users)


_User = get_user_model()
for _model in (_User, Group):
    post_save.connect(_users_changed, sender=_model, dispatch_uid=f"admin-api-users-{_model}")
    post_delete.connect(_users_changed, sender=_model, dispatch_uid=f"admin-api-users-d-{_model}")
for _through in (_User.groups.through, _User.user_permissions.through, Group.permissions.through):
    m2m_changed.connect(_users_changed, sender=_through, dispatch_uid=f"admin-api-m2m-{_through}")
