"""Reactions to other apps' signals: thin, they hand over to a service."""

from typing import Any

from .services import resegment_request


def on_events_stored(sender: Any, *, user_pseudo_ids: tuple[str, ...], **kwargs: Any) -> None:
    resegment_request(user_pseudo_ids=user_pseudo_ids)
