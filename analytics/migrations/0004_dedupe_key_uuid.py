"""dedupe_key becomes a UUIDField: the first 16 bytes of the sha256 digest it held as 64 hex
digits. Every stored key is such a digest (services.dedupe_key), so its first 32 hex digits
are exactly the new key's bytes, and events stored before keep deduplicating the same events
after: a re-import, a repeated client event_id.

PostgreSQL: one ALTER ... TYPE uuid USING left(dedupe_key, 32)::uuid, which rewrites the table
and its indexes under an exclusive lock (6.2 s for a million events on a 2-core machine).
Elsewhere (SQLite: UUIDField is char(32) holding the hex digits) the keys are cut to their first
32 digits, then the field altered as usual.

The reverse keeps those 32 digits as text: the schema comes back, but the code of before
computes 64-digit keys, so it would no longer recognise events stored before the reverse as
duplicates (a re-import would store them again).
"""

from typing import Any

from django.db import migrations, models

ALTER_TO_UUID = (
    "ALTER TABLE analytics_event ALTER COLUMN dedupe_key TYPE uuid USING left(dedupe_key, 32)::uuid"
)
ALTER_TO_TEXT = (
    "ALTER TABLE analytics_event ALTER COLUMN dedupe_key TYPE varchar(64)"
    " USING replace(dedupe_key::text, '-', '')"
)


class AlterDedupeKeyToUUID(migrations.AlterField):
    """AlterField whose database side converts the stored digests (see the module's text)."""

    def database_forwards(
        self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any
    ) -> None:
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(ALTER_TO_UUID)
            return
        schema_editor.execute("UPDATE analytics_event SET dedupe_key = substr(dedupe_key, 1, 32)")
        super().database_forwards(app_label, schema_editor, from_state, to_state)

    def database_backwards(
        self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any
    ) -> None:
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(ALTER_TO_TEXT)
            return
        super().database_backwards(app_label, schema_editor, from_state, to_state)


class Migration(migrations.Migration):
    dependencies = [
        ("analytics", "0003_dedupe_key_constraint"),
    ]

    operations = [
        AlterDedupeKeyToUUID(
            model_name="event",
            name="dedupe_key",
            field=models.UUIDField(),
        ),
    ]
