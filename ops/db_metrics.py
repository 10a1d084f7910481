"""db_queries_total and active_db_connections, for every process that uses the ORM.

Why not django-prometheus's database backends: they need ENGINE swapped for their wrappers in
every environment (and in DATABASE_URL parsing), for the same count. Instead each new
connection gets an execute wrapper: one call and one increment per statement, nothing per
request, so a cache hit on the hot path pays nothing for it. The gauge is recounted when a
connection opens and when a request or task ends (a few microseconds: a handful of
connections per process), which is when Django closes them.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from typing import Any

from django.core.signals import request_finished
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.signals import connection_created

from .metrics import ACTIVE_DB_CONNECTIONS, DB_QUERIES

_wrappers: weakref.WeakSet[BaseDatabaseWrapper] = weakref.WeakSet()
_lock = threading.Lock()


def count_query(
    execute: Callable[..., Any], sql: str, params: Any, many: bool, context: dict[str, Any]
) -> Any:
    DB_QUERIES.inc()
    return execute(sql, params, many, context)


def _connection_opened(sender: Any, connection: BaseDatabaseWrapper, **_: Any) -> None:
    # First in the list: connection.execute_wrapper() blocks pop the last entry on exit.
    if count_query not in connection.execute_wrappers:
        connection.execute_wrappers.insert(0, count_query)
    with _lock:
        _wrappers.add(connection)
    connections_recount()


def connections_recount(**_: Any) -> None:
    with _lock:
        open_connections = sum(1 for wrapper in _wrappers if wrapper.connection is not None)
    ACTIVE_DB_CONNECTIONS.set(open_connections)


def install() -> None:
    connection_created.connect(_connection_opened, dispatch_uid="ops.db_metrics.opened")
    # Connected after django.db's close_old_connections, so it counts what that left open.
    request_finished.connect(connections_recount, dispatch_uid="ops.db_metrics.recount")
