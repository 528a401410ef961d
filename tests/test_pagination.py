"""History and status page with ?limit=&cursor= -> next_cursor (API and CLI)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from receiver.app import create_app
from receiver.cli import main
from receiver.intake.payload import parse_message
from tests.support import alert, live_server, payload


def services_file(tmp_path: Path, count: int) -> str:
    lines = ["services:"] + [
        f"  svc{n:02d}:\n    gitops: {{repo: acme/gitops, path: k8s/svc{n:02d}}}"
        for n in range(count)
    ]
    (tmp_path / "services.yml").write_text("\n".join(lines) + "\n")
    return str(tmp_path / "services.yml")


@pytest.fixture
def served(make_engine: Any, tmp_path: Path) -> Iterator[tuple[str, Any]]:
    engine = make_engine(
        ROLLBACK_CONFIG=services_file(tmp_path, 7), DRY_RUN="true", MAX_CONCURRENT_ROLLBACKS="50"
    )
    with live_server(create_app(engine.settings, engine=engine, start_sweeper=False)) as url:
        yield url, engine


def records_of(engine: Any, count: int) -> list[str]:
    """`count` dry-run records, one per service; their ids newest first."""
    message = parse_message(payload(*[alert(f"svc{n:02d}") for n in range(count)]))
    outcomes = [engine.handle_alert(a) for a in message.alerts]
    return [o.rollback_id for o in reversed(outcomes)]


def test_history_pages_follow_next_cursor_to_the_end(served: tuple[str, Any]) -> None:
    _url, engine = served
    newest_first = records_of(engine, 7)
    client = create_app(engine.settings, engine=engine, start_sweeper=False).test_client()
    headers = {"Authorization": "Bearer admin-secret-token"}
    seen: list[str] = []
    cursor = ""
    for _ in range(10):
        query = f"/api/v1/rollbacks?limit=3{'&cursor=' + cursor if cursor else ''}"
        page = client.get(query, headers=headers).get_json()
        seen += [r["id"] for r in page["rollbacks"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == newest_first
    bad = client.get("/api/v1/rollbacks?cursor=%20;drop", headers=headers)
    assert bad.status_code == 400 and "cursor" in bad.get_json()["error"]


def test_status_pages_by_service_name(served: tuple[str, Any]) -> None:
    _url, engine = served
    client = create_app(engine.settings, engine=engine, start_sweeper=False).test_client()
    headers = {"Authorization": "Bearer admin-secret-token"}
    first = client.get("/api/v1/status?limit=4", headers=headers).get_json()
    names = [s["service"] for s in first["services"]]
    assert len(names) == 4 and first["next_cursor"] == names[-1]
    rest = client.get(f"/api/v1/status?cursor={names[-1]}", headers=headers).get_json()
    assert rest["next_cursor"] is None
    everything = names + [s["service"] for s in rest["services"]]
    assert everything == sorted(everything) and {f"svc{n:02d}" for n in range(7)} <= set(everything)


def test_the_cli_history_takes_limit_and_cursor(served: tuple[str, Any]) -> None:
    url, engine = served
    newest_first = records_of(engine, 5)
    env = {"RECEIVER_URL": url, "ADMIN_TOKEN": "admin-secret-token", "USER": "frank"}
    first = CliRunner().invoke(main, ["history", "--limit", "2"], env=env)
    assert first.exit_code == 0, first.output
    assert f"more: history --cursor {newest_first[1]}" in first.output
    second = CliRunner().invoke(main, ["history", "--cursor", newest_first[1]], env=env)
    assert second.exit_code == 0
    assert newest_first[2] in second.output and newest_first[0] not in second.output
