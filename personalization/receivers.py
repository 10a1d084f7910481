"""Reactions to other apps' signals: thin, they hand over to a service."""

from typing import Any

from .services import profiles_forget, resegment_request


def on_events_stored(sender: Any, *, user_pseudo_ids: tuple[str, ...], **kwargs: Any) -> None:
    resegment_request(user_pseudo_ids=user_pseudo_ids)


def on_visitors_deleted(sender: Any, *, user_pseudo_ids: tuple[str, ...], **kwargs: Any) -> None:
    profiles_forget(user_pseudo_ids=user_pseudo_ids)
