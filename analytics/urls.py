from django.urls import path

from .apis import EventsApi

urlpatterns = [
    path("api/events", EventsApi.as_view(), name="events"),
]
