"""Signals other apps listen to."""

from django.dispatch import Signal

# Sent by `backup_restore` after pg_restore has committed and the erasure ledger (the union of
# the live table, the copy beside the archive and BACKUP_DIR/erasures.jsonl) is back in the
# restored table. kwargs: ledger (set[str], the erased visitors' hashes, ops.erasure).
# Each receiver undoes what the restore brought back that must not be (erased visitors, cache
# entries newer than the database) and returns one line for the operator, or None.
database_restored = Signal()
