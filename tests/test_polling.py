"""The pollers' shared pacing: a deadline on an injectable clock, waits that never overshoot."""

from __future__ import annotations

from receiver.act.polling import Pacing


class Clock:
    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_a_deadline_passes_after_its_seconds_on_the_pacings_clock() -> None:
    clock = Clock()
    deadline = Pacing(5.0, clock, clock.sleep).deadline(12.0)
    waits = 0
    while not deadline.passed() and waits < 10:
        deadline.wait()
        waits += 1
    assert clock.sleeps == [5.0, 5.0, 2.0]  # the last wait stops at the deadline
    assert clock.now == 112.0


def test_a_wait_can_ask_for_less_than_the_poll_interval() -> None:
    clock = Clock()
    deadline = Pacing(5.0, clock, clock.sleep).deadline(60.0)
    deadline.wait(1.0)
    assert clock.sleeps == [1.0] and not deadline.passed()
