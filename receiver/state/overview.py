"""The status page's reads: every service's windows, lock and newest records in one round trip.

One script call per service, all of them in one pipeline (plus the SCRIPT EXISTS redis-py
sends before a pipeline that runs scripts), so `GET /api/v1/status` costs the same few round
trips for 5 services or 500.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from receiver.state.history import RollbackRecord, State
from receiver.state.reservation import decode
from receiver.state.store import Store

STATUS_SCAN = 100  # newest records read for `last_rollback` and `last_skip`
RAN_STATES = frozenset({State.RUNNING, State.COMPLETED, State.FAILED, State.INTERRUPTED})


@dataclass(frozen=True)
class ServiceReads:
    """What Redis holds about one service's safety state, read in one step by Redis's clock."""

    now: float  # Redis's clock, seconds
    last_hour: int
    last_day: int
    last_start: float | None  # the newest rollback start, seconds
    locked_by: str | None
    last_ran: RollbackRecord | None  # the newest of the STATUS_SCAN newest records that ran
    last_skip: RollbackRecord | None  # the newest skip among them


def read_services(store: Store, services: Sequence[str]) -> list[ServiceReads]:
    """Each service's windows, lock owner, newest rollback that ran and newest skip, in order."""
    ran = ",".join(sorted(RAN_STATES))
    with store.guarded():
        pipe = store.client.pipeline(transaction=False)
        for service in services:
            keys = [store.key("starts", service), store.key("lock", service)]
            keys.append(store.key("history", service))
            args: list[str | int] = [store.prefix, STATUS_SCAN, ran, State.SKIPPED.value]
            store.scripts.service_status(keys=keys, args=args, client=pipe)
        answers = pipe.execute() if services else []
    return [_service_reads(answer) for answer in answers]


def _service_reads(answer: list[object]) -> ServiceReads:
    now_ms, hour, day, last, owner, ran, ran_state, skip, skip_state = map(decode, answer)
    return ServiceReads(
        now=int(now_ms) / 1000,
        last_hour=int(hour),
        last_day=int(day),
        last_start=float(last) / 1000 if last else None,
        locked_by=owner or None,
        last_ran=Store.record_from(ran, ran_state) if ran else None,
        last_skip=Store.record_from(skip, skip_state) if skip else None,
    )
