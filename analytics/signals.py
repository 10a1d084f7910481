"""Signals other apps listen to, so that analytics never imports them."""

from django.dispatch import Signal

# Sent after the transaction that stored the events commits.
# kwargs: user_pseudo_ids (tuple[str, ...]), source (str)
events_stored = Signal()

# Sent inside the transaction that erases a visitor (analytics.services.visitor_erase), after
# their events, visitor row and dead letters are deleted: a receiver deletes what its app
# holds about the visitor in the same transaction (work outside the database goes in
# transaction.on_commit) and returns {what: how many} for the erasure's counts.
# kwargs: user_pseudo_id (str)
visitor_erased = Signal()

# Visitors deleted with all their data (retention left them no events). Sent INSIDE the
# transaction that deletes them: what a receiver deletes in the database commits or rolls back
# with them; work outside the database (cache) belongs in transaction.on_commit.
# kwargs: user_pseudo_ids (tuple[str, ...]), reason (str)
visitors_deleted = Signal()
