from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from ops.admin_login import throttled_admin_login

urlpatterns = [
    # The hot path first: Django tries patterns in order.
    path("", include("personalization.urls")),
    path("", include("ops.urls")),
    path("", include("analytics.urls")),
    path("", include("analytics.collect_urls")),
    path("", include("personalization.demo_urls")),
    path("", include("analytics.admin_urls")),
    path("", include("personalization.admin_urls")),
    path("", include("personalization.insights_urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # The split view serves Swagger UI's init script from ?script instead of inline (CSP).
    path(
        "api/docs/",
        SpectacularSwaggerSplitView.as_view(url_name="schema", template_name="ops/swagger_ui.html"),
        name="docs",
    ),
    path("admin/dashboard/", include("personalization.dashboard_urls")),
    # Before admin.site.urls, so the admin's own login (and every redirect to it) is throttled.
    path("admin/login/", throttled_admin_login, name="admin-login-throttled"),
    path("admin/", admin.site.urls),
]
