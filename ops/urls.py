from django.urls import path

from .apis import HealthApi, ReadyApi
from .exposition import metrics_view

urlpatterns = [
    path("health", HealthApi.as_view(), name="health"),
    path("ready", ReadyApi.as_view(), name="ready"),
    path("metrics", metrics_view, name="prometheus-django-metrics"),
]
