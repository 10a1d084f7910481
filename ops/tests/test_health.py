import pytest
from django.test import override_settings

from portfolio.celery import app as celery_app

pytestmark = pytest.mark.django_db

UNREACHABLE_REDIS = "redis://127.0.0.1:1/0"


def test_health__always__200_ok(client):
    response = client.get("/health")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_ready__services_up__200_with_every_check_ok(client):
    response = client.get("/ready")

    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "checks": {"database": "ok", "cache": "ok", "broker": "ok"},
    }


def test_ready__cache_unreachable__503_naming_cache(client):
    unreachable = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": UNREACHABLE_REDIS,
            "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 0.5, "SOCKET_TIMEOUT": 0.5},
        }
    }
    with override_settings(CACHES=unreachable):
        response = client.get("/ready")

    body = response.json()
    assert response.status_code == 503
    assert body["status"] == "error"
    assert body["failing"] == ["cache"]
    assert body["checks"]["cache"].startswith("error: ")
    assert body["checks"]["database"] == "ok"


def test_ready__broker_unreachable__503_naming_broker(client, monkeypatch):
    monkeypatch.setattr(celery_app.conf, "broker_url", UNREACHABLE_REDIS)
    with override_settings(CELERY_TASK_ALWAYS_EAGER=False):
        response = client.get("/ready")

    body = response.json()
    assert response.status_code == 503
    assert body["failing"] == ["broker"]
    assert body["checks"]["broker"].startswith("error: ")


def test_metrics__scrape__prometheus_text(client):
    client.get("/health")
    response = client.get("/metrics")

    assert response.status_code == 200
    assert b'api_requests_total{endpoint="health",method="GET",status="200"}' in response.content


def test_openapi_schema__served__documents_health_and_ready(client):
    response = client.get("/api/schema/", HTTP_ACCEPT="application/json")

    assert response.status_code == 200
    paths = response.json()["paths"]
    assert "/health" in paths
    assert "/ready" in paths
