"""Bounded retries for one notification: tenacity around the remote call, honouring Retry-After."""

from __future__ import annotations

import time
from collections.abc import Callable
from email.utils import parsedate_to_datetime
from typing import TypeVar

from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt

from receiver.tell.base import NotificationError

T = TypeVar("T")


class RetryableError(NotificationError):
    """A failure worth another try (429, 5xx, network); `retry_after` is the server's wish."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def retry_after_seconds(header: str | None) -> float | None:
    """Retry-After as seconds: delta-seconds or an HTTP date; None when absent or unreadable."""
    if not header:
        return None
    text = header.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def deliver(
    attempt: Callable[[], T],
    *,
    retries: int,
    sleep: Callable[[float], None] = time.sleep,
    base_delay: float = 1.0,
    max_wait: float = 30.0,
) -> T:
    """Run `attempt`, retrying RetryableError at most `retries` times; every wait is capped."""

    def wait(state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        asked = error.retry_after if isinstance(error, RetryableError) else None
        backoff = base_delay * 2 ** (state.attempt_number - 1)
        return min(max_wait, asked if asked is not None else backoff)

    retrying = Retrying(
        stop=stop_after_attempt(max(0, retries) + 1),
        wait=wait,
        retry=retry_if_exception_type(RetryableError),
        sleep=sleep,
        reraise=True,
    )
    return retrying(attempt)
