"""Reactions to other apps' signals: thin, they hand over to a service."""

from typing import Any

from .services import erasures_reapply


def on_database_restored(sender: Any, *, ledger: set[str], **kwargs: Any) -> str:
    erased = erasures_reapply(ledger=ledger)
    return f"erasures: {len(ledger)} in the ledger, {erased} restored visitors erased again"
