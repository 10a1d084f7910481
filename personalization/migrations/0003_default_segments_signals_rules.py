"""Load the default segments, signals and active rules (personalization/defaults.py).

Runs once per database; later edits happen in admin. Reverse removes only what it added.
"""

from django.db import migrations


def load_defaults(apps, schema_editor):
    from personalization import defaults
    from personalization.validation import signal_conditions_errors

    # Rows written here skip the admin's validation: check them against the same schema.
    for data in defaults.SIGNALS:
        errors = signal_conditions_errors(data["conditions"])
        if errors:
            raise ValueError(f"default signal {data['label']!r}: {errors['conditions']}")

    Segment = apps.get_model("personalization", "Segment")
    Signal = apps.get_model("personalization", "Signal")
    Rule = apps.get_model("personalization", "PersonalizationRule")
    RuleSetVersion = apps.get_model("personalization", "RuleSetVersion")

    segments = {}
    for data in defaults.SEGMENTS:
        segments[data["code"]], _ = Segment.objects.get_or_create(
            code=data["code"], defaults={k: v for k, v in data.items() if k != "code"}
        )
    for data in defaults.SIGNALS:
        fields = {k: v for k, v in data.items() if k != "segment"}
        Signal.objects.get_or_create(
            segment=segments[data["segment"]], label=data["label"], defaults=fields
        )
    for data in defaults.RULES:
        segment = segments[data["segment"]]
        if not Rule.objects.filter(segment=segment).exists():
            Rule.objects.create(
                segment=segment,
                version=1,
                status="active",
                source="admin",
                priority_sections=data["priority_sections"],
                reasoning=data["reasoning"],
                created_by="migration",
            )
    if not RuleSetVersion.objects.exists():
        RuleSetVersion.objects.create(version=1)


def unload_defaults(apps, schema_editor):
    from personalization import defaults

    Segment = apps.get_model("personalization", "Segment")
    Segment.objects.filter(code__in=[s["code"] for s in defaults.SEGMENTS]).delete()


class Migration(migrations.Migration):
    dependencies = [("personalization", "0002_segments_signals_profiles_rules")]

    operations = [migrations.RunPython(load_defaults, unload_defaults)]
