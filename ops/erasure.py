"""The erasure ledger: what `visitor_erase` removed must stay removed when a backup taken
before the erasure is restored.

Each erasure appends a line to `<BACKUP_DIR>/erasures.jsonl` beside the archives it protects
against: a keyed hash of the visitor id (HMAC-SHA256 with ERASURE_LEDGER_KEY, SECRET_KEY by
default) and the time, never the id itself. `backup_restore` re-applies the whole ledger after
every restore: each restored visitor whose id hashes to a ledger entry is erased again.

Limits (docs/SECURITY.md): the ledger must travel with the backups (copy BACKUP_DIR as a
whole); a changed ERASURE_LEDGER_KEY no longer matches older entries; an archive restored by
hand with pg_restore needs `manage.py erase_visitor --reapply-ledger` afterwards.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path

from django.conf import settings
from django.utils import timezone

from .backups import backup_dir

logger = logging.getLogger(__name__)

LEDGER_NAME = "erasures.jsonl"


def ledger_path() -> Path:
    return backup_dir() / LEDGER_NAME


def visitor_hash(user_pseudo_id: str) -> str:
    key = (getattr(settings, "ERASURE_LEDGER_KEY", "") or settings.SECRET_KEY).encode()
    return hmac.new(key, user_pseudo_id.encode(), hashlib.sha256).hexdigest()


def erasure_record(user_pseudo_id: str) -> None:
    """Append the erasure to the ledger. A failure is logged, not raised: the erasure itself
    has happened, and only a later restore of an older backup would miss it."""
    path = ledger_path()
    line = json.dumps(
        {"visitor": visitor_hash(user_pseudo_id), "erased_at": timezone.now().isoformat()}
    )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        with os.fdopen(fd, "a") as handle:
            handle.write(line + "\n")
    except OSError as exc:
        logger.error("ops.erasure.ledger_write_failed", extra={"error": type(exc).__name__})


def ledger_hashes(path: Path | None = None) -> set[str]:
    path = path or ledger_path()
    if not path.exists():
        return set()
    hashes = set()
    for line in _lines(path):
        try:
            hashes.add(str(json.loads(line)["visitor"]))
        except (ValueError, KeyError, TypeError):
            logger.warning("ops.erasure.ledger_line_skipped")
    return hashes


def _lines(path: Path) -> Iterator[str]:
    with path.open() as handle:
        for line in handle:
            if line.strip():
                yield line


def erasures_reapply() -> int:
    """Erase again every stored visitor the ledger names; how many there were."""
    from analytics.models import Visitor
    from personalization.models import VisitorProfile
    from personalization.services import visitor_erase

    hashes = ledger_hashes()
    if not hashes:
        return 0
    ids = set(Visitor.objects.values_list("user_pseudo_id", flat=True))
    ids |= set(VisitorProfile.objects.values_list("user_pseudo_id", flat=True))
    erased = 0
    for user_pseudo_id in sorted(ids):
        if visitor_hash(user_pseudo_id) in hashes:
            visitor_erase(user_pseudo_id=user_pseudo_id, record=False)
            erased += 1
    logger.info("ops.erasure.reapplied", extra={"visitors": erased})
    return erased
