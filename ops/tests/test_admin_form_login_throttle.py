"""Django admin's login form (/admin/login/) is throttled like POST /api/admin/login."""

from __future__ import annotations

import time

import pytest
from django.test import Client
from django.urls import resolve, reverse
from django_ratelimit import core

from conftest import ADMIN_API_PASSWORD

pytestmark = pytest.mark.django_db
FORM = "/admin/login/"


@pytest.fixture(autouse=True)
def _one_window(monkeypatch):
    """django-ratelimit counts in fixed windows; a test must not straddle two of them."""
    end = int(time.time()) + 60
    monkeypatch.setattr(core, "_get_window", lambda value, period: end)


def attempt(client: Client, password: str, ip: str):
    return client.post(
        FORM, {"username": "api-admin", "password": password, "next": "/admin/"}, REMOTE_ADDR=ip
    )


def test_admin_form__sixth_attempt_in_a_minute__429_with_retry_after(admin_api_user):
    client = Client()
    statuses = [attempt(client, "wrong", "198.51.100.21").status_code for _ in range(5)]
    limited = attempt(client, ADMIN_API_PASSWORD, "198.51.100.21")

    assert statuses == [200] * 5  # the form again, with its error
    assert limited.status_code == 429
    assert int(limited["Retry-After"]) >= 1
    assert b"Too many sign-in attempts" in limited.content
    assert "_auth_user_id" not in client.session  # the right password did not get through
    # Another address has its own budget, and the right password works there.
    assert attempt(Client(), ADMIN_API_PASSWORD, "198.51.100.22").status_code == 302


def test_admin_form__viewing_the_form__not_counted(admin_api_user):
    client = Client()
    for _ in range(10):
        assert client.get(FORM, REMOTE_ADDR="198.51.100.23").status_code == 200

    assert attempt(client, ADMIN_API_PASSWORD, "198.51.100.23").status_code == 302


def test_admin_form_and_api__share_one_budget_per_ip(admin_api_user):
    api = Client()
    for _ in range(3):
        response = api.post(
            "/api/admin/login",
            {"username": "api-admin", "password": "wrong"},
            content_type="application/json",
            REMOTE_ADDR="198.51.100.24",
        )
        assert response.status_code == 401
    form = Client()
    assert [attempt(form, "wrong", "198.51.100.24").status_code for _ in range(3)] == [
        200,
        200,
        429,
    ]


def test_admin_form__rate_limits_off__never_429(admin_api_user, settings):
    settings.RATELIMIT_ENABLE = False
    client = Client()

    assert {attempt(client, "wrong", "198.51.100.25").status_code for _ in range(8)} == {200}


def test_admin_login_url__every_redirect_lands_on_the_throttled_view():
    assert resolve(reverse("admin:login")).url_name == "admin-login-throttled"
    assert Client().get("/admin/")["Location"].startswith("/admin/login/")
