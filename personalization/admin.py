"""Admin for the catalog, segments and signals, rules and profiles.

Every save or delete that changes what visitors are shown bumps the rule-set version, so the
personalization cache and the scoring model turn over on the next request.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from analytics.admin_paging import EstimatedCountPaginator, SafeInputAdmin
from analytics.services import visitor_erase
from analytics.validation import USER_ID_MESSAGE, USER_PSEUDO_ID_RE
from portfolio.forms import JSON_FORMFIELD_OVERRIDES

from . import admin_display as show
from .conditions import conditions_problems
from .models import (
    PersonalizationRule,
    Project,
    RuleChange,
    RuleStatus,
    Section,
    Segment,
    Signal,
    Skill,
    VisitorProfile,
)
from .selectors import active_rules, personalization_build, profile_get, rule_preview
from .services import (
    RULE_CONTENT_FIELDS,
    rule_activate,
    rule_archive,
    rule_create,
    rule_delete,
    rule_snapshot,
    rule_update,
    ruleset_bump,
)
from .validation import rule_catalog_errors, rule_errors

# The dashboard link sits on the admin index (see the template).
admin.site.index_template = "admin/portfolio_index.html"


class BumpsRulesetAdmin(SafeInputAdmin):
    formfield_overrides = JSON_FORMFIELD_OVERRIDES

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


class ShowsBrokenCondition:
    @admin.display(description="broken condition")
    def broken_condition(self, obj: Signal) -> str:
        """Why a stored signal's conditions cannot run (scoring skips the signal); empty if
        they can. Only a row written past the admin's validation shows anything here."""
        problems = conditions_problems(obj.conditions)
        if not problems:
            return ""
        return format_html('<strong class="errornote">{}</strong>', " ".join(problems))


def _warn_broken(request: HttpRequest, signals: list[Signal]) -> None:
    for signal in signals:
        problems = conditions_problems(signal.conditions)
        if problems:
            messages.error(
                request,
                f"Signal {signal.label!r} counts for nothing until its conditions are fixed: "
                + " ".join(problems),
            )


class SignalInline(ShowsBrokenCondition, admin.TabularInline):
    model = Signal
    formfield_overrides = JSON_FORMFIELD_OVERRIDES
    extra = 0
    fields = [
        "label",
        "event_name",
        "conditions",
        "broken_condition",
        "weight",
        "cap",
        "half_life_days",
        "is_active",
    ]
    readonly_fields = ["broken_condition"]


@admin.register(Segment)
class SegmentAdmin(BumpsRulesetAdmin):
    list_display = ["code", "name", "prior", "topic_tags", "position"]
    inlines = [SignalInline]

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: Any = None
    ) -> HttpResponse:
        if request.method == "GET":
            segment = self.get_object(request, object_id)
            if segment is not None:
                _warn_broken(request, list(segment.signals.all()))
        return super().change_view(request, object_id, form_url, extra_context)


@admin.register(Signal)
class SignalAdmin(ShowsBrokenCondition, BumpsRulesetAdmin):
    list_display = [
        "label",
        "segment",
        "event_name",
        "weight",
        "cap",
        "half_life_days",
        "is_active",
        "broken_condition",
    ]
    list_filter = ["segment", "event_name", "is_active"]
    search_fields = ["label", "event_name"]

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: Any = None
    ) -> HttpResponse:
        if request.method == "GET":
            signal = self.get_object(request, object_id)
            if signal is not None:
                _warn_broken(request, [signal])
        return super().change_view(request, object_id, form_url, extra_context)


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
        errors = rule_errors(data) or rule_catalog_errors(data)
        for field, messages_ in errors.items():
            self.add_error(field if field in self.fields else None, messages_)
        return data


