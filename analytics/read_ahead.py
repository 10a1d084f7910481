"""Read ahead: produce items (parsed batches of a file) while the consumer stores the previous
ones, in a child process when the platform allows one, else in a thread.

A process parses on a core of its own, free of the consumer's GIL: on a 2-core machine the
file import parses on one core while PostgreSQL stores on the other, and the importing
process only moves bytes. Where a child process cannot start (no fork on this platform, or a
daemonic process such as a Celery prefork child, which may not have children), a thread does
the same work under the GIL.

The child is forked, so `produce` may be a closure and needs no pickling; the items it yields
are pickled through a pipe and must not hold database connections or other handles. Sending
blocks until the consumer takes the previous item, so at most three items exist at a time:
the one being consumed, the one being sent, the one being made.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import pickle
import threading
import traceback
from collections.abc import Callable, Generator, Iterator
from multiprocessing.connection import Connection
from queue import Full, Queue
from typing import Any, Generic, TypeVar

T = TypeVar("T")

_DONE = "done"
_ITEM = "item"
_ERROR = "error"
_STARTED: Any = object()


class ReadAheadError(RuntimeError):
    """An exception in the child that could not be sent as it was."""


class ReadAhead(Generic[T]):
    """The items of `produce()`, made ahead of the consumer: in a forked child process when
    `process` is true and one can start, else in a thread (`in_process` tells which). The
    producer starts at once. Exceptions of `produce` are raised by the iteration. Use it as a
    context manager: leaving it stops the producer."""

    def __init__(self, produce: Callable[[], Iterator[T]], *, process: bool = True) -> None:
        child = _start_child(produce) if process else None
        self.in_process = child is not None
        self._items: Generator[T, None, None] = (
            _in_thread(produce) if child is None else _from_child(*child)
        )
        next(self._items)  # run up to the first yield: the producer is started

    def __iter__(self) -> Iterator[T]:
        return self._items

    def close(self) -> None:
        self._items.close()

    def __enter__(self) -> ReadAhead[T]:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def process_available() -> bool:
    """Whether read_ahead(process=True) would run in a child process here."""
    return _fork_context() is not None and not _is_daemonic()


def _fork_context() -> Any:
    try:
        return multiprocessing.get_context("fork")
    except ValueError:  # no fork on this platform
        return None


def _is_daemonic() -> bool:
    return bool(multiprocessing.current_process().daemon)


def _start_child(produce: Callable[[], Iterator[Any]]) -> tuple[Any, Connection] | None:
    context = _fork_context()
    if context is None or _is_daemonic():
        return None
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(
        target=_child_main, args=(produce, sender), name="read-ahead", daemon=True
    )
    try:
        child.start()
    except (AssertionError, OSError, ValueError):
        # AssertionError: "daemonic processes are not allowed to have children", raised
        # when the current process is daemonic in a way current_process() did not tell.
        receiver.close()
        sender.close()
        return None
    sender.close()  # the child's end; closed here, the pipe breaks when the child ends
    return child, receiver


def _child_main(produce: Callable[[], Iterator[Any]], sender: Connection) -> None:
    """The child: send every item, then _DONE, or the exception that stopped it."""
    try:
        try:
            for item in produce():
                sender.send((_ITEM, item))
            sender.send((_DONE, None))
        except (BrokenPipeError, KeyboardInterrupt):
            return  # the consumer is gone or interrupted: it knows why
        except BaseException as exc:
            sender.send((_ERROR, _picklable(exc)))
    except (BrokenPipeError, OSError):
        pass
    finally:
        with contextlib.suppress(OSError):
            sender.close()
        # The parent's handles (database connections, sockets) are shared with this copy of
        # the process: leave without running any of their finalizers.
        os._exit(0)


def _picklable(exc: BaseException) -> BaseException:
    try:
        pickle.loads(pickle.dumps(exc))  # noqa: S301  # nosec B301: bytes we just made
    except Exception:
        detail = "".join(traceback.format_exception(exc))
        return ReadAheadError(f"{type(exc).__name__}: {exc}\n{detail}")
    return exc


def _from_child(child: Any, receiver: Connection) -> Generator[Any, None, None]:
    def receive() -> tuple[str, Any]:
        try:
            return receiver.recv()  # type: ignore[no-any-return]
        except EOFError:
            child.join(5)
            raise ReadAheadError(
                f"the reading process ended without a word (exit code {child.exitcode})"
            ) from None

    try:
        yield _STARTED
        yield from _unpacked(receive)
    finally:
        receiver.close()
        child.join(1)
        if child.is_alive():
            child.terminate()
            child.join(5)
            if child.is_alive():
                child.kill()
                child.join()
        child.close()


def _in_thread(produce: Callable[[], Iterator[Any]]) -> Generator[Any, None, None]:
    """The items, made by a thread one ahead of the consumer; its exceptions raised here."""
    queue: Queue[Any] = Queue(maxsize=1)
    stop = threading.Event()

    def put(entry: tuple[str, Any]) -> bool:
        while not stop.is_set():
            try:
                queue.put(entry, timeout=0.1)
                return True
            except Full:
                continue
        return False

    def run() -> None:
        try:
            for item in produce():
                if not put((_ITEM, item)):
                    return
            put((_DONE, None))
        except BaseException as exc:
            put((_ERROR, exc))

    thread = threading.Thread(target=run, name="read-ahead", daemon=True)
    thread.start()
    try:
        yield _STARTED
        yield from _unpacked(queue.get)
    finally:
        stop.set()
        thread.join()


def _unpacked(receive: Callable[[], tuple[str, Any]]) -> Iterator[Any]:
    """The items of a (kind, value) stream, until _DONE; an _ERROR's exception raised here."""
    while True:
        kind, value = receive()
        if kind == _ITEM:
            yield value
        elif kind == _DONE:
            return
        else:
            raise value
