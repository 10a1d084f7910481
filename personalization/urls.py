from django.urls import path

from .apis import PersonalizationApi

urlpatterns = [
    path("api/personalization", PersonalizationApi.as_view(), name="personalization"),
]
