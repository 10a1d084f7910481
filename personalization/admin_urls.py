from django.urls import path

from .admin_apis import RuleDetailApi, RuleListApi, SegmentListApi, VisitorDetailApi

urlpatterns = [
    path("api/admin/rules", RuleListApi.as_view(), name="admin-rules"),
    path("api/admin/rules/<str:rule_id>", RuleDetailApi.as_view(), name="admin-rule"),
    path("api/admin/segments", SegmentListApi.as_view(), name="admin-segments"),
    path(
        "api/admin/visitors/<str:user_pseudo_id>",
        VisitorDetailApi.as_view(),
        name="admin-visitor",
    ),
]
