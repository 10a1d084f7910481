"""Signals other apps listen to. Sent after the transaction that stored the events commits."""

from django.dispatch import Signal

# kwargs: user_pseudo_ids (tuple[str, ...]), source (str)
events_stored = Signal()
