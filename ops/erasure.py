"""The erasure ledger: what a visitor erasure removed must stay removed when a backup taken
before it is restored.

Each erasure adds a row to `ErasureLedgerEntry` in the transaction that deletes the visitor's
data, so any role that can write the database can erase (web runs with a read-only file
system): a keyed hash of the visitor id (HMAC-SHA256 with ERASURE_LEDGER_KEY, SECRET_KEY by
default) and the time, never the id itself.

The table is restored with the database, so it cannot be the only copy. Two files in BACKUP_DIR
(written by the worker/backup role, which has it) carry the ledger beyond a lost database:
- `erasures.jsonl`, rewritten by the `ops.erasure_ledger_export` task each erasure queues after
  commit (and by every backup);
- `<archive>.erasures.jsonl` beside each archive, as the ledger stood when it was made.
`backup_restore` reads the live table before restoring, then puts the union of the table, the
copy beside the archive and `erasures.jsonl` back into the restored table and re-applies it.

Limits (docs/SECURITY.md): a changed ERASURE_LEDGER_KEY no longer matches older entries; an
archive restored by hand with pg_restore needs `manage.py erase_visitor --reapply-ledger`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import tempfile
from datetime import datetime
from pathlib import Path

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, DatabaseError, transaction
from django.utils import timezone

from .backups import backup_dir
from .models import ErasureLedgerEntry

logger = logging.getLogger(__name__)

LEDGER_NAME = "erasures.jsonl"
SIDECAR_SUFFIX = ".erasures.jsonl"

# visitor hash -> erased_at (ISO 8601)
Ledger = dict[str, str]


def ledger_path() -> Path:
    return backup_dir() / LEDGER_NAME


def ledger_sidecar(archive: Path) -> Path:
    """The ledger copy written beside `archive` when it was made."""
    return archive.with_name(archive.name + SIDECAR_SUFFIX)


def visitor_hash(user_pseudo_id: str) -> str:
    key = (getattr(settings, "ERASURE_LEDGER_KEY", "") or settings.SECRET_KEY).encode()
    return hmac.new(key, user_pseudo_id.encode(), hashlib.sha256).hexdigest()


# --- writing -----------------------------------------------------------------------------------


def ledger_record(*, user_pseudo_id: str) -> None:
    """Record the erasure in the caller's transaction (it commits or rolls back with the
    deletions), then refresh the ledger file on a worker once it has committed."""
    ErasureLedgerEntry.objects.bulk_create(
        [ErasureLedgerEntry(visitor_hash=visitor_hash(user_pseudo_id), erased_at=timezone.now())],
        ignore_conflicts=True,  # erased before: the first time stands
    )
    transaction.on_commit(_queue_export, robust=True)


def _queue_export() -> None:
    from .tasks import erasure_ledger_export

    try:
        erasure_ledger_export.delay()
    except Exception as exc:  # a broker outage: the table holds the erasure; the next backup
        # or erasure writes the file
        logger.warning("ops.erasure.export_not_queued", extra={"error": type(exc).__name__})


def ledger_store(entries: Ledger, *, using: str = DEFAULT_DB_ALIAS) -> None:
    ErasureLedgerEntry.objects.using(using).bulk_create(
        [
            ErasureLedgerEntry(visitor_hash=h, erased_at=datetime.fromisoformat(at))
            for h, at in entries.items()
        ],
        ignore_conflicts=True,
        batch_size=1000,
    )


def ledger_file_write(path: Path, entries: Ledger) -> None:
    """Replace `path` with `entries`, atomically (a reader never sees half a ledger)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as handle:
            for h, at in sorted(entries.items(), key=lambda item: (item[1], item[0])):
                handle.write(json.dumps({"visitor": h, "erased_at": at}) + "\n")
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def ledger_export(*, using: str = DEFAULT_DB_ALIAS) -> int:
    """Rewrite BACKUP_DIR/erasures.jsonl as the union of the table and what the file already
    holds (entries of a database since lost stay). Returns the number of entries."""
    path = ledger_path()
    entries = _union(ledger_file_read(path), ledger_table_read(using=using))
    ledger_file_write(path, entries)
    return len(entries)


# --- reading -----------------------------------------------------------------------------------


def ledger_table_read(*, using: str = DEFAULT_DB_ALIAS) -> Ledger:
    """The live table. Raises DatabaseError where it does not exist (a fresh database)."""
    return {
        h: at.isoformat()
        for h, at in ErasureLedgerEntry.objects.using(using).values_list(
            "visitor_hash", "erased_at"
        )
    }


def ledger_file_read(path: Path) -> Ledger:
    entries: Ledger = {}
    try:
        handle = path.open()
    except FileNotFoundError:
        return entries
    with handle:
        for line in handle:
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                entries[str(record["visitor"])] = str(record["erased_at"])
            except (ValueError, KeyError, TypeError):
                logger.warning("ops.erasure.ledger_line_skipped")
    return entries


def ledger_entries(
    *, archive: Path | None = None, using: str = DEFAULT_DB_ALIAS, table: bool = True
) -> Ledger:
    """Every erasure known anywhere: the table (if it exists), BACKUP_DIR/erasures.jsonl and
    the copy beside `archive`."""
    sources = [ledger_file_read(ledger_path())]
    if archive is not None:
        sources.append(ledger_file_read(ledger_sidecar(archive)))
    if table:
        sources.append(ledger_table_read_or_empty(using=using))
    return _union(*sources)


def ledger_table_read_or_empty(*, using: str = DEFAULT_DB_ALIAS) -> Ledger:
    try:
        with transaction.atomic(using=using):
            return ledger_table_read(using=using)
    except DatabaseError:  # no table yet: a fresh database, or one older than the ledger
        logger.warning("ops.erasure.ledger_table_missing")
        return {}


def ledger_hashes(*, using: str = DEFAULT_DB_ALIAS) -> set[str]:
    return set(ledger_entries(using=using))


def _union(*sources: Ledger) -> Ledger:
    merged: Ledger = {}
    for source in sources:
        for h, at in source.items():
            if h not in merged or at < merged[h]:
                merged[h] = at  # the first erasure stands
    return merged


def ledger_merge(*, using: str = DEFAULT_DB_ALIAS) -> Ledger:
    """Put every erasure the files know into the table too; the whole ledger."""
    entries = ledger_entries(using=using)
    ledger_store(entries, using=using)
    return entries
