"""The content catalog: what the portfolio shows, tagged by topic so signals can match on it."""

from django.core.exceptions import ValidationError
from django.db import models

from .validation import (
    CAP_VALIDATORS,
    HALF_LIFE_VALIDATORS,
    POSITION_VALIDATORS,
    PRIOR_VALIDATORS,
    WEIGHT_VALIDATORS,
    signal_conditions_errors,
)


class Section(models.Model):
    """A page section, identified by the element id the site gives it (skills, career, ...)."""

    slug = models.SlugField(max_length=50, unique=True, help_text="The section's element id.")
    title = models.CharField(max_length=100)
    position = models.PositiveSmallIntegerField(
        default=0, validators=POSITION_VALIDATORS, help_text="Default order on the page."
    )
    tags = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["position", "slug"]

    def __str__(self) -> str:
        return self.title


class Project(models.Model):
    slug = models.SlugField(max_length=100, unique=True, help_text="The card's data-project-id.")
    title = models.CharField(max_length=200)
    description = models.TextField(blank=True, default="")
    category = models.CharField(
        max_length=100, blank=True, default="", help_text="The site's own label; not a topic."
    )
    tech_stack = models.JSONField(default=list, blank=True)
    tags = models.JSONField(default=list, blank=True, help_text="Topics: ml, web, data, ...")
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.title


class Skill(models.Model):
    name = models.CharField(max_length=100, unique=True, help_text="As in data-skill-name.")
    tags = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Segment(models.Model):
    """An audience segment. Its prior is its raw score before any evidence."""

    code = models.SlugField(max_length=40, unique=True, help_text="e.g. ML_ENGINEER")
    name = models.CharField(max_length=100)
    description = models.TextField(blank=True, default="")
    prior = models.FloatField(
        default=0.0,
        validators=PRIOR_VALIDATORS,
        help_text="Raw score with no evidence at all; -1000 to 1000.",
    )
    topic_tags = models.JSONField(
        default=list, blank=True, help_text="Catalog tags this audience cares about."
    )
    recommendation = models.TextField(
        blank=True, default="", help_text="What to show this audience, in a sentence."
    )
    position = models.PositiveSmallIntegerField(default=0, validators=POSITION_VALIDATORS)

    class Meta:
        ordering = ["position", "code"]

    def __str__(self) -> str:
        return self.code


class Signal(models.Model):
    """Evidence for a segment: matching events count (decayed, capped) times the weight."""

    segment = models.ForeignKey(Segment, on_delete=models.CASCADE, related_name="signals")
    label = models.CharField(max_length=120, help_text="Shown in explanations.")
    event_name = models.CharField(max_length=100)
    # [{"param": "project_id", "op": "tag", "value": ["ml", "ai"]}, ...]; all must hold.
    conditions = models.JSONField(default=list, blank=True)
    weight = models.FloatField(
        default=1.0,
        validators=WEIGHT_VALIDATORS,
        help_text="Added per counted match; -1000 to 1000 (negative: evidence against).",
    )
    cap = models.FloatField(
        default=5.0,
        validators=CAP_VALIDATORS,
        help_text="Most (decayed) matches counted per visitor; 0.01 to 10000.",
    )
    half_life_days = models.FloatField(
        null=True,
        blank=True,
        default=30.0,
        validators=HALF_LIFE_VALIDATORS,
        help_text="0.01 to 3650 days; empty: no time decay.",
    )
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["segment__position", "event_name", "id"]

    def __str__(self) -> str:
        return f"{self.segment.code}: {self.label}"

    def clean(self) -> None:
        # Run by every ModelForm (the Signal admin, the segment's inline) and by full_clean:
        # a condition that cannot run is refused where it is typed. Scoring still skips one
        # that reached the table another way.
        errors = signal_conditions_errors(self.conditions)
        if errors:
            raise ValidationError(errors)


class VisitorProfile(models.Model):
    """The latest segmentation of one visitor, with its exact explanation."""

    user_pseudo_id = models.CharField(max_length=200, unique=True)
    segment = models.CharField(max_length=40)
    confidence = models.FloatField()
    scores = models.JSONField(default=dict)
    raw_scores = models.JSONField(default=dict)
    explanation = models.JSONField(default=dict)
    event_count = models.PositiveIntegerField(default=0)
    computed_at = models.DateTimeField()
    model_version = models.CharField(max_length=40)
    # Bumped on every recompute that changes the answer; part of the cache entry's identity.
    version = models.PositiveIntegerField(default=1)
    # An LLM's reading of an ambiguous visitor, kept beside the deterministic segment (never
    # used in its place): {"segment", "confidence", "reason", "agrees", "for_version", ...}.
    second_opinion = models.JSONField(default=dict, blank=True)

    class Meta:
        indexes = [models.Index(fields=["segment"], name="profile_segment_idx")]

    def __str__(self) -> str:
        return f"{self.user_pseudo_id}: {self.segment} ({self.confidence:.0%})"


class RuleStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    ACTIVE = "active", "Active"
    ARCHIVED = "archived", "Archived"


