from django.urls import path

from .insights_apis import InsightListApi, InsightRunApi

urlpatterns = [
    path("api/admin/insights", InsightListApi.as_view(), name="admin-insights"),
    path("api/admin/insights/run", InsightRunApi.as_view(), name="admin-insights-run"),
]
