"""Reads shared by the alerts of one delivery: each key is read once, whatever the threads."""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar

T = TypeVar("T")


class _Answer:
    """One shared read: its lock is held by the first reader until the answer is in."""

    __slots__ = ("error", "lock", "value")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.value: Any = None
        self.error: BaseException | None = None


class DeliveryReads:
    """Answers (or errors) of the shared reads of one delivery, each made at most once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._answers: dict[Hashable, _Answer] = {}
        self.reads = 0  # how many reads were really made (tests, the benchmark)

    def once(self, key: Hashable, read: Callable[[], T]) -> T:
        """The answer of `read` for `key`, read by the first caller; the others wait for it."""
        with self._lock:
            answer = self._answers.get(key)
            mine = answer is None
            if answer is None:
                answer = self._answers[key] = _Answer()
                answer.lock.acquire()  # a plain lock, not a Future: a read costs one lock
        if mine:
            self.reads += 1
            try:
                answer.value = read()
            except BaseException as exc:
                answer.error = exc
            finally:
                answer.lock.release()
        else:
            with answer.lock:  # the first reader holds it until the answer is in
                pass
        if answer.error is not None:
            raise answer.error
        return answer.value  # type: ignore[no-any-return]


_CURRENT: ContextVar[DeliveryReads | None] = ContextVar("delivery_reads", default=None)


def shared_read(key: Hashable, read: Callable[[], T]) -> T:
    """Read once per delivery when inside one (`delivery_scope`), else read every time."""
    reads = _CURRENT.get()
    return read() if reads is None else reads.once(key, read)


@contextmanager
def delivery_scope() -> Iterator[DeliveryReads]:
    """Share reads between the alerts of one delivery (copy the context into worker threads)."""
    reads = DeliveryReads()
    token = _CURRENT.set(reads)
    try:
        yield reads
    finally:
        _CURRENT.reset(token)
