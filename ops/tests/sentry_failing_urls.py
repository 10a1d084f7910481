"""URLconf for the scrubbing tests: the real routes that carry a visitor id (same patterns, so
Sentry and the logs see what they see in production), served by views that fail."""

from django.urls import include, path

from .sentry_urls import admin_visitor_fails, personalization_fails

urlpatterns = [
    path("api/personalization", personalization_fails),
    path("api/admin/visitors/<str:user_pseudo_id>", admin_visitor_fails),
    path("", include("portfolio.urls")),
]
