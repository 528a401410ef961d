"""The audit trail: who approved, rejected, rolled back by hand, or changed a blackout."""

from __future__ import annotations

from typing import Any

from receiver.app import create_app
from tests.support import alert, live_server, payload


def test_operator_actions_land_in_the_audit_trail_newest_first(
    make_engine: Any, admin: dict[str, str]
) -> None:
    engine = make_engine(REQUIRE_APPROVAL="true")
    client = create_app(engine.settings, engine=engine, start_sweeper=False).test_client()
    first = client.post("/webhook", json=payload(alert("api"))).get_json()["alerts"][0]
    second = client.post("/webhook", json=payload(alert("api", tier="critical"))).get_json()
    as_gina = {**admin, "X-Rollback-Actor": "gina"}
    assert (
        client.post(
            f"/api/v1/rollbacks/{first['rollback_id']}/approve", headers=as_gina
        ).status_code
        == 200
    )
    rejected = second["alerts"][0]["rollback_id"]
    assert client.post(f"/api/v1/rollbacks/{rejected}/reject", headers=admin).status_code == 200
    assert engine.wait_idle(10)
    refused = client.post("/api/v1/rollbacks", headers=as_gina, json={"service": "api"})
    assert refused.status_code == 409  # locked out by the cooldown: still an action taken
    trail = client.get("/api/v1/audit", headers=admin).get_json()["audit"]
    assert [(e["action"], e["actor"]) for e in trail] == [
        ("manual_rollback", "gina (token admin)"),
        ("reject", "admin"),
        ("approve", "gina (token admin)"),
    ]
    assert trail[0]["reason"] == "cooldown" and trail[2]["rollback_id"] == first["rollback_id"]
    assert all(e["at"].endswith("Z") for e in trail)


def test_the_cli_can_record_a_blackout_and_bad_entries_are_refused(
    client: Any, admin: dict[str, str]
) -> None:
    headers = {**admin, "X-Rollback-Actor": "hank"}
    ok = client.post(
        "/api/v1/audit",
        headers=headers,
        json={
            "action": "blackout_created",
            "silence_id": "5f1c",
            "service": "api",
            "comment": "release freeze",
            "until": "2026-11-26 18:00 UTC",
        },
    )
    assert ok.status_code == 201
    (entry,) = client.get("/api/v1/audit", headers=admin).get_json()["audit"]
    assert (entry["action"], entry["actor"], entry["silence_id"], entry["comment"]) == (
        "blackout_created",
        "hank (token admin)",
        "5f1c",
        "release freeze",
    )
    bad_action = client.post(
        "/api/v1/audit", headers=admin, json={"action": "approve", "silence_id": "x"}
    )
    assert (
        bad_action.status_code == 400 and "action must be one of" in bad_action.get_json()["error"]
    )
    no_id = client.post("/api/v1/audit", headers=admin, json={"action": "blackout_ended"})
    assert no_id.status_code == 400 and "silence_id" in no_id.get_json()["error"]
    assert client.post("/api/v1/audit", json={"action": "blackout_ended"}).status_code == 401


def test_blackout_commands_record_who_in_the_receivers_audit_trail(
    make_engine: Any, tmp_path: Any
) -> None:
    import re

    from click.testing import CliRunner

    from receiver.cli import main
    from tests.procs import Alertmanager

    engine = make_engine()
    app = create_app(engine.settings, engine=engine, start_sweeper=False)
    with live_server(app) as url, Alertmanager() as am:
        env = {
            "ALERTMANAGER_URL": am.url,
            "USER": "ivy",
            "ADMIN_TOKEN": "admin-secret-token",
            "RECEIVER_URL": url,
            "LOG_FILE": str(tmp_path / "cli.log"),
        }
        runner = CliRunner()
        made = runner.invoke(
            main,
            [
                "blackout",
                "create",
                "--duration",
                "1h",
                "--comment",
                "db migration",
                "--service",
                "api",
            ],
            env=env,
        )
        assert made.exit_code == 0, made.output
        silence_id = re.search(r"created blackout (\S+) ", made.output).group(1)
        ended = runner.invoke(main, ["blackout", "end", silence_id], env=env)
        assert ended.exit_code == 0, ended.output
        shown = runner.invoke(main, ["history", "--audit"], env=env)
        unreachable = runner.invoke(
            main,
            ["blackout", "create", "--duration", "1h", "--comment", "x"],
            env={**env, "RECEIVER_URL": "http://127.0.0.1:9"},
        )
    trail = engine.store.list_audit()
    assert [(e["action"], e["actor"], e["silence_id"]) for e in trail] == [
        ("blackout_ended", "ivy (token admin)", silence_id),
        ("blackout_created", "ivy (token admin)", silence_id),
    ]
    assert trail[1]["service"] == "api" and trail[1]["comment"] == "db migration"
    assert shown.exit_code == 0 and "blackout_created" in shown.output
    # Without the receiver's trigger kinds no blackout is made (tests/test_blackout_kinds.py).
    assert unreachable.exit_code == 4
    assert "cannot ask the receiver" in unreachable.output
