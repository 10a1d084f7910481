"""Import the erasure ledger file of earlier releases (BACKUP_DIR/erasures.jsonl) into the
ErasureLedgerEntry table. Runs where BACKUP_DIR is readable (the migrate role); where it is not,
nothing is lost: the file stays, every restore reads it, and
`manage.py erase_visitor --reapply-ledger` merges it into the table."""

import json
import logging
from datetime import datetime
from pathlib import Path

from django.conf import settings
from django.db import migrations

logger = logging.getLogger(__name__)


def import_erasures_jsonl(apps, schema_editor):
    entry = apps.get_model("ops", "ErasureLedgerEntry")
    base = getattr(settings, "BACKUP_DIR", "") or Path(settings.BASE_DIR) / "var" / "backups"
    path = Path(base) / "erasures.jsonl"
    try:
        lines = path.read_text().splitlines()
    except OSError:  # no file (a new installation) or not readable from this role
        return
    rows = {}
    for line in lines:
        try:
            record = json.loads(line)
            rows.setdefault(
                str(record["visitor"]), datetime.fromisoformat(str(record["erased_at"]))
            )
        except (ValueError, KeyError, TypeError):
            logger.warning("ops.erasure.ledger_line_skipped")
    entry.objects.bulk_create(
        [entry(visitor_hash=h, erased_at=at) for h, at in rows.items()],
        ignore_conflicts=True,
        batch_size=1000,
    )


class Migration(migrations.Migration):
    dependencies = [("ops", "0002_erasure_ledger")]

    operations = [migrations.RunPython(import_erasures_jsonl, migrations.RunPython.noop)]
