"""POST /api/admin/login and the Bearer check every admin endpoint shares."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.test import override_settings
from django.urls import path
from rest_framework.response import Response
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import AccessToken

from conftest import ADMIN_API_PASSWORD
from portfolio.api.admin_auth import AdminApiView

pytestmark = pytest.mark.django_db
LOGIN = "/api/admin/login"


class _WhoAmI(AdminApiView):
    def get(self, request):
        return Response({"username": request.user.username})


urlpatterns = [path("whoami", _WhoAmI.as_view())]


def login(client: APIClient, username: str, password: str, ip: str = "203.0.113.7"):
    return client.post(
        LOGIN, {"username": username, "password": password}, format="json", REMOTE_ADDR=ip
    )


def test_staff_with_permission_gets_a_working_bearer_token(admin_api_user):
    client = APIClient()
    response = login(client, "api-admin", ADMIN_API_PASSWORD)
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 30 * 60
    token = AccessToken(body["access_token"])
    assert int(token["user_id"]) == admin_api_user.pk

    with override_settings(ROOT_URLCONF=__name__):
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {body['access_token']}")
        assert client.get("/whoami").json() == {"username": "api-admin"}


def test_superuser_needs_no_explicit_permission():
    User.objects.create_superuser("root", "root@example.com", "another-long-password-1")
    assert login(APIClient(), "root", "another-long-password-1").status_code == 200


@pytest.mark.parametrize(
    ("username", "password"),
    [("api-admin", "wrong-password"), ("nobody", ADMIN_API_PASSWORD), ("api-admin", "")],
)
def test_bad_credentials_are_401_with_bearer_challenge(admin_api_user, username, password):
    response = login(APIClient(), username, password)
    if password == "":
        assert response.status_code == 422
        assert "password" in response.json()["errors"]
        return
    assert response.status_code == 401
    assert response.json() == {"detail": "Invalid username or password."}
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_staff_without_permission_and_non_staff_are_403():
    User.objects.create_user("editor", password="editor-password-123", is_staff=True)
    User.objects.create_user("visitor", password="visitor-password-123")
    for name in ("editor", "visitor"):
        response = login(APIClient(), name, f"{name}-password-123")
        assert response.status_code == 403
        assert response.json() == {"detail": "This account may not use the admin API."}


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"username": "x"},
        {"username": ["a"], "password": "b"},
        {"username": "x" * 151, "password": "p"},
    ],
)
def test_malformed_login_bodies_are_422(body):
    response = APIClient().post(LOGIN, body, format="json")
    assert response.status_code == 422
    assert response.json()["errors"]


def test_malformed_json_is_400():
    response = APIClient().post(LOGIN, "{not json", content_type="application/json")
    assert response.status_code == 400


def test_sixth_attempt_in_a_minute_from_one_ip_is_429(admin_api_user):
    client = APIClient()
    statuses = [
        login(client, "api-admin", "wrong", ip="198.51.100.9").status_code for _ in range(6)
    ]
    assert statuses == [401] * 5 + [429]
    limited = login(client, "api-admin", ADMIN_API_PASSWORD, ip="198.51.100.9")
    assert limited.status_code == 429
    assert int(limited["Retry-After"]) >= 1
    assert limited.json() == {"detail": "Rate limit exceeded. Try again later."}
    # Another address is counted on its own.
    assert login(client, "api-admin", ADMIN_API_PASSWORD, ip="198.51.100.10").status_code == 200


@pytest.fixture
def _whoami_urls(settings):
    settings.ROOT_URLCONF = __name__


@pytest.mark.usefixtures("_whoami_urls")
class TestBearerCheck:
    def test_missing_token_is_401(self):
        response = APIClient().get("/whoami")
        assert response.status_code == 401
        assert response["WWW-Authenticate"].startswith("Bearer")
        assert isinstance(response.json()["detail"], str)

    @pytest.mark.parametrize("header", ["Bearer nonsense", "Bearer ", "Basic abc", "Bearer a.b.c"])
    def test_garbage_tokens_are_401(self, header):
        response = APIClient().get("/whoami", HTTP_AUTHORIZATION=header)
        assert response.status_code == 401
        assert response["WWW-Authenticate"].startswith("Bearer")
        assert isinstance(response.json()["detail"], str)

    def test_expired_token_is_401(self, admin_api_user):
        token = AccessToken.for_user(admin_api_user)
        token.set_exp(lifetime=-timedelta(seconds=1))
        response = APIClient().get("/whoami", HTTP_AUTHORIZATION=f"Bearer {token}")
        assert response.status_code == 401

    def test_token_of_a_user_who_lost_staff_is_403(self, admin_api_user, admin_client):
        admin_api_user.is_staff = False
        admin_api_user.save()
        assert admin_client.get("/whoami").status_code == 403

    def test_token_of_a_deactivated_user_is_401(self, admin_api_user, admin_client):
        admin_api_user.is_active = False
        admin_api_user.save()
        assert admin_client.get("/whoami").status_code == 401


@pytest.mark.usefixtures("_whoami_urls")
class TestTokenUserReuse:
    """A process keeps a token's user and decision for ADMIN_API_USER_CACHE_SECONDS."""

    def test_second_request_costs_no_query(self, admin_client, django_assert_num_queries):
        assert admin_client.get("/whoami").status_code == 200
        with django_assert_num_queries(0):
            assert admin_client.get("/whoami").json() == {"username": "api-admin"}

    def test_losing_staff_after_a_request__403_on_the_next(self, admin_api_user, admin_client):
        assert admin_client.get("/whoami").status_code == 200
        admin_api_user.is_staff = False
        admin_api_user.save()
        assert admin_client.get("/whoami").status_code == 403

    def test_permission_removed_after_a_request__403_on_the_next(
        self, admin_api_user, admin_client
    ):
        from django.contrib.auth.models import Permission

        assert admin_client.get("/whoami").status_code == 200
        admin_api_user.user_permissions.remove(Permission.objects.get(codename="use_admin_api"))
        assert admin_client.get("/whoami").status_code == 403

    def test_change_without_signal__seen_once_the_seconds_pass(
        self, admin_api_user, admin_client, settings
    ):
        import time

        settings.ADMIN_API_USER_CACHE_SECONDS = 1
        assert admin_client.get("/whoami").status_code == 200
        # What another process would do: this process hears no signal of it.
        User.objects.filter(pk=admin_api_user.pk).update(is_active=False)
        assert admin_client.get("/whoami").status_code == 200
        time.sleep(1.05)
        assert admin_client.get("/whoami").status_code == 401

    def test_token_expiring_within_the_seconds__refused_once_expired(
        self, admin_api_user, settings
    ):
        import time

        settings.ADMIN_API_USER_CACHE_SECONDS = 10
        token = AccessToken.for_user(admin_api_user)
        token.set_exp(lifetime=timedelta(seconds=2))
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")

        assert client.get("/whoami").status_code == 200
        time.sleep(max(0.0, float(token["exp"]) - time.time()) + 0.05)

        assert client.get("/whoami").status_code == 401

    def test_tampered_copy_of_a_checked_token__refused(self, admin_client, admin_token):
        assert admin_client.get("/whoami").status_code == 200
        header, payload, signature = admin_token.split(".")
        forged = APIClient()
        forged.credentials(HTTP_AUTHORIZATION=f"Bearer {header}.{payload}.{signature[::-1]}")

        assert forged.get("/whoami").status_code == 401

    def test_zero_seconds__every_request_looks_the_user_up(
        self, admin_api_user, admin_client, settings
    ):
        settings.ADMIN_API_USER_CACHE_SECONDS = 0
        assert admin_client.get("/whoami").status_code == 200
        User.objects.filter(pk=admin_api_user.pk).update(is_active=False)
        assert admin_client.get("/whoami").status_code == 401
