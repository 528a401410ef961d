"""parse_message: Alertmanager's webhook payload into typed alerts, with no app around it."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from receiver.errors import BadRequest
from receiver.intake.payload import ZERO_TIME, parse_message
from tests.conftest import shared_fixture


def delivery() -> dict[str, Any]:
    return copy.deepcopy(shared_fixture("trigger-emergency-firing.json"))


def test_a_captured_alertmanager_delivery_parses_into_frozen_alerts() -> None:
    raw = delivery()
    message = parse_message(raw)
    (alert,) = message.alerts
    assert message.version == "4"
    assert message.status == "firing"
    assert message.group_key == raw["groupKey"]
    assert alert.firing
    assert alert.alertname == "TriggerEmergencyRollback"
    assert alert.fingerprint == raw["alerts"][0]["fingerprint"]
    assert alert.labels["service"] == raw["alerts"][0]["labels"]["service"]
    with pytest.raises(AttributeError):
        alert.status = "resolved"  # type: ignore[misc]


def test_a_resolved_delivery_keeps_its_end_time() -> None:
    message = parse_message(shared_fixture("trigger-emergency-resolved.json"))
    (alert,) = message.alerts
    assert not alert.firing
    assert alert.ends_at != ZERO_TIME


def test_newer_optional_fields_are_read_and_their_absence_is_fine() -> None:
    raw = delivery()
    raw["notification_reason"] = "alert_group_changed"
    raw["routeLabels"] = {"team": "payments"}
    message = parse_message(raw)
    assert message.notification_reason == "alert_group_changed"
    assert message.route_labels == {"team": "payments"}
    del raw["notification_reason"], raw["routeLabels"]
    assert parse_message(raw).route_labels == {}


def test_unknown_fields_are_ignored() -> None:
    raw = delivery()
    raw["somethingNew"] = {"nested": [1, 2]}
    raw["alerts"][0]["alsoNew"] = True
    assert len(parse_message(raw).alerts) == 1


def test_an_empty_alert_list_is_a_message_with_no_alerts() -> None:
    raw = delivery()
    raw["alerts"] = []
    assert parse_message(raw).alerts == ()


@pytest.mark.parametrize(
    ("mutate", "named"),
    [
        (lambda r: r.pop("alerts"), "alerts must be a list"),
        (lambda r: r.update(alerts={"a": 1}), "alerts must be a list"),
        (lambda r: r["alerts"][0].pop("status"), "alerts[0].status"),
        (lambda r: r["alerts"][0].update(status="pending"), "alerts[0].status"),
        (lambda r: r["alerts"][0].pop("labels"), "alerts[0].labels is missing"),
        (lambda r: r["alerts"][0].update(labels=["x"]), "alerts[0].labels"),
        (lambda r: r["alerts"][0]["labels"].update(service=3), "alerts[0].labels.service"),
        (lambda r: r["alerts"][0].pop("fingerprint"), "alerts[0].fingerprint"),
        (lambda r: r["alerts"][0].update(startsAt="yesterday"), "alerts[0].startsAt"),
        (lambda r: r.update(truncatedAlerts=-1), "truncatedAlerts"),
        (lambda r: r.update(truncatedAlerts=True), "truncatedAlerts"),
        (lambda r: r.update(version=4), "version"),
        (lambda r: r.update(commonLabels="x"), "commonLabels"),
    ],
)
def test_a_broken_field_is_a_bad_request_naming_it(mutate: Any, named: str) -> None:
    raw = delivery()
    mutate(raw)
    with pytest.raises(BadRequest) as caught:
        parse_message(raw)
    assert named in caught.value.message
    assert caught.value.status_code == 400


@pytest.mark.parametrize("raw", [[], "text", 3, None])
def test_a_payload_that_is_not_an_object_is_a_bad_request(raw: Any) -> None:
    with pytest.raises(BadRequest, match="payload must be a JSON object"):
        parse_message(raw)