@admin.register(PersonalizationRule)
class PersonalizationRuleAdmin(SafeInputAdmin):
    """Every write goes through the rule services: they audit (RuleChange) and bump the
    rule-set version."""

    form = PersonalizationRuleForm
    formfield_overrides = JSON_FORMFIELD_OVERRIDES
    list_display = ["segment", "version", "status", "source", "created_by", "activated_at"]
    list_filter = ["status", "source", "segment"]
    actions = ["approve_and_activate", "archive"]
    always_readonly = [
        "status",
        "activated_at",
        "created_at",
        "created_by",
        "preview_link",
        "compare_with_active",
        "history",
    ]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        if obj is None:
            return ["status", "created_by"]
        # A rule stays with its segment: its versions are numbered per segment.
        return ["segment", "version", *self.always_readonly]

    def save_model(
        self, request: HttpRequest, obj: PersonalizationRule, form: Any, change: bool
    ) -> None:
        actor = request.user.get_username()
        data = form.cleaned_data
        if change:
            saved = rule_update(
                rule=obj,
                actor=actor,
                changes={f: data[f] for f in form.changed_data if f in RULE_CONTENT_FIELDS},
            )
        else:
            saved = rule_create(
                segment=data["segment"],
                source=data["source"],
                priority_sections=data["priority_sections"],
                featured_projects=data["featured_projects"],
                highlight_skills=data["highlight_skills"],
                reasoning=data["reasoning"],
                actor=actor,
            )
        # The admin goes on with `obj` (messages, log entry, redirect).
        for field in saved._meta.concrete_fields:
            setattr(obj, field.attname, getattr(saved, field.attname))
        obj._state.adding = False

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        form.save_m2m()  # nothing else: the services bumped already

    def delete_model(self, request: HttpRequest, obj: PersonalizationRule) -> None:
        rule_delete(rule=obj, actor=request.user.get_username())

    def delete_queryset(
        self, request: HttpRequest, queryset: QuerySet[PersonalizationRule]
    ) -> None:
        with transaction.atomic():
            for rule in queryset.select_related("segment"):
                rule_delete(rule=rule, actor=request.user.get_username())

    @admin.action(description="Approve and activate (archives the segment's current rule)")
    def approve_and_activate(
        self, request: HttpRequest, queryset: QuerySet[PersonalizationRule]
    ) -> None:
        rules = list(queryset.select_related("segment"))
        segments = [rule.segment_id for rule in rules]
        if len(segments) != len(set(segments)):
            self.message_user(request, "Pick at most one rule per segment.", messages.ERROR)
            return
        with transaction.atomic():
            for rule in rules:
                if rule.status != RuleStatus.ACTIVE:
                    rule_activate(rule=rule, actor=request.user.get_username())
        self.message_user(request, f"Activated {len(rules)} rule(s).", messages.SUCCESS)

    @admin.action(description="Archive (the segment falls back to the CASUAL rule)")
    def archive(self, request: HttpRequest, queryset: QuerySet[PersonalizationRule]) -> None:
        with transaction.atomic():
            for rule in queryset.select_related("segment"):
                rule_archive(rule=rule, actor=request.user.get_username())
        self.message_user(request, "Archived.", messages.SUCCESS)

    @admin.display(description="preview")
    def preview_link(self, obj: PersonalizationRule) -> str:
        url = reverse("admin:personalization_personalizationrule_preview", args=[obj.pk])
        return format_html('<a href="{}">{}</a>', url, "Preview for a visitor ID")

    @admin.display(description="compared with the active rule")
    def compare_with_active(self, obj: PersonalizationRule) -> str:
        active = (
            PersonalizationRule.objects.filter(segment=obj.segment, status=RuleStatus.ACTIVE)
            .exclude(pk=obj.pk)
            .first()
        )
        if active is None:
            return format_html("<p>{}</p>", "No other active rule for this segment.")
        return format_html(
            "<p>Active: v{}</p>{}",
            active.version,
            show.diff_html(rule_snapshot(active), rule_snapshot(obj)),
        )

    @admin.display(description="history")
    def history(self, obj: PersonalizationRule) -> str:
        return show.history_html(list(RuleChange.objects.filter(rule_ref=obj.pk)[:100]))

    def get_urls(self) -> list[Any]:
        preview = path(
            "<path:object_id>/preview/",
            self.admin_site.admin_view(self.preview_view),
            name="personalization_personalizationrule_preview",
        )
        return [preview, *super().get_urls()]

    def preview_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        rule = self.get_object(request, object_id)
        if rule is None:
            raise Http404
        if not self.has_view_permission(request, rule):
            raise PermissionDenied
        user_pseudo_id = request.GET.get("user_pseudo_id", "").strip()
        error = preview = current = None
        if user_pseudo_id:
            if USER_PSEUDO_ID_RE.fullmatch(user_pseudo_id):
                preview = rule_preview(rule=rule, user_pseudo_id=user_pseudo_id)
                current = personalization_build(
                    user_pseudo_id=user_pseudo_id,
                    profile=profile_get(user_pseudo_id=user_pseudo_id),
                    rules=active_rules(),
                )
            else:
                error = USER_ID_MESSAGE
        rows = [
            (name, (current or {}).get(name), (preview or {}).get(name))
            for name in (
                "segment",
                "variant",
                "rule_version",
                "priority_sections",
                "featured_projects",
                "highlight_skills",
                "reasoning",
            )
        ]
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "original": rule,
            "title": f"Preview {rule}",
            "user_pseudo_id": user_pseudo_id,
            "error": error,
            "rows": rows if preview else None,
            "known": bool(preview and preview.get("segmented_at")),
        }
        return TemplateResponse(request, "admin/personalization/rule_preview.html", context)


