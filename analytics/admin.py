from django.contrib import admin

from .models import Event, Visitor


@admin.register(Event)
class EventAdmin(admin.ModelAdmin):
    list_display = ["occurred_at", "event_name", "user_pseudo_id", "source"]
    list_filter = ["source", "event_name"]
    search_fields = ["=user_pseudo_id", "=event_name"]
    date_hierarchy = "occurred_at"
    ordering = ["-occurred_at"]
    show_full_result_count = False  # no COUNT(*) over the whole events table per page view

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Visitor)
class VisitorAdmin(admin.ModelAdmin):
    list_display = ["user_pseudo_id", "first_seen", "last_seen", "event_count"]
    search_fields = ["=user_pseudo_id"]
    ordering = ["-last_seen"]
    readonly_fields = ["user_pseudo_id", "first_seen", "last_seen", "event_count"]