class RuleSource(models.TextChoices):
    ADMIN = "admin", "Admin"
    LLM = "llm", "LLM suggestion"


class PersonalizationRule(models.Model):
    """What a segment is shown (the seed's ValidatedRuleOverride). One active rule per segment;
    empty project or skill lists are filled from the catalog by the segment's topic tags."""

    segment = models.ForeignKey(Segment, on_delete=models.CASCADE, related_name="rules")
    version = models.PositiveIntegerField(default=1)
    status = models.CharField(max_length=10, choices=RuleStatus.choices, default=RuleStatus.DRAFT)
    source = models.CharField(max_length=10, choices=RuleSource.choices, default=RuleSource.ADMIN)
    priority_sections = models.JSONField(default=list, blank=True)
    featured_projects = models.JSONField(default=list, blank=True)
    highlight_skills = models.JSONField(default=list, blank=True)
    reasoning = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.CharField(max_length=150, blank=True, default="")
    activated_at = models.DateTimeField(null=True, blank=True)
    # The LLM insight that suggested this rule (source llm); kept if the insight is deleted.
    insight = models.ForeignKey(
        "LLMInsight",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="suggested_rule_objects",
    )

    class Meta:
        ordering = ["segment__position", "-version"]
        constraints = [
            models.UniqueConstraint(
                fields=["segment"],
                condition=models.Q(status="active"),
                name="one_active_rule_per_segment",
            ),
            models.UniqueConstraint(fields=["segment", "version"], name="rule_version_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.segment.code} v{self.version} ({self.status})"


class RuleSetVersion(models.Model):
    """A single row whose counter goes up with every rule or signal change: the personalization
    cache compares it with the version its entries were built for."""

    version = models.PositiveBigIntegerField(default=1)
    changed_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"rule set v{self.version}"


class RuleChangeAction(models.TextChoices):
    CREATED = "created", "Created"
    UPDATED = "updated", "Updated"
    ACTIVATED = "activated", "Activated"
    ARCHIVED = "archived", "Archived"
    DELETED = "deleted", "Deleted"


class RuleChange(models.Model):
    """Audit trail of rules: who did what, when, with the rule before and after. Written only
    by the rule services, so admin, API and LLM approvals all leave the same record."""

    # Kept when the rule is deleted: the history outlives it.
    rule = models.ForeignKey(
        PersonalizationRule,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="changes",
    )
    rule_ref = models.PositiveBigIntegerField(help_text="The rule's id, even after deletion.")
    segment_code = models.CharField(max_length=40)
    version = models.PositiveIntegerField()
    action = models.CharField(max_length=10, choices=RuleChangeAction.choices)
    actor = models.CharField(max_length=150, blank=True, default="")
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["rule_ref", "created_at"], name="rulechange_rule_time_idx")]

    def __str__(self) -> str:
        return f"{self.segment_code} v{self.version} {self.action} by {self.actor or '?'}"


class InsightStatus(models.TextChoices):
    OK = "ok", "OK"
    UNVERIFIED = "unverified", "Unverified numbers"
    FAILED = "failed", "Failed"


class LLMInsight(models.Model):
    """One analysis of a period: what an LLM (or the offline analyzer) read in the statistics,
    the rules it suggested, and how every number it quoted was checked."""

    created_at = models.DateTimeField(auto_now_add=True)
    period_start = models.DateTimeField()
    period_end = models.DateTimeField()
    provider = models.CharField(max_length=40)
    model = models.CharField(max_length=100, blank=True, default="")
    status = models.CharField(max_length=12, choices=InsightStatus.choices)
    summary = models.TextField(blank=True, default="")
    # [{"what", "why", "so_what", "recommendation"}, ...]
    findings = models.JSONField(default=list, blank=True)
    # What the model proposed per segment, after dropping names outside the catalog.
    suggested_rules = models.JSONField(default=list, blank=True)
    # [{"segment", "field", "value", "reason"}]: names the model invented.
    dropped_items = models.JSONField(default=list, blank=True)
    # {"checked": n, "mismatched": n, "numbers": [{"text", "value", "outcome", "matched"}]}
    verification = models.JSONField(default=dict, blank=True)
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    latency_ms = models.PositiveIntegerField(default=0)
    prompt_version = models.CharField(max_length=40, blank=True, default="")
    # [{"provider", "model", "attempt", "status", "latency_ms", "error"}]; never secrets.
    attempts = models.JSONField(default=list, blank=True)
    error = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "LLM insight"
        constraints = [
            # A task redelivered after a crash finds its period done instead of repeating it.
            models.UniqueConstraint(
                fields=["period_start", "period_end"], name="llm_insight_period_unique"
            )
        ]
        indexes = [models.Index(fields=["-created_at"], name="llm_insight_created_idx")]

    def __str__(self) -> str:
        period = f"{self.period_start:%Y-%m-%d}..{self.period_end:%Y-%m-%d}"
        return f"{period} {self.provider} ({self.status})"
