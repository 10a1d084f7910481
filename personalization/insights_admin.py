"""Django admin for LLM insights: the analysis rendered read-only, unverified numbers flagged,
its draft rules with one action to approve them, and a button that queues an analysis now."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.views.decorators.http import require_POST

from .insights_services import insight_drafts_approve
from .models import InsightStatus, LLMInsight, RuleStatus


@admin.register(LLMInsight)
class LLMInsightAdmin(admin.ModelAdmin):
    # Colours and layout as classes: the admin's Content-Security-Policy allows no inline style.
    class Media:
        css = {"all": ["personalization/admin/insights.css"]}

    list_display = ["created_at", "period", "provider", "model", "status_flag", "draft_count"]
    list_filter = ["status", "provider"]
    date_hierarchy = "created_at"
    actions = ["approve_drafts"]
    fieldsets = [
        (None, {"fields": ["status_flag", "period", "provider", "model", "prompt_version"]}),
        ("Analysis", {"fields": ["summary_html", "findings_html"]}),
        ("Suggested rules", {"fields": ["drafts_html", "dropped_html"]}),
        ("Checks and cost", {"fields": ["verification_html", "usage", "attempts_html", "error"]}),
    ]
    readonly_fields = [
        "status_flag",
        "period",
        "provider",
        "model",
        "prompt_version",
        "summary_html",
        "findings_html",
        "drafts_html",
        "dropped_html",
        "verification_html",
        "usage",
        "attempts_html",
        "error",
    ]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def get_queryset(self, request: HttpRequest) -> QuerySet[LLMInsight]:
        return super().get_queryset(request).prefetch_related("suggested_rule_objects__segment")

    # --- Rendering (every value escaped by format_html) ---------------------------------------

    @admin.display(description="Period")
    def period(self, obj: LLMInsight) -> str:
        return f"{obj.period_start:%Y-%m-%d %H:%M} to {obj.period_end:%Y-%m-%d %H:%M} UTC"

    @admin.display(description="Status", ordering="status")
    def status_flag(self, obj: LLMInsight) -> str:
        label = obj.get_status_display()
        if obj.status == InsightStatus.UNVERIFIED:
            mismatched = (obj.verification or {}).get("mismatched", 0)
            label = f"⚠ {label}: {mismatched} quoted number(s) not in the data"
        return format_html(
            '<strong class="insight-status insight-status-{}">{}</strong>', obj.status, label
        )

    @admin.display(description="Drafts")
    def draft_count(self, obj: LLMInsight) -> int:
        return sum(r.status == RuleStatus.DRAFT for r in obj.suggested_rule_objects.all())

    @admin.display(description="Summary")
    def summary_html(self, obj: LLMInsight) -> str:
        return format_html('<p class="insight-summary">{}</p>', obj.summary)

    @admin.display(description="Findings")
    def findings_html(self, obj: LLMInsight) -> str:
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (f.get("what", ""), f.get("why", ""), f.get("so_what", ""), f.get("recommendation"))
                for f in obj.findings or []
                if isinstance(f, dict)
            ),
        )
        return format_html(
            "<table><thead><tr><th>What</th><th>Why</th><th>So what</th>"
            "<th>Recommendation</th></tr></thead><tbody>{}</tbody></table>",
            rows,
        )

    @admin.display(description="Draft rules")
    def drafts_html(self, obj: LLMInsight) -> str:
        rules = list(obj.suggested_rule_objects.all())
        if not rules:
            return "None"
        rows = format_html_join(
            "",
            '<tr><td><a href="{}">{} v{}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>'
            "<td>{}</td></tr>",
            (
                (
                    reverse("admin:personalization_personalizationrule_change", args=[r.pk]),
                    r.segment.code,
                    r.version,
                    r.get_status_display(),
                    ", ".join(r.priority_sections),
                    ", ".join(r.featured_projects),
                    ", ".join(r.highlight_skills),
                    r.reasoning,
                )
                for r in rules
            ),
        )
        return format_html(
            "<table><thead><tr><th>Rule</th><th>Status</th><th>Sections</th><th>Projects</th>"
            "<th>Skills</th><th>Reasoning</th></tr></thead><tbody>{}</tbody></table>"
            "<p>Approve them with the “Approve draft rules” action on the list.</p>",
            rows,
        )

    @admin.display(description="Dropped (not in the catalog)")
    def dropped_html(self, obj: LLMInsight) -> str:
        items = [d for d in obj.dropped_items or [] if isinstance(d, dict)]
        if not items:
            return "None"
        return format_html(
            "<ul>{}</ul>",
            format_html_join(
                "",
                "<li>{} {}: “{}” ({})</li>",
                (
                    (d.get("segment"), d.get("field"), d.get("value"), d.get("reason"))
                    for d in items
                ),
            ),
        )

    @admin.display(description="Number checks")
    def verification_html(self, obj: LLMInsight) -> str:
        checks = (obj.verification or {}).get("numbers", [])
        rows = format_html_join(
            "",
            '<tr><td>{}</td><td>{}</td><td class="{}">{}</td><td>{}</td></tr>',
            (
                (
                    c.get("text"),
                    c.get("where"),
                    "insight-mismatch" if c.get("outcome") == "mismatch" else "",
                    c.get("outcome"),
                    c.get("matched", ""),
                )
                for c in checks
                if isinstance(c, dict)
            ),
        )
        return format_html(
            "<table><thead><tr><th>Quoted</th><th>Where</th><th>Outcome</th><th>Found at</th>"
            "</tr></thead><tbody>{}</tbody></table>",
            rows,
        )

    @admin.display(description="Tokens and latency")
    def usage(self, obj: LLMInsight) -> str:
        return (
            f"{obj.prompt_tokens} prompt + {obj.completion_tokens} completion tokens, "
            f"{obj.latency_ms} ms"
        )

    @admin.display(description="Provider attempts")
    def attempts_html(self, obj: LLMInsight) -> str:
        return format_html(
            "<ol>{}</ol>",
            format_html_join(
                "",
                "<li>{} ({}) #{}: {} {}</li>",
                (
                    (
                        a.get("provider"),
                        a.get("model"),
                        a.get("attempt"),
                        a.get("status"),
                        a.get("error", ""),
                    )
                    for a in obj.attempts or []
                    if isinstance(a, dict)
                ),
            ),
        )

    # --- Approve --------------------------------------------------------------------------------

    @admin.action(description="Approve draft rules (activates them, archiving the current ones)")
    def approve_drafts(self, request: HttpRequest, queryset: QuerySet[LLMInsight]) -> None:
        insights = list(queryset)
        segments = [
            rule.segment_id
            for insight in insights
            for rule in insight.suggested_rule_objects.all()
            if rule.status == RuleStatus.DRAFT
        ]
        if len(segments) != len(set(segments)):
            self.message_user(
                request, "These insights suggest rules for the same segment: pick one.", "error"
            )
            return
        actor = request.user.get_username()
        approved = [r for i in insights for r in insight_drafts_approve(insight=i, actor=actor)]
        if not approved:
            self.message_user(request, "No draft rules to approve.", messages.WARNING)
            return
        names = ", ".join(f"{r.segment.code} v{r.version}" for r in approved)
        level = messages.SUCCESS
        if any(i.status == InsightStatus.UNVERIFIED for i in insights):
            level = messages.WARNING
            names += " (from an insight with unverified numbers)"
        self.message_user(request, f"Activated {names}.", level)

    # --- Run now --------------------------------------------------------------------------------

    def get_urls(self) -> list[URLPattern]:
        run = path(
            "run/",
            self.admin_site.admin_view(require_POST(self.run_view)),
            name="personalization_llminsight_run",
        )
        return [run, *super().get_urls()]

    def run_view(self, request: HttpRequest) -> HttpResponse:
        from .tasks import insights_run

        changelist = reverse("admin:personalization_llminsight_changelist")
        if not self.has_change_permission(request):
            self.message_user(request, "You may not run analyses.", messages.ERROR)
            return HttpResponseRedirect(changelist)
        end = timezone.now().replace(second=0, microsecond=0)
        start = end - timedelta(days=settings.LLM_INSIGHTS_DAYS)
        try:
            result = insights_run.apply_async(
                kwargs={"period_start": start.isoformat(), "period_end": end.isoformat()}
            )
        except Exception as exc:
            self.message_user(request, f"Could not queue the analysis: {exc}", messages.ERROR)
            return HttpResponseRedirect(changelist)
        self.message_user(
            request,
            f"Analysis of the last {settings.LLM_INSIGHTS_DAYS} days queued (task {result.id}).",
            messages.SUCCESS,
        )
        return HttpResponseRedirect(changelist)

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> HttpResponse:
        extra_context = {
            **(extra_context or {}),
            "run_url": reverse("admin:personalization_llminsight_run"),
        }
        return super().changelist_view(request, extra_context=extra_context)
