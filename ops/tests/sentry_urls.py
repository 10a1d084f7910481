"""URLconf for the Sentry test's subprocess: the real routes plus a view and a task that fail,
holding a visitor id where a careless setup would send it (locals, task arguments)."""

from celery import shared_task
from django.http import HttpRequest, HttpResponse
from django.urls import include, path


def fail_with_visitor_in_locals(request: HttpRequest) -> HttpResponse:
    visitor = request.GET.get("user_id", "")
    raise RuntimeError(f"sentry test failure ({len(visitor)} characters)")


@shared_task(name="ops.tests.sentry_task_fails")
def sentry_task_fails(user_pseudo_id: str) -> None:
    raise ValueError("sentry test task failure")


urlpatterns = [
    path("sentry-test/fail", fail_with_visitor_in_locals),
    path("", include("portfolio.urls")),
]
