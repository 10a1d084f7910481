from django.urls import path

from .demo_views import demo_page

urlpatterns = [
    path("demo/", demo_page, name="demo"),
]
