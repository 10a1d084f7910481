"""Signals other apps listen to, so that analytics never imports them."""

from django.dispatch import Signal

# Sent after the transaction that stored the events commits.
# kwargs: user_pseudo_ids (tuple[str, ...]), source (str)
events_stored = Signal()

# Visitors deleted with all their data (retention left them no events). Sent INSIDE the
# transaction that deletes them: what a receiver deletes in the database commits or rolls back
# with them; work outside the database (cache) belongs in transaction.on_commit.
# kwargs: user_pseudo_ids (tuple[str, ...]), reason (str)
visitors_deleted = Signal()
