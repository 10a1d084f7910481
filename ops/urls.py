from django.urls import path

from .apis import HealthApi, ReadyApi

urlpatterns = [
    path("health", HealthApi.as_view(), name="health"),
    path("ready", ReadyApi.as_view(), name="ready"),
]
