"""GET /metrics protection (bearer token, IP allow-list) and the probes' Host-header exemption."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db

TOKEN = "scrape-token-0123456789"


@pytest.fixture
def production_hosts(settings):
    """What production has: DEBUG off and only the public name allowed."""
    settings.DEBUG = False
    settings.ALLOWED_HOSTS = ["api.example.com"]


# --- bearer token ------------------------------------------------------------------------------


def test_metrics__token_set_and_sent__200(client, settings):
    settings.METRICS_BEARER_TOKEN = TOKEN

    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")

    assert response.status_code == 200
    assert b"api_requests_total" in response.content


@pytest.mark.parametrize(
    "authorization",
    ["", f"Bearer {TOKEN}x", f"Basic {TOKEN}", "Bearer", f"bearer {TOKEN[:-1]}"],
)
def test_metrics__token_set_wrong_or_missing__401_json(client, settings, authorization):
    settings.METRICS_BEARER_TOKEN = TOKEN

    response = client.get("/metrics", HTTP_AUTHORIZATION=authorization)

    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert set(response.json()) == {"detail"}
    assert b"api_requests_total" not in response.content


def test_metrics__no_protection_configured__open(client, settings):
    settings.METRICS_BEARER_TOKEN = ""
    settings.METRICS_ALLOWED_IPS = []

    assert client.get("/metrics").status_code == 200


# --- IP allow-list -----------------------------------------------------------------------------


def test_metrics__address_in_allowed_network__200(client, settings):
    settings.METRICS_ALLOWED_IPS = ["10.0.0.0/8", "192.0.2.10"]

    assert client.get("/metrics", REMOTE_ADDR="10.20.30.40").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="192.0.2.10").status_code == 200


@pytest.mark.parametrize("address", ["203.0.113.5", "192.0.2.11", "", "not-an-ip"])
def test_metrics__address_not_allowed__403_json(client, settings, address):
    settings.METRICS_ALLOWED_IPS = ["10.0.0.0/8", "192.0.2.10"]

    response = client.get("/metrics", REMOTE_ADDR=address)

    assert response.status_code == 403
    assert set(response.json()) == {"detail"}


def test_metrics__allowed_ip_behind_trusted_proxy__client_address_decides(client, settings):
    settings.METRICS_ALLOWED_IPS = ["10.0.0.0/8"]
    settings.TRUSTED_PROXIES = ["172.16.0.1"]

    from_inside = client.get("/metrics", REMOTE_ADDR="172.16.0.1", HTTP_X_FORWARDED_FOR="10.1.1.1")
    from_outside = client.get(
        "/metrics", REMOTE_ADDR="172.16.0.1", HTTP_X_FORWARDED_FOR="203.0.113.9"
    )

    assert from_inside.status_code == 200
    assert from_outside.status_code == 403


def test_metrics__both_set__address_then_token(client, settings):
    settings.METRICS_ALLOWED_IPS = ["10.0.0.0/8"]
    settings.METRICS_BEARER_TOKEN = TOKEN
    auth = {"HTTP_AUTHORIZATION": f"Bearer {TOKEN}"}

    assert client.get("/metrics", REMOTE_ADDR="203.0.113.5", **auth).status_code == 403
    assert client.get("/metrics", REMOTE_ADDR="10.0.0.5").status_code == 401
    assert client.get("/metrics", REMOTE_ADDR="10.0.0.5", **auth).status_code == 200


def test_metrics__post_without_csrf_token__405_json():
    response = Client(enforce_csrf_checks=True).post("/metrics")

    assert response.status_code == 405
    assert "detail" in response.json()


# --- Host header -------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/health", "/ready", "/metrics"])
def test_probe__pod_ip_host__answered(client, production_hosts, path):
    response = client.get(path, HTTP_HOST="10.244.1.17:8000")

    assert response.status_code == 200


@pytest.mark.parametrize(
    "path", ["/api/personalization?user_id=a", "/health/", "/healthz", "/metrics/x", "/admin/"]
)
def test_other_paths__unknown_host__still_400(client, production_hosts, path):
    response = client.get(path, HTTP_HOST="10.244.1.17:8000")

    assert response.status_code == 400


def test_probe__unknown_host_post__not_exempt(client, production_hosts):
    response = client.post("/health", HTTP_HOST="10.244.1.17")

    assert response.status_code == 400


def test_probe__wildcard_subdomain_allowed__answered(client, settings):
    settings.DEBUG = False
    settings.ALLOWED_HOSTS = [".example.com"]

    assert client.get("/health", HTTP_HOST="10.0.0.1").status_code == 200


def test_probe__malformed_host__answered_without_500(client, production_hosts):
    response = client.get("/health", HTTP_HOST="bad host\r\n")

    assert response.status_code == 200


# --- the worker node's server (same rules, peer address) ---------------------------------------


def _worker_get(path="/metrics", address="127.0.0.1", authorization=""):
    from prometheus_client import CollectorRegistry, Counter

    from ops.exposition import metrics_wsgi_app

    registry = CollectorRegistry()
    Counter("worker_side", "A sample only the worker app serves.", registry=registry).inc()
    answer: dict[str, Any] = {}

    def start_response(status, headers):
        answer["status"], answer["headers"] = int(status.split()[0]), dict(headers)

    body = b"".join(
        metrics_wsgi_app(lambda: [registry])(
            {"PATH_INFO": path, "REMOTE_ADDR": address, "HTTP_AUTHORIZATION": authorization},
            start_response,
        )
    )
    return answer["status"], answer["headers"], body


def test_worker_metrics_app__open__prometheus_text():
    status, headers, body = _worker_get()

    assert status == 200
    assert headers["Content-Type"].startswith("text/plain")
    assert b"worker_side_total 1.0" in body


def test_worker_metrics_app__address_not_allowed__403_json(settings):
    settings.METRICS_ALLOWED_IPS = ["10.0.0.0/8"]

    status, _, body = _worker_get(address="192.0.2.1")

    assert status == 403
    assert set(json.loads(body)) == {"detail"}
    assert _worker_get(address="10.9.9.9")[0] == 200


def test_worker_metrics_app__token__401_without_200_with(settings):
    settings.METRICS_BEARER_TOKEN = TOKEN

    status, headers, _ = _worker_get()

    assert status == 401
    assert headers["WWW-Authenticate"].startswith("Bearer")
    assert _worker_get(authorization=f"Bearer {TOKEN}")[0] == 200


def test_worker_metrics_app__other_path__404():
    assert _worker_get(path="/admin")[0] == 404
