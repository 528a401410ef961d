"""The reads of one delivery are made once, whatever the threads asking; an error reaches all."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from contextvars import copy_context

import pytest

from receiver.act.shared_reads import delivery_scope, shared_read


def test_threads_asking_for_one_key_at_once_wait_for_a_single_read() -> None:
    started, release = threading.Event(), threading.Event()

    def slow_read() -> str:
        started.set()
        assert release.wait(10)
        return "head"

    with delivery_scope() as reads, ThreadPoolExecutor(4) as pool:  # as gather_all hands off
        first = pool.submit(copy_context().run, shared_read, "fetch", slow_read)
        assert started.wait(10)
        others = [
            pool.submit(copy_context().run, shared_read, "fetch", slow_read) for _ in range(3)
        ]
        release.set()
        answers = [first.result(10), *(other.result(10) for other in others)]
    assert answers == ["head"] * 4
    assert reads.reads == 1


def test_a_read_that_failed_fails_every_caller_of_the_delivery_without_a_second_try() -> None:
    calls = []

    def failing_read() -> str:
        calls.append(1)
        raise OSError("git fetch failed")

    with delivery_scope():
        for _ in range(2):
            with pytest.raises(OSError, match="git fetch failed"):
                shared_read("fetch", failing_read)
    assert calls == [1]


def test_outside_a_delivery_every_call_reads() -> None:
    calls = []
    for _ in range(2):
        shared_read("fetch", lambda: calls.append(1))
    assert calls == [1, 1]
