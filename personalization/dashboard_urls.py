from django.contrib import admin
from django.urls import path

from .dashboard_views import dashboard_json, dashboard_page

urlpatterns = [
    path("", admin.site.admin_view(dashboard_page), name="admin-dashboard"),
    path("data.json", admin.site.admin_view(dashboard_json), name="admin-dashboard-data"),
]
