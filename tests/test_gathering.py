"""Gathering a delivery's facts: a lone alert in the request's thread, never more than the bound."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from receiver.config import Settings
from receiver.gathering import GATHER_THREADS, Gathered, gather_all
from receiver.intake.payload import parse_alert
from tests.support import alert


class Gatherer:
    """A stand-in for the engine's gather: notes its thread and how many run at once."""

    def __init__(self, seconds: float = 0.0) -> None:
        self.seconds = seconds
        self.threads: list[threading.Thread] = []
        self.running = self.most = 0
        self.lock = threading.Lock()

    def __call__(self, trigger: Any, origin: Any, rollback_id: str, request: Any) -> Gathered:
        with self.lock:
            self.threads.append(threading.current_thread())
            self.running += 1
            self.most = max(self.most, self.running)
        time.sleep(self.seconds)
        with self.lock:
            self.running -= 1
        return Gathered(trigger, rollback_id, origin)


def test_a_lone_alert_is_gathered_in_the_requests_own_thread(
    make_settings: Callable[..., Settings],
) -> None:
    gatherer = Gatherer()
    (gathered,) = gather_all([parse_alert(alert(), 0)], make_settings(), gatherer)
    assert gathered is not None and gathered.trigger.service == "api"
    assert gatherer.threads == [threading.current_thread()]


def test_lone_alerts_and_a_large_delivery_together_stay_within_the_gathering_bound(
    make_settings: Callable[..., Settings],
) -> None:
    settings, gatherer = make_settings(), Gatherer(seconds=0.05)
    many = [parse_alert(alert(f"svc{n}"), n) for n in range(12)]
    lone = [threading.Thread(target=gather_all, args=([a], settings, gatherer)) for a in many]
    for thread in lone:
        thread.start()
    answers = gather_all(many, settings, gatherer)
    for thread in lone:
        thread.join(10)
    assert [g.trigger.service for g in answers if g] == [f"svc{n}" for n in range(12)]
    assert len(gatherer.threads) == 24 and 1 < gatherer.most <= GATHER_THREADS
