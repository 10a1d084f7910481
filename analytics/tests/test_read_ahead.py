"""read_ahead: items made in a child process (or a thread where none can start), in order,
with the producer's exceptions raised to the consumer. No database: these run anywhere."""

import multiprocessing
import os
import time

import pytest

from analytics.read_ahead import ReadAhead, ReadAheadError, process_available


def _numbers(count):
    def produce():
        yield from range(count)

    return produce


class _Unpicklable(Exception):
    def __init__(self, handle):
        super().__init__("has a handle")
        self.handle = handle

    def __reduce__(self):
        raise TypeError("cannot pickle")


@pytest.mark.parametrize("process", [True, False])
def test_read_ahead__items__in_order_and_all(process):
    with ReadAhead(_numbers(1000), process=process) as ready:
        assert ready.in_process is (process and process_available())
        assert list(ready) == list(range(1000))


def test_read_ahead__process__items_made_in_another_process():
    if not process_available():
        pytest.skip("no child process here")

    def produce():
        yield os.getpid()

    with ReadAhead(produce) as ready:
        assert ready.in_process
        assert list(ready) != [os.getpid()]


@pytest.mark.parametrize("process", [True, False])
def test_read_ahead__producer_raises__same_exception_after_items_before_it(process):
    def produce():
        yield 1
        raise FileNotFoundError(2, "No such file or directory", "gone.json")

    with ReadAhead(produce, process=process) as ready:
        items = iter(ready)
        assert next(items) == 1
        with pytest.raises(FileNotFoundError) as info:
            next(items)
    assert info.value.filename == "gone.json"


def test_read_ahead__process_exception_not_picklable__told_with_its_traceback():
    if not process_available():
        pytest.skip("no child process here")

    def produce():
        raise _Unpicklable(object())
        yield

    with ReadAhead(produce) as ready, pytest.raises(ReadAheadError, match="_Unpicklable"):
        list(ready)


@pytest.mark.parametrize("process", [True, False])
def test_read_ahead__consumer_stops_early__producer_stopped(process):
    def produce():
        yield from range(10**9)

    started = time.monotonic()
    with ReadAhead(produce, process=process) as ready:
        for item in ready:
            if item == 3:
                break
    assert time.monotonic() - started < 10
    if process and process_available():
        assert multiprocessing.active_children() == []


def _in_daemonic_child(queue):
    with ReadAhead(_numbers(5)) as ready:
        queue.put((multiprocessing.current_process().daemon, ready.in_process, list(ready)))


def test_read_ahead__in_daemonic_process__falls_back_to_a_thread():
    # A daemonic process (a Celery prefork child) may not start children of its own.
    if "fork" not in multiprocessing.get_all_start_methods():
        pytest.skip("no fork on this platform")
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_in_daemonic_child, args=(queue,), daemon=True)
    child.start()
    try:
        assert queue.get(timeout=30) == (True, False, [0, 1, 2, 3, 4])
    finally:
        child.join(10)
    assert child.exitcode == 0
