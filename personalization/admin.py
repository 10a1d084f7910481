"""Admin for the catalog, segments and signals, rules and profiles.

Every save or delete that changes what visitors are shown bumps the rule-set version, so the
personalization cache and the scoring model turn over on the next request.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest

from .models import (
    PersonalizationRule,
    Project,
    RuleStatus,
    Section,
    Segment,
    Signal,
    Skill,
    VisitorProfile,
)
from .services import rule_activate, ruleset_bump
from .validation import rule_errors


class BumpsRulesetAdmin(admin.ModelAdmin):
    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        super().delete_model(request, obj)
        ruleset_bump()

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        super().delete_queryset(request, queryset)
        ruleset_bump()

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        # The admin calls this after save_model on every add or change form: one bump covers
        # the object and its inlines (a segment's signals).
        super().save_related(request, form, formsets, change)
        ruleset_bump()


@admin.register(Section)
class SectionAdmin(BumpsRulesetAdmin):
    list_display = ["slug", "title", "position", "tags"]


@admin.register(Project)
class ProjectAdmin(BumpsRulesetAdmin):
    list_display = ["slug", "title", "category", "tags", "is_active"]
    list_filter = ["is_active", "category"]
    search_fields = ["slug", "title"]


@admin.register(Skill)
class SkillAdmin(BumpsRulesetAdmin):
    list_display = ["name", "tags"]
    search_fields = ["name"]


class SignalInline(admin.TabularInline):
    model = Signal
    extra = 0
    fields = ["label", "event_name", "conditions", "weight", "cap", "half_life_days", "is_active"]


@admin.register(Segment)
class SegmentAdmin(BumpsRulesetAdmin):
    list_display = ["code", "name", "prior", "topic_tags", "position"]
    inlines = [SignalInline]


@admin.register(Signal)
class SignalAdmin(BumpsRulesetAdmin):
    list_display = [
        "label",
        "segment",
        "event_name",
        "weight",
        "cap",
        "half_life_days",
        "is_active",
    ]
    list_filter = ["segment", "event_name", "is_active"]
    search_fields = ["label", "event_name"]


class PersonalizationRuleForm(forms.ModelForm):
    class Meta:
        model = PersonalizationRule
        fields = [
            "segment",
            "source",
            "priority_sections",
            "featured_projects",
            "highlight_skills",
            "reasoning",
        ]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        for field, messages_ in rule_errors(data).items():
            self.add_error(field if field in self.fields else None, messages_)
        return data


@admin.register(PersonalizationRule)
class PersonalizationRuleAdmin(BumpsRulesetAdmin):
    form = PersonalizationRuleForm
    list_display = ["segment", "version", "status", "source", "created_by", "activated_at"]
    list_filter = ["status", "source", "segment"]
    readonly_fields = ["status", "activated_at", "created_at", "created_by"]
    actions = ["activate"]

    def save_model(
        self, request: HttpRequest, obj: PersonalizationRule, form: Any, change: bool
    ) -> None:
        if not change:
            from .services import rule_next_version

            obj.version = rule_next_version(segment=obj.segment)
            obj.created_by = request.user.get_username()
        super().save_model(request, obj, form, change)

    @admin.action(description="Activate (archives the segment's current rule)")
    def activate(self, request: HttpRequest, queryset: QuerySet[PersonalizationRule]) -> None:
        segments = [rule.segment_id for rule in queryset]
        if len(segments) != len(set(segments)):
            self.message_user(request, "Pick at most one rule per segment.", messages.ERROR)
            return
        with transaction.atomic():
            for rule in queryset.exclude(status=RuleStatus.ACTIVE):
                rule_activate(rule=rule, actor=request.user.get_username())
        self.message_user(request, "Activated.", messages.SUCCESS)


@admin.register(VisitorProfile)
class VisitorProfileAdmin(admin.ModelAdmin):
    list_display = ["user_pseudo_id", "segment", "confidence", "event_count", "computed_at"]
    list_filter = ["segment"]
    search_fields = ["=user_pseudo_id"]
    readonly_fields = [f.name for f in VisitorProfile._meta.fields]
    show_full_result_count = False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


from . import insights_admin  # noqa: E402,F401
