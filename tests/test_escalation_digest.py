"""A burst of global_limit skips in one delivery is one Slack message, one PagerDuty event."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from receiver.intake.payload import parse_message
from receiver.tell import base
from receiver.tell.pagerduty import PagerDutyNotifier
from receiver.tell.slack import SlackNotifier
from receiver.tell.wording import summary
from tests.support import Backend, Collector, alert, payload


def services_file(tmp_path: Path, count: int) -> str:
    lines = ["services:"] + [
        f"  svc{n:02d}:\n    gitops: {{repo: acme/gitops, path: k8s/svc{n:02d}}}"
        for n in range(count)
    ]
    (tmp_path / "services.yml").write_text("\n".join(lines) + "\n")
    return str(tmp_path / "services.yml")


def test_the_global_limit_skips_of_one_delivery_are_one_escalation_naming_every_service(
    make_engine: Any, backend: Backend, collector: Collector, tmp_path: Path
) -> None:
    backend.release = threading.Event()
    engine = make_engine(ROLLBACK_CONFIG=services_file(tmp_path, 12), MAX_CONCURRENT_ROLLBACKS="2")
    message = parse_message(payload(*[alert(f"svc{n:02d}") for n in range(12)]))
    try:
        outcomes = engine.handle_delivery(message.alerts)
        repeat = engine.handle_delivery(message.alerts)  # Alertmanager re-sends the delivery
    finally:
        backend.release.set()
    assert engine.wait_idle(10)  # its rollbacks end (and log) inside the test
    assert [o.reason for o in outcomes].count("global_limit") == 10
    assert [o.reason for o in repeat].count("duplicate") == 2
    escalations = [e for e in collector.events if e.kind == base.ESCALATION]
    assert len(escalations) == 1  # the repeat's skips were told already
    (digest,) = escalations
    assert digest.details["services"] == [f"svc{n:02d}" for n in range(2, 12)]
    assert "10 services" in summary(digest) and "svc11" in summary(digest)


def test_the_digest_renders_every_service_in_slack_and_pagerduty() -> None:
    services = [f"svc{n:03d}" for n in range(197)]
    digest = base.Event(
        kind=base.ESCALATION,
        service="197 services",
        namespace="production",
        tier="emergency",
        reason="global_limit",
        episode="burst:rb-1",
        details={"services": services, "burst_id": "rb-1"},
    )
    slack = SlackNotifier.__new__(SlackNotifier)
    text = str(slack.message(digest))
    assert all(s in text for s in services[:150]) and "Services (197)" in text
    pagerduty = PagerDutyNotifier.__new__(PagerDutyNotifier)
    assert pagerduty.dedup_key_of(digest).startswith("197 services:burst:rb-1")


def test_a_digest_carries_no_one_service_s_revision_budget_or_error() -> None:
    """Shaped after the first escalation, a digest must not show that service's facts as all's."""
    from receiver.tell.digest import digest_of

    def one(service: str, revision: str, consumed: float) -> base.Event:
        return base.Event(
            base.ESCALATION,
            service,
            "production",
            "emergency",
            "global_limit",
            rollback_id=f"r-{service}",
            episode=f"fp-{service}",
            consumed=consumed,
            from_revision=revision,
            to_revision="good123",
            error="held back",
            stage="gitops",
        )

    digest = digest_of([one("svc01", "bad1111", 0.97), one("svc02", "bad2222", 0.85)])
    assert digest.details["services"] == ["svc01", "svc02"]
    assert (digest.from_revision, digest.to_revision, digest.consumed) == (None, None, None)
    assert (digest.error, digest.stage) == (None, None)
