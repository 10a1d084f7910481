"""What admins may save: the seed's ValidatedRuleOverride limits (shared by the admin form and
the admin API) and the schema of signal conditions (the admin forms, Signal.full_clean, the
data migration that loads the defaults)."""

from __future__ import annotations

from typing import Any

from django.core.validators import MaxValueValidator, MinValueValidator

from .conditions import conditions_problems

LIST_LIMITS = {"priority_sections": 10, "featured_projects": 20, "highlight_skills": 50}
MAX_ITEM_LENGTH = 100
MAX_REASONING_LENGTH = 1000

# The numbers of segments and signals (docs/SEGMENTATION.md, "Numbers"): wide enough for any
# sensible model (the defaults use priors 0-2, weights 0.3-2.5, caps 1-6), narrow enough that no
# raw score can overflow. Scoring clamps a stored number outside them into them.
PRIOR_LIMIT = 1000.0
WEIGHT_LIMIT = 1000.0
CAP_MIN, CAP_MAX = 0.01, 10_000.0
HALF_LIFE_MIN_DAYS, HALF_LIFE_MAX_DAYS = 0.01, 3650.0

# PositiveSmallIntegerField's range on PostgreSQL; SQLite would take up to 2**63 - 1.
POSITION_VALIDATORS = [MaxValueValidator(32767)]
PRIOR_VALIDATORS = [MinValueValidator(-PRIOR_LIMIT), MaxValueValidator(PRIOR_LIMIT)]
WEIGHT_VALIDATORS = [MinValueValidator(-WEIGHT_LIMIT), MaxValueValidator(WEIGHT_LIMIT)]
CAP_VALIDATORS = [MinValueValidator(CAP_MIN), MaxValueValidator(CAP_MAX)]
HALF_LIFE_VALIDATORS = [
    MinValueValidator(HALF_LIFE_MIN_DAYS),
    MaxValueValidator(HALF_LIFE_MAX_DAYS),
]


def rule_errors(data: dict[str, Any]) -> dict[str, list[str]]:
    """{field: [messages]} for every limit `data` breaks; empty when it is valid."""
    errors: dict[str, list[str]] = {}
    for name, limit in LIST_LIMITS.items():
        value = data.get(name, [])
        if not isinstance(value, list):
            errors[name] = ["Must be a list of strings."]
            continue
        problems = []
        if len(value) > limit:
            problems.append(f"At most {limit} items; got {len(value)}.")
        if any(not isinstance(item, str) or not item.strip() for item in value):
            problems.append("Every item must be a non-empty string.")
        elif any(len(item) > MAX_ITEM_LENGTH for item in value):
            problems.append(f"Every item must be at most {MAX_ITEM_LENGTH} characters.")
        if len(set(value)) != len(value) and not problems:
            problems.append("Items must not repeat.")
        if problems:
            errors[name] = problems
    reasoning = data.get("reasoning", "")
    if not isinstance(reasoning, str):
        errors["reasoning"] = ["Must be a string."]
    elif len(reasoning) > MAX_REASONING_LENGTH:
        errors["reasoning"] = [f"At most {MAX_REASONING_LENGTH} characters; got {len(reasoning)}."]
    return errors


def rule_catalog_errors(data: dict[str, Any]) -> dict[str, list[str]]:
    """{field: [messages]} for items the content catalog does not know. A list is checked once
    its catalog table has rows, so a fresh install (default rules, empty catalog) still works."""
    from .models import Project, Section, Skill

    catalogs = {
        "priority_sections": lambda: Section.objects.values_list("slug", flat=True),
        "featured_projects": lambda: Project.objects.values_list("slug", flat=True),
        "highlight_skills": lambda: Skill.objects.values_list("name", flat=True),
    }
    errors: dict[str, list[str]] = {}
    for name, known_of in catalogs.items():
        value = data.get(name) or []
        if not isinstance(value, list) or not value:
            continue
        known = set(known_of())
        unknown = [item for item in value if isinstance(item, str) and item not in known]
        if known and unknown:
            shown = ", ".join(repr(item[:40]) for item in unknown[:5])
            errors[name] = [f"Not in the content catalog: {shown}."]
    return errors


def signal_conditions_errors(conditions: Any) -> dict[str, list[str]]:
    """{"conditions": [messages]} when `conditions` breaks the schema (conditions.OPS: known
    ops, a value of the op's type, regexes RE2 compiles); empty when it is valid. Never raises."""
    problems = conditions_problems(conditions)
    return {"conditions": problems} if problems else {}
