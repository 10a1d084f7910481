"""URLconf for the Sentry test's subprocess: the real routes plus a view and a task that fail,
holding a visitor id where a careless setup would send it (locals, task arguments). And the
views of `failing_urlpatterns` (sentry_failing_urls): the routes that carry a visitor id,
failing as badly as they could: an exception naming the id, or a 5xx response that Django logs
with the request."""

from celery import shared_task
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import include, path


def fail_with_visitor_in_locals(request: HttpRequest) -> HttpResponse:
    visitor = request.GET.get("user_id", "")
    raise RuntimeError(f"sentry test failure ({len(visitor)} characters)")


@shared_task(name="ops.tests.sentry_task_fails")
def sentry_task_fails(user_pseudo_id: str) -> None:
    raise ValueError("sentry test task failure")


def personalization_fails(request: HttpRequest) -> HttpResponse:
    user_id = request.GET.get("user_id", "")
    if request.GET.get("respond"):
        return JsonResponse({"detail": "unavailable"}, status=503)
    raise KeyError(user_id)  # what `profiles[user_id]` raises


def admin_visitor_fails(request: HttpRequest, user_pseudo_id: str) -> HttpResponse:
    if request.GET.get("respond"):
        return JsonResponse({"detail": "unavailable"}, status=503)
    raise LookupError(f"visitor {user_pseudo_id} could not be read")


@shared_task(name="ops.tests.sentry_task_fails_naming")
def sentry_task_fails_naming(user_pseudo_id: str) -> None:
    raise ValueError(f"cannot segment {user_pseudo_id}")


urlpatterns = [
    path("sentry-test/fail", fail_with_visitor_in_locals),
    path("", include("portfolio.urls")),
]
