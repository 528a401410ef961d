"""The pollers' shared pacing: a deadline on an injectable clock, waits that never overshoot."""

from __future__ import annotations

from receiver.act.polling import Pacing
from tests.fake_time import FakeClock


def test_a_deadline_passes_after_its_seconds_on_the_pacings_clock() -> None:
    clock = FakeClock(100.0)
    deadline = Pacing(5.0, clock, clock.sleep).deadline(12.0)
    waits = 0
    while not deadline.passed() and waits < 10:
        deadline.wait()
        waits += 1
    assert clock.sleeps == [5.0, 5.0, 2.0]  # the last wait stops at the deadline
    assert clock.now == 112.0


def test_a_wait_can_ask_for_less_than_the_poll_interval() -> None:
    clock = FakeClock(100.0)
    deadline = Pacing(5.0, clock, clock.sleep).deadline(60.0)
    deadline.wait(1.0)
    assert clock.sleeps == [1.0] and not deadline.passed()
