from django.urls import path

from .admin_apis import AdminLoginApi
from .apis import HealthApi, ReadyApi
from .exposition import metrics_view

urlpatterns = [
    path("health", HealthApi.as_view(), name="health"),
    path("ready", ReadyApi.as_view(), name="ready"),
    path("api/admin/login", AdminLoginApi.as_view(), name="admin-login"),
    path("metrics", metrics_view, name="prometheus-django-metrics"),
]
