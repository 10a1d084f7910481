from django.urls import path

from .admin_apis import EventsSearchApi

urlpatterns = [
    path("api/admin/events/search", EventsSearchApi.as_view(), name="admin-events-search"),
]
