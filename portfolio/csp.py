"""Content-Security-Policy on every response (Django 5.2 has none built in).

HTML pages (admin, dashboard, /api/docs/, /demo/, error pages) get CSP_POLICY: our own origin
only, no inline script or style, so an injected tag or attribute does nothing. Everything else
(JSON, text, JavaScript) gets CSP_API_POLICY, which only forbids rendering and framing. A view
that sets its own header keeps it. CSP_REPORT_ONLY sends the same policies as
Content-Security-Policy-Report-Only, to try a change on a live site first.
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

ENFORCE = "Content-Security-Policy"
REPORT_ONLY = "Content-Security-Policy-Report-Only"


class ContentSecurityPolicyMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        header = REPORT_ONLY if settings.CSP_REPORT_ONLY else ENFORCE
        if ENFORCE in response or REPORT_ONLY in response:
            return response
        is_html = response.get("Content-Type", "").startswith("text/html")
        policy = settings.CSP_POLICY if is_html else settings.CSP_API_POLICY
        if policy:
            response[header] = policy
        return response
