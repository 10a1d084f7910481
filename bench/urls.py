"""URLs for benchmark runs only: the product's routes plus the baselines they are compared to."""

from django.http import HttpRequest, JsonResponse
from django.urls import include, path


def bare_json(request: HttpRequest) -> JsonResponse:
    """The ceiling for a Django JSON view: no database, no cache, same middleware."""
    return JsonResponse({"status": "ok", "segment": "CASUAL", "priority_sections": ["about"]})


urlpatterns = [
    path("bench/bare", bare_json),
    path("", include("portfolio.urls")),
]
