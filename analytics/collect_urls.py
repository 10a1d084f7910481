"""GA4-compatible collection endpoints, at GA4's own paths (no trailing slash)."""

from django.urls import path

from .collect_apis import GtagCollectApi, MpCollectApi, MpDebugCollectApi

urlpatterns = [
    path("mp/collect", MpCollectApi.as_view(), name="mp-collect"),
    path("debug/mp/collect", MpDebugCollectApi.as_view(), name="mp-debug-collect"),
    path("g/collect", GtagCollectApi.as_view(), name="gtag-collect"),
]
