"""The admin dashboard: a page (charts drawn by static/personalization/admin/dashboard.js) and
the JSON it reads. Both sit behind admin.site.admin_view: staff sessions only."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.response import TemplateResponse

from .dashboard import dashboard_data


def dashboard_page(request: HttpRequest) -> HttpResponse:
    context = {**admin.site.each_context(request), "title": "Dashboard"}
    return TemplateResponse(request, "admin/personalization/dashboard.html", context)


def dashboard_json(request: HttpRequest) -> HttpResponse:
    return JsonResponse(dashboard_data())
