"""Signals other apps listen to. Sent after the transaction that stored the events commits."""

from django.dispatch import Signal

# kwargs: user_pseudo_ids (tuple[str, ...]), source (str)
events_stored = Signal()

# Sent inside the transaction that erases a visitor (analytics.services.visitor_erase), after
# their events, visitor row and dead letters are deleted: a receiver deletes what its app
# holds about the visitor in the same transaction (work outside the database goes in
# transaction.on_commit) and returns {what: how many} for the erasure's counts.
# kwargs: user_pseudo_id (str)
visitor_erased = Signal()
