"""Every path under /api/ answers JSON (API.md, Conventions): unknown paths 404, wrong methods
405 with Allow, slash redirects, whoever writes the response (URL resolver, Django view, DRF).
Paths outside /api/ keep Django's own pages."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

pytestmark = pytest.mark.django_db

METHODS = ["get", "post", "put", "patch", "delete"]
UNKNOWN_API_PATHS = [
    "/api",
    "/api/",
    "/api/nope",
    "/api/nope/",
    "/api/events/",
    "/api/personalization/",
    "/api/admin",
    "/api/admin/",
    "/api/admin/nope",
    "/api/admin/rules/1/extra",
    "/api/admin/login/",
    "/api/schema/extra",
    "/api/docs/extra",
]


@pytest.fixture
def client() -> Client:
    return Client(raise_request_exception=False)


@pytest.fixture
def no_rate_limit(settings: Any) -> None:
    settings.RATELIMIT_ENABLE = False


def api_routes() -> list[str]:
    """Every route the URLconf serves under api/, parameters filled with a plausible value."""
    found: list[str] = []

    def walk(patterns: list[Any], prefix: str) -> None:
        for pattern in patterns:
            route = prefix + str(pattern.pattern)
            if isinstance(pattern, URLResolver):
                walk(pattern.url_patterns, route)
            elif isinstance(pattern, URLPattern) and route.startswith("api/"):
                found.append("/" + re.sub(r"<(?:\w+:)?\w+>", "1", route))

    walk(get_resolver().url_patterns, "")
    return sorted(set(found))


def call(client: Client, method: str, path: str, **extra: Any) -> Any:
    if method == "get":
        return client.get(path, **extra)
    return getattr(client, method)(path, data="{}", content_type="application/json", **extra)


def assert_json_detail(response: Any) -> None:
    assert response["Content-Type"].startswith("application/json"), (
        response.status_code,
        response["Content-Type"],
        response.content[:120],
    )
    assert isinstance(response.json()["detail"], str)


@pytest.mark.parametrize("path", UNKNOWN_API_PATHS)
@pytest.mark.parametrize("method", METHODS)
def test_unknown_api_path__any_method__404_json(client, method, path):
    response = call(client, method, path)

    assert response.status_code == 404, response.content[:200]
    assert_json_detail(response)
    assert response.json()["detail"] == "Not found."


@pytest.mark.parametrize("debug", [False, True])
def test_unknown_api_path__debug_on_or_off__still_json(client, settings, debug):
    settings.DEBUG = debug

    response = client.get("/api/nope")

    assert response.status_code == 404
    assert_json_detail(response)


def test_every_api_route__every_method__json_never_html_never_500(
    client, admin_token, no_rate_limit
):
    routes = api_routes()
    assert "/api/events" in routes
    assert "/api/admin/rules/1" in routes
    for path in routes:
        for method in METHODS:
            response = call(client, method, path, HTTP_AUTHORIZATION=f"Bearer {admin_token}")
            assert response.status_code < 500, (method, path, response.content[:200])
            if response.status_code >= 300:
                assert_json_detail(response)
            if response.status_code == 405:
                assert response["Allow"], (method, path)
                assert method.upper() not in response["Allow"]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("post", "/api/personalization"),
        ("delete", "/api/events"),
        ("put", "/api/admin/login"),
        ("post", "/api/schema/"),
        ("post", "/api/docs/"),
    ],
)
def test_wrong_method__405_json_with_allow(client, method, path):
    response = call(client, method, path)

    assert response.status_code == 405
    assert_json_detail(response)
    assert method.upper() not in response["Allow"]
    assert "GET" in response["Allow"] or "POST" in response["Allow"]


@pytest.mark.parametrize("debug", [False, True])
def test_api_path_without_its_slash__get_redirects_in_json__post_404_json(client, settings, debug):
    settings.DEBUG = debug

    redirect = client.get("/api/schema")
    post = call(client, "post", "/api/docs")

    assert redirect.status_code == 301
    assert redirect["Location"] == "/api/schema/"
    assert_json_detail(redirect)
    # Django cannot redirect a POST without losing its body (and raises in DEBUG): 404 instead.
    assert post.status_code == 404
    assert_json_detail(post)


def test_non_api_paths__keep_django_pages(client):
    assert client.get("/nope")["Content-Type"].startswith("text/html")
    assert client.get("/nope").status_code == 404
    assert client.get("/admin").status_code == 301  # APPEND_SLASH, as before
