"""Dead letters get their visitor id in an indexed column (erasure and the admin find them by
it), and the ones stored before lose what identifies a person (issue 19 items 3-4).

The rows are read and rewritten in batches by primary key, so a large table is never held in
memory. The rules are analytics.dead_letters' own, imported: the same rules must apply to old
rows as to new ones."""

from django.db import migrations, models

BATCH = 1000


def backfill(apps, schema_editor):
    from analytics.dead_letters import dead_letter_scrub, dead_letter_visitor

    RejectedEvent = apps.get_model("analytics", "RejectedEvent")
    last = 0
    while True:
        rows = list(RejectedEvent.objects.filter(pk__gt=last).order_by("pk")[:BATCH])
        if not rows:
            return
        for row in rows:
            row.user_pseudo_id = dead_letter_visitor(row.payload, source=row.source)
            row.payload = dead_letter_scrub(row.payload, source=row.source)
        RejectedEvent.objects.bulk_update(rows, ["user_pseudo_id", "payload"])
        last = rows[-1].pk


class Migration(migrations.Migration):
    dependencies = [
        ("analytics", "0006_ga4exportupload_heartbeat_at"),
    ]

    operations = [
        migrations.AddField(
            model_name="rejectedevent",
            name="user_pseudo_id",
            field=models.CharField(blank=True, default="", max_length=200),
        ),
        migrations.AddIndex(
            model_name="rejectedevent",
            index=models.Index(fields=["user_pseudo_id"], name="rejected_visitor_idx"),
        ),
        # What was dropped is gone: going back leaves the column's rows as they are.
        migrations.RunPython(backfill, migrations.RunPython.noop),
    ]
