from datetime import timedelta
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.options import IncorrectLookupParameters
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.urls import path, reverse
from django.utils import timezone

from personalization import admin_display as show
from personalization.admin import ErasesVisitorsAdmin
from personalization.models import VisitorProfile

from .admin_paging import EstimatedCountPaginator, SafeInputAdmin, csv_rows, has_nul
from .models import (
    Event,
    GA4DailyAggregate,
    GA4ExportUpload,
    MeasurementStream,
    RejectedEvent,
    Visitor,
    generate_api_secret,
)


class ReadOnlyAdmin(SafeInputAdmin):
    """Rows written by ingestion: look, filter, never edit by hand."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


class RecentEventNameFilter(admin.SimpleListFilter):
    """Event names seen in the last week: a DISTINCT over the whole table would scan it all."""

    title = "event name (seen in the last 7 days)"
    parameter_name = "event_name"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        since = timezone.now() - timedelta(days=7)
        names = (
            Event.objects.filter(occurred_at__gte=since)
            .order_by("event_name")
            .values_list("event_name", flat=True)
            .distinct()[:50]
        )
        return [(name, name) for name in names]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Event]) -> QuerySet[Event]:
        value = self.value()
        return queryset.filter(event_name=value) if value else queryset


EXPORT_COLUMNS = [
    "id",
    "occurred_at",
    "received_at",
    "event_name",
    "user_pseudo_id",
    "source",
    "session_id",
    "page_location",
    "page_referrer",
    "event_params",
]


@admin.register(Event)
class EventAdmin(ReadOnlyAdmin):
    list_display = ["occurred_at", "event_name", "user_pseudo_id", "source"]
    list_filter = ["source", RecentEventNameFilter]
    # Exact matches: the (user, time) and (name, time) indexes serve them.
    search_fields = ["=user_pseudo_id", "=event_name"]
    search_help_text = "Exact visitor ID or event name."
    date_hierarchy = "occurred_at"
    ordering = ["-occurred_at"]
    show_full_result_count = False  # no COUNT(*) over the whole events table per page view
    paginator = EstimatedCountPaginator
    list_per_page = 100
    fields = readonly_fields = (*EXPORT_COLUMNS[1:-1], "params")

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False  # append-only; a visitor's events go with "Erase visitor"

    @admin.display(description="event params")
    def params(self, obj: Event) -> str:
        return show.json_html(obj.event_params)

    def get_urls(self) -> list[Any]:
        export = path(
            "export.csv",
            self.admin_site.admin_view(self.export_csv),
            name="analytics_event_export",
        )
        return [export, *super().get_urls()]

    def export_csv(self, request: HttpRequest) -> HttpResponseBase:
        """The changelist's filtered set (same query string), streamed in chunks."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        if has_nul(request):
            return HttpResponseBadRequest("Query parameters must not contain NUL characters.")
        try:
            changelist = self.get_changelist_instance(request)
        except IncorrectLookupParameters:
            return HttpResponseBadRequest("Unknown filter.")
        queryset = changelist.get_queryset(request).values_list(*EXPORT_COLUMNS)
        response = StreamingHttpResponse(
            csv_rows(EXPORT_COLUMNS, queryset.iterator(chunk_size=2000)),
            content_type="text/csv; charset=utf-8",
        )
        stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
        response["Content-Disposition"] = f'attachment; filename="events-{stamp}.csv"'
        return response

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> HttpResponse:
        query = request.GET.copy()
        query.pop("p", None)  # the export takes every page
        extra = {"export_url": f"{reverse('admin:analytics_event_export')}?{query.urlencode()}"}
        return super().changelist_view(request, {**(extra_context or {}), **extra})


@admin.register(Visitor)
class VisitorAdmin(ErasesVisitorsAdmin):
    list_display = ["user_pseudo_id", "first_seen", "last_seen", "event_count"]
    search_fields = ["=user_pseudo_id"]
    ordering = ["-last_seen"]
    fields = readonly_fields = (
        "user_pseudo_id",
        "first_seen",
        "last_seen",
        "event_count",
        "traits_table",
        "segment",
        "scores_table",
        "explanation_table",
        "timeline",
    )
    show_full_result_count = False
    paginator = EstimatedCountPaginator

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def _profile(self, obj: Visitor) -> VisitorProfile | None:
        if not hasattr(obj, "_profile_cache"):
            obj._profile_cache = VisitorProfile.objects.filter(  # type: ignore[attr-defined]
                user_pseudo_id=obj.user_pseudo_id
            ).first()
        return obj._profile_cache  # type: ignore[attr-defined]

    @admin.display(description="segment")
    def segment(self, obj: Visitor) -> str:
        profile = self._profile(obj)
        return f"{profile.segment} ({profile.confidence:.0%})" if profile else "-"

    @admin.display(description="traits")
    def traits_table(self, obj: Visitor) -> str:
        return show.json_html(obj.traits)

    @admin.display(description="scores")
    def scores_table(self, obj: Visitor) -> str:
        profile = self._profile(obj)
        return show.scores_html(profile.scores) if profile else "Not segmented yet."

    @admin.display(description="explanation")
    def explanation_table(self, obj: Visitor) -> str:
        profile = self._profile(obj)
        return show.explanation_html(profile.explanation) if profile else "Not segmented yet."

    @admin.display(description="latest events")
    def timeline(self, obj: Visitor) -> str:
        return show.timeline_html(obj.user_pseudo_id)


@admin.register(RejectedEvent)
class RejectedEventAdmin(ReadOnlyAdmin):
    list_display = [
        "received_at",
        "source",
        "user_pseudo_id",
        "context",
        "line_number",
        "first_reason",
    ]
    list_filter = ["source"]
    # A visitor id finds their dead letters exactly (indexed); other words search the context.
    search_fields = ["=user_pseudo_id", "context"]
    date_hierarchy = "received_at"
    ordering = ["-received_at"]
    show_full_result_count = False
    paginator = EstimatedCountPaginator
    fields = readonly_fields = (
        "received_at",
        "source",
        "user_pseudo_id",
        "context",
        "line_number",
        "reasons_table",
        "payload_json",
    )

    @admin.display(description="reasons")
    def reasons_table(self, obj: RejectedEvent) -> str:
        return show.json_html(obj.reasons)

    @admin.display(description="payload as received")
    def payload_json(self, obj: RejectedEvent) -> str:
        return show.json_html(obj.payload)

    @admin.display(description="reason")
    def first_reason(self, obj: RejectedEvent) -> str:
        reason = obj.reasons[0] if obj.reasons else {}
        return f"{reason.get('field', '')}: {reason.get('message', '')}"[:120]


@admin.register(MeasurementStream)
class MeasurementStreamAdmin(SafeInputAdmin):
    list_display = ["name", "measurement_id", "is_active", "created_at", "secret_rotated_at"]
    readonly_fields = ["api_secret", "created_at", "secret_rotated_at"]
    actions = ["rotate_api_secret"]

    @admin.action(
        description="Rotate the API secret (old secret stops working at once)",
        permissions=["change"],
    )
    def rotate_api_secret(
        self, request: HttpRequest, queryset: QuerySet[MeasurementStream]
    ) -> None:
        for stream in queryset:
            stream.api_secret = generate_api_secret()
            stream.secret_rotated_at = timezone.now()
            stream.save(update_fields=["api_secret", "secret_rotated_at"])
        self.message_user(request, f"Rotated {len(queryset)} secret(s).", messages.SUCCESS)


@admin.register(GA4ExportUpload)
class GA4ExportUploadAdmin(SafeInputAdmin):
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
