"""Django admin's login form, throttled like POST /api/admin/login: RATELIMIT_ADMIN_LOGIN
attempts per client IP, counted in the same group, so guessing through either door spends one
budget. Past it: 429 with Retry-After and a plain page. Only POSTs (attempts) count."""

from __future__ import annotations

from django.conf import settings
from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from portfolio.api.throttling import RateLimited, enforce_rate_limit

LOGIN_RATE_GROUP = "admin-login"  # ops/admin_apis.py counts API logins in this group too


def throttled_admin_login(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        try:
            enforce_rate_limit(request, group=LOGIN_RATE_GROUP, rate=settings.RATELIMIT_ADMIN_LOGIN)
        except RateLimited as exc:
            retry_after = max(1, int(getattr(exc, "wait", None) or 60))
            response = TemplateResponse(
                request,
                "admin/login_throttled.html",
                {
                    **admin.site.each_context(request),
                    "title": "Too many sign-in attempts",
                    "retry_after": retry_after,
                },
                status=429,
            )
            response["Retry-After"] = str(retry_after)
            return response
    return admin.site.login(request)
