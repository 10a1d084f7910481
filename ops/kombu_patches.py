"""A fix for kombu's Redis transport, applied where the Celery app is built.

When a worker loses Redis, its consumer collects the old connection: kombu sets the
transport's `client` (the connection info) to None and drops the channel's connection pools.
Restoring the channel's unacknowledged messages afterwards (the QoS finalizer, or a warm
shutdown) builds a new pool from `transport.client.hostname` and fails with
`AttributeError: 'NoneType' object has no attribute 'hostname'`: the prefetched messages are
lost and the worker process can exit. The same trace is in celery/kombu#582 and #970; kombu
5.7.0, the newest release, still has it.

The patch keeps the connection info each channel last built a pool from, and uses it while
the transport has none, so the restore reaches Redis (or fails with a connection error kombu
already handles) instead of raising AttributeError.
"""

from __future__ import annotations

from typing import Any

_PATCHED = "_portfolio_conninfo_patch"


def kombu_redis_restore_patch() -> None:
    from kombu.transport import redis as kombu_redis

    channel_class = kombu_redis.Channel
    if getattr(channel_class, _PATCHED, False):
        return
    original = channel_class._connparams

    def _connparams(self: Any, asynchronous: bool = False) -> Any:
        transport = self.connection
        if transport is None:
            return original(self, asynchronous)
        if transport.client is not None:
            self._portfolio_conninfo = transport.client
            return original(self, asynchronous)
        saved = getattr(self, "_portfolio_conninfo", None)
        if saved is None:
            return original(self, asynchronous)
        # A collected transport: lend it the info its channel was built with for this call
        # only. Safe: a worker's consumer touches its channels from one thread.
        transport.client = saved
        try:
            return original(self, asynchronous)
        finally:
            transport.client = None

    channel_class._connparams = _connparams  # type: ignore[method-assign]
    setattr(channel_class, _PATCHED, True)
