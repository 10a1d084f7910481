from django.contrib import admin, messages
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone

from .models import (
    Event,
    GA4DailyAggregate,
    GA4ExportUpload,
    MeasurementStream,
    RejectedEvent,
    Visitor,
    generate_api_secret,
)


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows written by ingestion: look, filter, never edit by hand."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(Event)
class EventAdmin(ReadOnlyAdmin):
    list_display = ["occurred_at", "event_name", "user_pseudo_id", "source"]
    list_filter = ["source", "event_name"]
    search_fields = ["=user_pseudo_id", "=event_name"]
    date_hierarchy = "occurred_at"
    ordering = ["-occurred_at"]
    show_full_result_count = False  # no COUNT(*) over the whole events table per page view


@admin.register(Visitor)
class VisitorAdmin(admin.ModelAdmin):
    list_display = ["user_pseudo_id", "first_seen", "last_seen", "event_count"]
    search_fields = ["=user_pseudo_id"]
    ordering = ["-last_seen"]
    readonly_fields = ["user_pseudo_id", "first_seen", "last_seen", "event_count"]
    show_full_result_count = False


@admin.register(RejectedEvent)
class RejectedEventAdmin(ReadOnlyAdmin):
    list_display = ["received_at", "source", "context", "line_number", "first_reason"]
    list_filter = ["source"]
    date_hierarchy = "received_at"
    ordering = ["-received_at"]
    show_full_result_count = False

    @admin.display(description="reason")
    def first_reason(self, obj: RejectedEvent) -> str:
        reason = obj.reasons[0] if obj.reasons else {}
        return f"{reason.get('field', '')}: {reason.get('message', '')}"[:120]


@admin.register(MeasurementStream)
class MeasurementStreamAdmin(admin.ModelAdmin):
    list_display = ["name", "measurement_id", "is_active", "created_at", "secret_rotated_at"]
    readonly_fields = ["api_secret", "created_at", "secret_rotated_at"]
    actions = ["rotate_api_secret"]

    @admin.action(description="Rotate the API secret (old secret stops working at once)")
    def rotate_api_secret(
        self, request: HttpRequest, queryset: QuerySet[MeasurementStream]
    ) -> None:
        for stream in queryset:
            stream.api_secret = generate_api_secret()
            stream.secret_rotated_at = timezone.now()
            stream.save(update_fields=["api_secret", "secret_rotated_at"])
        self.message_user(request, f"Rotated {len(queryset)} secret(s).", messages.SUCCESS)


@admin.register(GA4ExportUpload)
class GA4ExportUploadAdmin(admin.ModelAdmin):
    list_display = [
        "file",
        "uploaded_at",
        "status",
        "rows_read",
        "rows_imported",
        "rows_duplicate",
        "rows_rejected",
    ]
    list_filter = ["status"]
    readonly_fields = [
        "status",
        "rows_read",
        "rows_imported",
        "rows_duplicate",
        "rows_rejected",
        "errors",
        "task_id",
        "finished_at",
        "uploaded_at",
    ]
    actions = ["import_again"]

    def save_model(
        self, request: HttpRequest, obj: GA4ExportUpload, form: object, change: bool
    ) -> None:
        super().save_model(request, obj, form, change)
        if not change:
            self._queue(obj)
            self.message_user(request, "Import queued; refresh to see its progress.")

    @admin.action(description="Import again (rows already stored are skipped)")
    def import_again(self, request: HttpRequest, queryset: QuerySet[GA4ExportUpload]) -> None:
        for upload in queryset:
            self._queue(upload)
        self.message_user(request, f"Queued {len(queryset)} import(s).", messages.SUCCESS)

    @staticmethod
    def _queue(upload: GA4ExportUpload) -> None:
        from .tasks import import_ga4_upload

        def send() -> None:
            result = import_ga4_upload.delay(upload.pk)
            GA4ExportUpload.objects.filter(pk=upload.pk).update(task_id=result.id or "")

        # The worker must see the committed row and file.
        transaction.on_commit(send)


@admin.register(GA4DailyAggregate)
class GA4DailyAggregateAdmin(ReadOnlyAdmin):
    list_display = [
        "date",
        "event_name",
        "page_path",
        "source",
        "medium",
        "event_count",
        "total_users",
    ]
    list_filter = ["event_name", "medium"]
    date_hierarchy = "date"
    ordering = ["-date", "-event_count"]