@admin.register(RuleChange)
class RuleChangeAdmin(SafeInputAdmin):
    """The audit trail: read only, written by the rule services."""

    list_display = ["created_at", "segment_code", "version", "action", "actor", "rule_ref"]
    list_filter = ["action", "segment_code"]
    search_fields = ["actor", "=segment_code"]
    date_hierarchy = "created_at"
    fields = readonly_fields = (
        "created_at",
        "rule_ref",
        "segment_code",
        "version",
        "action",
        "actor",
        "changes",
    )

    @admin.display(description="what changed")
    def changes(self, obj: RuleChange) -> str:
        return show.diff_html(obj.before, obj.after)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.action(
    description="Erase visitor: events, profile, cache (asks to confirm)", permissions=["delete"]
)
def erase_visitors(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet) -> Any:
    """Shared by the profile and the analytics visitor admin: rows carry user_pseudo_id."""
    ids = sorted(set(queryset.values_list("user_pseudo_id", flat=True)[:1000]))
    if request.POST.get("confirm") != "yes":
        context = {
            **modeladmin.admin_site.each_context(request),
            "opts": modeladmin.opts,
            "title": "Erase visitors?",
            "user_pseudo_ids": ids,
            "queryset": queryset,
            "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
            "selected": request.POST.getlist(admin.helpers.ACTION_CHECKBOX_NAME),
        }
        return TemplateResponse(request, "admin/erase_visitors_confirmation.html", context)
    events = 0
    for user_pseudo_id in ids:
        events += visitor_erase(user_pseudo_id=user_pseudo_id).events
    modeladmin.message_user(
        request, f"Erased {len(ids)} visitor(s) and {events} event(s).", messages.SUCCESS
    )
    return None


class ProfileSegmentFilter(admin.SimpleListFilter):
    """Choices from the segments table: a DISTINCT over every profile would scan them all."""

    title = "segment"
    parameter_name = "segment"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(code, code) for code in Segment.objects.values_list("code", flat=True)]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        return queryset.filter(segment=self.value()) if self.value() else queryset


class ErasesVisitorsAdmin(SafeInputAdmin):
    """Deleting a visitor's row anywhere erases the visitor: removing only the row would leave
    their events, or a cached answer still served."""

    actions = [erase_visitors]

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # erase_visitors, with its own confirmation
        return actions

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        visitor_erase(user_pseudo_id=obj.user_pseudo_id)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        for user_pseudo_id in queryset.values_list("user_pseudo_id", flat=True):
            visitor_erase(user_pseudo_id=user_pseudo_id)


@admin.register(VisitorProfile)
class VisitorProfileAdmin(ErasesVisitorsAdmin):
    list_display = ["user_pseudo_id", "segment", "confidence", "event_count", "computed_at"]
    list_filter = [ProfileSegmentFilter]
    search_fields = ["=user_pseudo_id"]
    paginator = EstimatedCountPaginator
    fields = readonly_fields = (
        "user_pseudo_id",
        "segment",
        "confidence",
        "scores_table",
        "explanation_table",
        "event_count",
        "computed_at",
        "model_version",
        "version",
        "timeline",
    )
    show_full_result_count = False

    @admin.display(description="scores")
    def scores_table(self, obj: VisitorProfile) -> str:
        return show.scores_html(obj.scores)

    @admin.display(description="explanation")
    def explanation_table(self, obj: VisitorProfile) -> str:
        return show.explanation_html(obj.explanation)

    @admin.display(description="latest events")
    def timeline(self, obj: VisitorProfile) -> str:
        return show.timeline_html(obj.user_pseudo_id)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


from . import insights_admin  # noqa: E402,F401
