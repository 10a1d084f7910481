"""Browser security headers on real responses, in every environment (portfolio/csp.py and the
SecurityMiddleware settings in base.py)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db

HTML_PAGES = ["/admin/login/", "/api/docs/", "/demo/"]


@pytest.mark.parametrize("path", HTML_PAGES)
def test_html_page__strict_csp_and_headers(client, path):
    response = client.get(path)

    assert response.status_code == 200
    policy = response["Content-Security-Policy"]
    assert "default-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy
    assert "'unsafe-inline'" not in policy
    assert "'unsafe-eval'" not in policy
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "strict-origin-when-cross-origin"
    assert response["X-Frame-Options"] == "DENY"


def test_dashboard__logged_in__strict_csp(admin_client_session):
    response = admin_client_session.get("/admin/dashboard/")

    assert response.status_code == 200
    assert "script-src 'self'" in response["Content-Security-Policy"]


@pytest.mark.parametrize("path", ["/api/personalization?user_id=abc", "/health", "/metrics"])
def test_api_response__may_not_be_rendered_or_framed(client, path):
    response = client.get(path)

    assert response.status_code == 200
    assert response["Content-Security-Policy"] == "default-src 'none'; frame-ancestors 'none'"
    assert response["X-Content-Type-Options"] == "nosniff"


def test_swagger_ui__init_script_is_a_separate_response_not_inline(client):
    page = client.get("/api/docs/").content.decode()
    script = client.get("/api/docs/?script=")

    assert "<style>" not in page
    assert '<script src="/api/docs/?script=' in page
    assert script.status_code == 200
    assert script["Content-Type"].startswith("application/javascript")
    assert "/api/schema/" in script.content.decode()


def test_csp__report_only_setting__sends_the_report_only_header(client, settings):
    settings.CSP_REPORT_ONLY = True

    response = client.get("/admin/login/")

    assert "Content-Security-Policy" not in response
    assert "default-src 'self'" in response["Content-Security-Policy-Report-Only"]


def test_csp__empty_policy__no_header(client, settings):
    settings.CSP_API_POLICY = ""

    assert "Content-Security-Policy" not in client.get("/health")


@pytest.fixture
def admin_client_session(client, django_user_model):
    user = django_user_model.objects.create_superuser("root", "root@example.com", "pw-0123456789x")
    client.force_login(user)
    return client
