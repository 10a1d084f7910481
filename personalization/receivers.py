"""Reactions to other apps' signals: thin, they hand over to a service."""

from typing import Any

from .services import (
    cache_reset_after_restore,
    profile_erase,
    profiles_erase_ledgered,
    profiles_forget,
    resegment_request,
)


def on_events_stored(sender: Any, *, user_pseudo_ids: tuple[str, ...], **kwargs: Any) -> None:
    resegment_request(user_pseudo_ids=user_pseudo_ids)


def on_visitor_erased(sender: Any, *, user_pseudo_id: str, **kwargs: Any) -> dict[str, int]:
    return {"profiles": profile_erase(user_pseudo_id=user_pseudo_id)}


def on_database_restored(sender: Any, *, ledger: set[str], **kwargs: Any) -> str:
    profiles = profiles_erase_ledgered(ledger=ledger)
    note = (
        "cache: personalization keys invalidated"
        if cache_reset_after_restore()
        else "cache: personalization keys NOT invalidated (cache unreachable): delete the "
        "p13n:* keys before starting web (docs/TROUBLESHOOTING.md)"
    )
    return note + (
        f"; {profiles} erased profiles without a visitor row removed" if profiles else ""
    )


def on_visitors_deleted(sender: Any, *, user_pseudo_ids: tuple[str, ...], **kwargs: Any) -> None:
    profiles_forget(user_pseudo_ids=user_pseudo_ids)
