"""deploy/alertmanager: amtool 0.25 accepts it and every alert lands on the intended receiver."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.tools import run, tool

ROOT = Path(__file__).resolve().parent.parent
AM = ROOT / "deploy" / "alertmanager"
CONFIG = AM / "alertmanager.yml"
SNIPPET = AM / "snippet.yml"
TIME_INTERVALS = AM / "time-intervals.yml"


def check_config(path: Path) -> None:
    result = run(tool("amtool"), "check-config", str(path))
    assert result.returncode == 0, result.stdout + result.stderr


def routes_to(config: Path, labels: dict[str, str], receiver: str) -> None:
    """Assert with `amtool config routes test` that the labels reach exactly that receiver."""
    args = [f"{key}={value}" for key, value in labels.items()]
    result = run(
        tool("amtool"),
        "config",
        "routes",
        "test",
        f"--config.file={config}",
        f"--verify.receivers={receiver}",
        *args,
    )
    assert result.returncode == 0, f"{labels} -> {result.stdout.strip()}, want {receiver}"


def shipped_alerts() -> list[dict[str, str]]:
    """Label sets of every alert in alerts/, as they reach Alertmanager."""
    label_sets = []
    for path in sorted((ROOT / "alerts").glob("*.yml")):
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                if "alert" in rule:
                    labels = {
                        "alertname": rule["alert"],
                        "service": "api",
                        "namespace": "production",
                        **rule.get("labels", {}),
                    }
                    label_sets.append(labels)
    return label_sets


def intended_receiver(labels: dict[str, str]) -> str:
    return "rollback-receiver" if labels.get("rollback_tier") else "slo-notify"


def commented_time_intervals() -> Any:
    """The commented-out time_intervals block of alertmanager.yml, parsed."""
    text = CONFIG.read_text()
    block = text[text.index("# time_intervals:") :]
    lines = [re.sub(r"^# ?", "", line) for line in block.splitlines() if line.startswith("#")]
    return yaml.safe_load("\n".join(lines))


def test_alertmanager_yml_passes_amtool_check_config() -> None:
    """The complete example passes amtool 0.25."""
    check_config(CONFIG)


def test_amtool_rejects_a_broken_config(tmp_path: Path) -> None:
    """The check is not vacuous: amtool fails on a route to an undefined receiver."""
    broken = tmp_path / "am.yml"
    broken.write_text("route:\n  receiver: nobody\nreceivers:\n  - name: somebody\n")
    assert run(tool("amtool"), "check-config", str(broken)).returncode != 0


@pytest.mark.parametrize("labels", shipped_alerts(), ids=lambda labels: labels["alertname"])
def test_every_shipped_alert_reaches_its_receiver(labels: dict[str, str]) -> None:
    """Triggers go to rollback-receiver; warnings and the receiver's own alerts to slo-notify."""
    routes_to(CONFIG, labels, intended_receiver(labels))


@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        (
            {"alertname": "CustomTrigger", "rollback_tier": "emergency", "service": "api"},
            "rollback-receiver",
        ),
        (
            {"alertname": "CustomTrigger", "rollback_tier": "critical", "service": "api"},
            "rollback-receiver",
        ),
        ({"alertname": "NodeDown", "severity": "critical"}, "slo-notify"),
    ],
)
def test_routing_follows_the_rollback_tier_label(labels: dict[str, str], receiver: str) -> None:
    """Any alert with a rollback_tier reaches the receiver, as the contract says it acts on them."""
    routes_to(CONFIG, labels, receiver)


def test_the_receiver_webhook_is_set_up_for_alertmanager_0_25() -> None:
    """Bearer credentials from a file, resolved alerts sent, max_alerts, no 0.26+ options."""
    config = yaml.safe_load(CONFIG.read_text())
    receiver = next(r for r in config["receivers"] if r["name"] == "rollback-receiver")
    (webhook,) = receiver["webhook_configs"]
    assert webhook["send_resolved"] is True
    assert webhook["max_alerts"] > 0
    assert webhook["http_config"]["authorization"]["credentials_file"].startswith("/")
    assert "timeout" not in webhook and "url_file" not in webhook
    assert webhook["url"].endswith("/webhook")


def test_emergency_triggers_are_sent_without_group_wait() -> None:
    """The emergency route has group_wait 0s and groups per alertname, service and namespace."""
    config = yaml.safe_load(CONFIG.read_text())
    route = config["route"]
    assert set(route["group_by"]) == {"alertname", "service", "namespace"}
    emergency = next(r for r in route["routes"] if 'rollback_tier="emergency"' in r["matchers"])
    assert emergency["receiver"] == "rollback-receiver"
    assert emergency["group_wait"] == "0s"
    assert "mute_time_intervals" not in emergency


def test_the_blackout_interval_is_shipped_commented_out_and_matches_its_file() -> None:
    """alertmanager.yml's commented block equals time-intervals.yml: weekends 00:00-06:00 UTC."""
    shipped = yaml.safe_load(TIME_INTERVALS.read_text())
    assert commented_time_intervals() == shipped
    assert "time_intervals" not in yaml.safe_load(CONFIG.read_text())
    (interval,) = shipped["time_intervals"]
    assert interval["name"] == "rollback-blackout"
    assert interval["time_intervals"] == [
        {
            "weekdays": ["saturday", "sunday"],
            "times": [{"start_time": "00:00", "end_time": "06:00"}],
            "location": "UTC",
        }
    ]


def test_the_blackout_alternative_passes_amtool_when_enabled(tmp_path: Path) -> None:
    """Uncommenting the blackout block and the mute lines gives a config amtool accepts."""
    text = CONFIG.read_text().replace("# mute_time_intervals:", "mute_time_intervals:")
    enabled = yaml.safe_load(text)
    enabled.update(yaml.safe_load(TIME_INTERVALS.read_text()))
    trigger_routes = [r for r in enabled["route"]["routes"] if r["receiver"] == "rollback-receiver"]
    assert all(r["mute_time_intervals"] == ["rollback-blackout"] for r in trigger_routes)
    path = tmp_path / "alertmanager.yml"
    path.write_text(yaml.safe_dump(enabled))
    check_config(path)


def test_the_snippet_merges_into_an_existing_config(tmp_path: Path) -> None:
    """snippet.yml merged into another configuration passes amtool and routes the same way."""
    snippet = yaml.safe_load(SNIPPET.read_text())
    existing = {
        "route": {
            "receiver": "team-default",
            "group_by": ["alertname"],
            "routes": [{"receiver": "team-default", "matchers": ['team="db"']}],
        },
        "receivers": [{"name": "team-default"}],
    }
    existing["route"]["routes"] = snippet["routes"] + existing["route"]["routes"]
    existing["receivers"] += snippet["receivers"]
    existing["inhibit_rules"] = snippet["inhibit_rules"]
    path = tmp_path / "alertmanager.yml"
    path.write_text(yaml.safe_dump(existing))
    check_config(path)
    for labels in shipped_alerts():
        routes_to(path, labels, intended_receiver(labels))
    routes_to(path, {"alertname": "Other", "team": "db"}, "team-default")
