"""PostgreSQL advisory locks: one holder at a time across every process and replica.

The lock is taken on a dedicated database session, not on Django's shared connection, so
whatever the protected code does with its own connection (close it, reconnect, run DDL) the
lock holds until we release it; if the process dies, PostgreSQL drops the session and the lock
with it, so a crashed holder never blocks the next one.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from collections.abc import Callable, Iterator

from django.db import DEFAULT_DB_ALIAS, DatabaseError, OperationalError, connections

logger = logging.getLogger(__name__)


class LockNotAcquired(Exception):
    """Another session held the lock for longer than we agreed to wait."""


def lock_key(name: str) -> int:
    """A stable signed 64-bit key for `name` (pg_advisory_lock takes a bigint)."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


@contextlib.contextmanager
def advisory_lock(
    name: str,
    *,
    timeout: float,
    using: str = DEFAULT_DB_ALIAS,
    on_wait: Callable[[], None] | None = None,
) -> Iterator[None]:
    """Hold the session-level advisory lock `name` for the duration of the block.

    Waits at most `timeout` seconds (0: do not wait) and raises LockNotAcquired after that.
    `on_wait` is called once if the lock is busy, before waiting. PostgreSQL only.
    """
    key = lock_key(name)
    primary = connections[using]
    # A private session with the same settings (the test database's too, under pytest).
    session = type(primary)(dict(primary.settings_dict), alias=using)
    try:
        with session.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(%s)", [key])
            row = cursor.fetchone()
            if not (row and row[0]):
                if timeout <= 0:
                    raise LockNotAcquired(f"lock {name!r} is held by another session")
                if on_wait is not None:
                    on_wait()
                logger.info("ops.lock.waiting", extra={"lock": name, "timeout": timeout})
                # lock_timeout bounds pg_advisory_lock's wait; 0 would mean "forever".
                wait_ms = max(1, int(timeout * 1000))
                cursor.execute("SELECT set_config('lock_timeout', %s, false)", [f"{wait_ms}ms"])
                try:
                    cursor.execute("SELECT pg_advisory_lock(%s)", [key])
                except OperationalError as exc:
                    raise LockNotAcquired(
                        f"lock {name!r} still held by another session after {timeout:g} s"
                    ) from exc
        logger.info("ops.lock.acquired", extra={"lock": name})
        yield
    finally:
        with contextlib.suppress(DatabaseError), session.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [key])
        session.close()
