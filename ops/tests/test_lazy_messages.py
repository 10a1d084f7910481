"""LazyMessageMiddleware: Django's message framework unchanged for the admin, no message store
built for requests that never use it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib import messages
from django.contrib.sessions.middleware import SessionMiddleware
from django.http import HttpRequest, HttpResponse
from django.test import RequestFactory
from django.utils.functional import empty

from ops.middleware import LazyMessageMiddleware


def _stack(view: Callable[[HttpRequest], HttpResponse]) -> Callable[[HttpRequest], Any]:
    return SessionMiddleware(LazyMessageMiddleware(view))  # type: ignore[arg-type]


def test_request__view_never_touches_messages__no_store_built_and_no_cookie():
    seen: dict[str, Any] = {}

    def view(request: HttpRequest) -> HttpResponse:
        seen["request"] = request
        return HttpResponse("ok")

    response = _stack(view)(RequestFactory().get("/api/personalization"))

    assert seen["request"]._messages._wrapped is empty
    assert "messages" not in response.cookies


def test_request__view_adds_message__stored_in_cookie():
    def view(request: HttpRequest) -> HttpResponse:
        messages.success(request, "Activated 1 rule(s).")
        return HttpResponse("ok")

    response = _stack(view)(RequestFactory().get("/admin/"))

    assert response.cookies["messages"].value  # signed: read back in the next test


def test_next_request__reads_stored_message__message_shown_and_cookie_cleared():
    def add(request: HttpRequest) -> HttpResponse:
        messages.warning(request, "Pick at most one rule per segment.")
        return HttpResponse("ok")

    def show(request: HttpRequest) -> HttpResponse:
        return HttpResponse(" | ".join(str(m) for m in messages.get_messages(request)))

    stored = _stack(add)(RequestFactory().get("/admin/")).cookies["messages"].value
    request = RequestFactory().get("/admin/")
    request.COOKIES["messages"] = stored

    response = _stack(show)(request)

    assert response.content == b"Pick at most one rule per segment."
    assert response.cookies["messages"].value == ""  # read: deleted


@pytest.mark.django_db
def test_admin_action__message_user__shown_on_the_next_page(client, django_user_model):
    client.force_login(django_user_model.objects.create_superuser("root", "r@example.com", "pw"))

    response = client.post(
        "/admin/personalization/personalizationrule/",
        {"action": "approve_and_activate", "index": 0},
        follow=True,
    )

    # No rule selected: Django's own message, carried through the redirect by the store.
    assert "Items must be selected" in response.content.decode()
