"""GET /api/admin/insights and POST /api/admin/insights/run (docs/API.md)."""

from datetime import timedelta

import pytest
from django.utils import timezone

from personalization.models import InsightStatus, LLMInsight

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _offline(settings):
    settings.LLM_PROVIDERS = ["offline"]
    settings.LLM_INSIGHTS_DAYS = 7


def make_insights(n):
    end = timezone.now()
    return [
        LLMInsight.objects.create(
            period_start=end - timedelta(days=7, hours=i),
            period_end=end - timedelta(hours=i),
            provider="offline",
            status=InsightStatus.OK,
            summary=f"insight {i}",
        )
        for i in range(n)
    ]


def test_run__no_body__202_with_task_id_and_the_analysis_runs(admin_client):
    response = admin_client.post("/api/admin/insights/run")

    assert response.status_code == 202
    assert response.json()["task_id"]
    insight = LLMInsight.objects.get()  # tasks run in-process in tests
    assert insight.period_end - insight.period_start == timedelta(days=7)


def test_run__days__period_of_that_length(admin_client):
    response = admin_client.post("/api/admin/insights/run", {"days": 30}, format="json")

    assert response.status_code == 202
    insight = LLMInsight.objects.get()
    assert insight.period_end - insight.period_start == timedelta(days=30)


@pytest.mark.parametrize(
    "body", [{"days": 0}, {"days": 91}, {"days": "many"}, {"days": None}, {"days": 7.0}]
)
def test_run__bad_days__422_naming_the_field(admin_client, body):
    response = admin_client.post("/api/admin/insights/run", body, format="json")

    assert response.status_code == 422
    assert "days" in response.json()["errors"]
    assert response.json()["detail"]
    assert not LLMInsight.objects.exists()


@pytest.mark.parametrize("body", ["[1, 2]", "null", '"7"'])
def test_run__json_not_an_object__422_nothing_queued(admin_client, body):
    response = admin_client.post(
        "/api/admin/insights/run", data=body, content_type="application/json"
    )

    assert response.status_code == 422
    assert not LLMInsight.objects.exists()


def test_run__malformed_json__400(admin_client):
    response = admin_client.post(
        "/api/admin/insights/run", data="{days:", content_type="application/json"
    )

    assert response.status_code == 400
    assert "detail" in response.json()


@pytest.mark.parametrize(
    ("method", "path"), [("post", "/api/admin/insights/run"), ("get", "/api/admin/insights")]
)
def test_endpoints__no_token__401_with_bearer_challenge(client, method, path):
    response = getattr(client, method)(path)

    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert not LLMInsight.objects.exists()


def test_endpoints__staff_without_permission__403(client, django_user_model):
    from rest_framework_simplejwt.tokens import AccessToken

    user = django_user_model.objects.create_user("plain", password="x" * 20, is_staff=True)
    token = AccessToken.for_user(user)

    response = client.get("/api/admin/insights", HTTP_AUTHORIZATION=f"Bearer {token}")

    assert response.status_code == 403


def test_list__limit_offset__page_newest_first_with_count(admin_client):
    insights = make_insights(5)

    response = admin_client.get("/api/admin/insights?limit=2&offset=1")

    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 5
    newest_first = sorted(insights, key=lambda i: (i.created_at, i.pk), reverse=True)
    assert [r["id"] for r in body["results"]] == [i.pk for i in newest_first[1:3]]
    first = body["results"][0]
    assert {"summary", "findings", "status", "verification", "draft_rules", "attempts"} <= set(
        first
    )


def test_list__drafts__listed_with_each_insight(admin_client, settings):
    from personalization.services import catalog_load_demo

    from .fake_llm import add_events

    catalog_load_demo()
    add_events("ml.1", "ML_ENGINEER", [("project_click", {"project_id": "llm-router"})])
    admin_client.post("/api/admin/insights/run")

    body = admin_client.get("/api/admin/insights").json()

    [draft] = body["results"][0]["draft_rules"]
    assert draft["segment"] == "ML_ENGINEER"
    assert draft["status"] == "draft"


@pytest.mark.parametrize(
    "query",
    # offset past bigint was a DataError (500) on PostgreSQL; "1.0" is no integer either.
    ["limit=0", "limit=101", "limit=abc", "offset=-1", f"offset={10**19}", "limit=1.0"],
)
def test_list__bad_paging__422(admin_client, query):
    response = admin_client.get(f"/api/admin/insights?{query}")

    assert response.status_code == 422
    assert response.json()["errors"]


def test_schema__documents_both_endpoints(client):
    response = client.get("/api/schema/", HTTP_ACCEPT="application/json")

    assert response.status_code == 200
    paths = response.json()["paths"]
    assert "get" in paths["/api/admin/insights"]
    assert "202" in paths["/api/admin/insights/run"]["post"]["responses"]
    assert "422" in paths["/api/admin/insights/run"]["post"]["responses"]
