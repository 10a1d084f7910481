"""Admin API tokens die with a password change or a deactivation, at once, whichever process
made the change (docs/ADMIN.md, "Token lifetime")."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from rest_framework.test import APIClient

from conftest import ADMIN_API_PASSWORD

pytestmark = pytest.mark.django_db

LOGIN = "/api/admin/login"
PROBE = "/api/admin/segments"  # any admin endpoint
NEW_PASSWORD = "a-brand-new-passphrase-77"


@pytest.fixture(autouse=True)
def _no_login_limit(settings: Any) -> None:
    settings.RATELIMIT_ENABLE = False


def login(password: str = ADMIN_API_PASSWORD) -> Any:
    return APIClient().post(LOGIN, {"username": "api-admin", "password": password}, format="json")


def bearer(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def assert_refused(response: Any) -> None:
    assert response.status_code == 401, response.content[:200]
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert isinstance(response.json()["detail"], str)


def test_token__password_set_and_saved__old_token_401_new_login_works(admin_api_user):
    old = bearer(login().json()["access_token"])
    assert old.get(PROBE).status_code == 200  # and now kept by this process

    admin_api_user.set_password(NEW_PASSWORD)
    admin_api_user.save()

    assert_refused(old.get(PROBE))
    assert login().status_code == 401
    fresh = login(NEW_PASSWORD)
    assert fresh.status_code == 200
    assert bearer(fresh.json()["access_token"]).get(PROBE).status_code == 200


def test_token__password_changed_in_django_admin_form__old_token_401(admin_api_user):
    old = bearer(login().json()["access_token"])
    assert old.get(PROBE).status_code == 200
    root = User.objects.create_superuser("root", "root@example.com", "root-password-long-1")
    browser = Client()
    browser.force_login(root)

    response = browser.post(
        f"/admin/auth/user/{admin_api_user.pk}/password/",
        {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD, "usable_password": "true"},
    )

    assert response.status_code == 302, response.content[:500]
    assert_refused(old.get(PROBE))
    assert login(NEW_PASSWORD).status_code == 200


def test_token__user_deactivated__401(admin_api_user):
    old = bearer(login().json()["access_token"])
    assert old.get(PROBE).status_code == 200

    admin_api_user.is_active = False
    admin_api_user.save()

    assert_refused(old.get(PROBE))


def test_token__same_password_set_again__old_token_still_401(admin_api_user):
    """A new salt makes a new hash: setting the same password also ends old sessions."""
    old = bearer(login().json()["access_token"])

    admin_api_user.set_password(ADMIN_API_PASSWORD)
    admin_api_user.save()

    assert_refused(old.get(PROBE))


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_token__password_changed_or_deactivated_in_another_process__refused_at_once(
    tmp_path: Path, redis_url
):
    """The server keeps checked tokens for 10 minutes here; the change, made in this (another)
    process, still reaches it on the very next request."""
    from django.contrib.auth.models import Permission

    from ops.tests.test_failure_drills import gunicorn

    user = User.objects.create_user("api-admin", password=ADMIN_API_PASSWORD, is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="use_admin_api"))
    with gunicorn(tmp_path, ADMIN_API_USER_CACHE_SECONDS="600", RATELIMIT_ENABLE="false") as server:
        status, _, body = server.call(
            "POST", LOGIN, {"username": "api-admin", "password": ADMIN_API_PASSWORD}
        )
        assert status == 200, body
        token = body["access_token"]

        def probe() -> tuple[int, dict[str, str]]:
            import urllib.error
            import urllib.request

            request = urllib.request.Request(  # noqa: S310 - loopback test server
                f"{server.base}{PROBE}", headers={"Authorization": f"Bearer {token}"}
            )
            try:
                with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310  # nosec B310
                    return response.status, dict(response.headers)
            except urllib.error.HTTPError as error:
                return error.code, dict(error.headers)

        assert probe()[0] == 200
        assert probe()[0] == 200  # served from the process's copy

        user.set_password(NEW_PASSWORD)
        user.save()

        status, headers = probe()
        assert status == 401
        assert headers["WWW-Authenticate"].startswith("Bearer")

        # Deactivation likewise: a fresh token, kept by the server, refused after the change.
        status, _, body = server.call(
            "POST", LOGIN, {"username": "api-admin", "password": NEW_PASSWORD}
        )
        assert status == 200, body
        token = body["access_token"]
        assert probe()[0] == 200
        assert probe()[0] == 200
        user.is_active = False
        user.save()
        assert probe()[0] == 401
