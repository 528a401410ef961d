"""`monitor`: firing triggers from a real Prometheus through the webhook's engine and locks."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis as redis_lib

from receiver.app import create_app
from receiver.clients.prometheus import PrometheusClient
from receiver.intake.payload import parse_alert
from receiver.monitor import (
    alertmanager_time,
    as_delivered,
    is_firing_trigger,
    label_fingerprint,
    run_forever,
    run_once,
)
from receiver.pipeline import Engine
from receiver.state.store import Store
from tests.conftest import BASE_ENV, REAL_REDIS_URL, shared_fixture
from tests.fakes import BareRepo
from tests.procs import (
    SHIPPED_RULES,
    Alertmanager,
    Prometheus,
    free_port,
    webhook_alertmanager_config,
)
from tests.prom import Exporter, WebhookSink
from tests.support import Backend, alert

ROOT = Path(__file__).resolve().parents[1]


def post(client: Any, body: Any) -> Any:
    return client.post("/webhook", data=json.dumps(body), content_type="application/json")


class Firing:
    """A real Prometheus with the shipped rules where TriggerEmergencyRollback fires."""

    def __init__(self, prom: Prometheus, api_alert: dict[str, Any]) -> None:
        self.prom = prom
        self.api_alert = api_alert

    def client(self) -> PrometheusClient:
        return PrometheusClient(self.prom.url)


def firing_trigger(prom: Prometheus, service: str, timeout: float = 40) -> dict[str, Any]:
    """Poll Prometheus until the emergency trigger of `service` fires; its alerts-API entry."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for raw in PrometheusClient(prom.url).alerts():
            if raw["labels"].get("service") == service and is_firing_trigger(raw):
                return raw
        time.sleep(0.2)
    raise TimeoutError(f"no firing trigger for {service} in {timeout}s: {prom.logs()[-1000:]}")


@pytest.fixture(scope="module")
def firing(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Firing]:
    tmp = tmp_path_factory.mktemp("monitor")
    with Exporter() as exporter:
        exporter.traffic.set("api", rps=100, error_ratio=0.5)  # configured (SERVICE_NAME=api)
        exporter.traffic.set("other", rps=100, error_ratio=0.5)  # not configured here
        exporter.traffic.set("calm", rps=100, error_ratio=0.0)
        prom = Prometheus(tmp, targets=[exporter.address], rule_files=SHIPPED_RULES).start()
        try:
            api_alert = firing_trigger(prom, "api")
            firing_trigger(prom, "other")
            yield Firing(prom, api_alert)
        finally:
            prom.stop()


@pytest.fixture
def prometheus(firing: Firing) -> Iterator[PrometheusClient]:
    client = firing.client()
    yield client
    client.session.close()


# -- the Alertmanager view of a Prometheus alert -----------------------------------------------


@pytest.mark.parametrize(
    "name", ["trigger-emergency-firing.json", "trigger-emergency-resolved.json"]
)
def test_the_fingerprint_is_the_one_a_real_alertmanager_gave_those_labels(name: str) -> None:
    (delivered,) = shared_fixture(name)["alerts"]
    assert label_fingerprint(delivered["labels"]) == delivered["fingerprint"]


def test_any_label_change_changes_the_fingerprint() -> None:
    (delivered,) = shared_fixture("trigger-emergency-firing.json")["alerts"]
    labels = dict(delivered["labels"])
    seen = {label_fingerprint(labels)}
    for change in ({"service": "app"}, {"cluster": "eu"}, {"severity": "critical "}):
        seen.add(label_fingerprint({**labels, **change}))
    assert len(seen) == 4
    assert label_fingerprint({}) == "cbf29ce484222325"  # FNV-1a 64 offset: Prometheus's empty set


@pytest.mark.parametrize(
    ("active_at", "starts_at"),
    [
        ("2026-11-26T13:24:56.722231252Z", "2026-11-26T13:24:56.722Z"),  # seen: Prom -> AM 0.25
        ("2026-11-26T13:24:56.999999999Z", "2026-11-26T13:24:56.999Z"),  # truncated, not rounded
        ("2026-11-26T13:24:56.720000001Z", "2026-11-26T13:24:56.72Z"),  # Go trims trailing zeros
        ("2026-11-26T13:24:56.000400Z", "2026-11-26T13:24:56Z"),
        ("2026-11-26T13:24:56Z", "2026-11-26T13:24:56Z"),
        ("2026-11-26T14:24:56.5+01:00", "2026-11-26T13:24:56.5Z"),
    ],
)
def test_active_at_becomes_starts_at_as_alertmanager_writes_it(
    active_at: str, starts_at: str
) -> None:
    assert alertmanager_time(active_at) == starts_at


def test_only_firing_trigger_alerts_count() -> None:
    def raw(state: str = "firing", **labels: str) -> dict[str, Any]:
        return {"state": state, "labels": labels, "activeAt": "2026-11-26T13:24:56Z"}

    assert is_firing_trigger(raw(alertname="TriggerEmergencyRollback"))
    assert is_firing_trigger(raw(alertname="TriggerCriticalRollback"))
    assert is_firing_trigger(raw(alertname="SLOErrorRateHigh", rollback_tier="critical"))
    assert not is_firing_trigger(raw("pending", alertname="TriggerEmergencyRollback"))
    assert not is_firing_trigger(raw(alertname="ErrorBudgetWarning", severity="warning"))
    assert not is_firing_trigger(raw(alertname="Custom", rollback_tier="warning"))


def test_external_labels_are_added_but_the_alerts_own_labels_win() -> None:
    raw = {
        "labels": {"alertname": "TriggerEmergencyRollback", "service": "api", "namespace": "prod"},
        "annotations": {"summary": "s"},
        "state": "firing",
        "activeAt": "2026-11-26T13:24:56.722231252Z",
    }
    built = as_delivered(raw, {"cluster": "eu-1", "namespace": "ignored"})
    assert dict(built.labels) == {**raw["labels"], "cluster": "eu-1"}
    assert built.fingerprint == label_fingerprint(built.labels)
    assert (built.status, built.starts_at) == ("firing", "2026-11-26T13:24:56.722Z")


# -- run_once against a real Prometheus ----------------------------------------------------------


def test_a_firing_trigger_rolls_back_once_under_the_webhooks_episode_key(
    firing: Firing, prometheus: PrometheusClient, engine: Engine, backend: Backend
) -> None:
    result = run_once(engine, prometheus)
    by_service = {o.service: o for o in result.outcomes}
    api = by_service["api"]
    (delivered,) = shared_fixture("trigger-emergency-firing.json")["alerts"]
    # The rule yields exactly the captured delivery's labels: Alertmanager's fingerprint.
    assert api.fingerprint == delivered["fingerprint"] == "87f1f7584791744e"
    assert api.starts_at == alertmanager_time(firing.api_alert["activeAt"])
    assert (api.decision, api.reason, api.final_state) == ("rollback", "passed", "completed")
    assert backend.executed() == [api.rollback_id]
    record = engine.store.get_record(api.rollback_id)
    assert record.trigger["labels"] == delivered["labels"]
    assert record.episode == f"87f1f7584791744e:{api.starts_at}:emergency"
    assert (by_service["other"].decision, by_service["other"].reason) == (
        "ignored",
        "not_configured",
    )
    assert "calm" not in by_service
    assert result.exit_code == 0
    assert any("TriggerEmergencyRollback api/production" in line for line in result.lines())

    again = run_once(engine, prometheus)
    (repeat,) = [o for o in again.outcomes if o.service == "api"]
    assert (repeat.decision, repeat.reason) == ("skipped", "duplicate")
    assert repeat.rollback_id == api.rollback_id
    assert backend.executed() == [api.rollback_id]
    assert again.exit_code == 0


def test_webhook_and_monitor_at_once_on_the_same_breach_give_one_rollback(
    firing: Firing,
    prometheus: PrometheusClient,
    make_engine: Callable[..., Engine],
    real_redis: redis_lib.Redis,
    backend: Backend,
) -> None:
    raw = firing.api_alert
    body = shared_fixture("trigger-emergency-firing.json")
    (delivered,) = body["alerts"]
    # What Alertmanager would deliver for this alert: the captured labels and fingerprint
    # (computed here independently, and equal to the capture's), startsAt from activeAt.
    assert raw["labels"] == delivered["labels"]
    assert label_fingerprint(raw["labels"]) == delivered["fingerprint"]
    delivered["startsAt"] = alertmanager_time(raw["activeAt"])

    for attempt in range(6):  # vary who starts first; every round is a fresh episode store
        engine = make_engine(store=Store(real_redis, prefix=f"t{secrets.token_hex(4)}:"))
        client = create_app(engine.settings, engine=engine, start_sweeper=False).test_client()
        before = len(backend.executed())
        barrier = threading.Barrier(2)
        answers: dict[str, Any] = {}

        def via_webhook(delay: float = attempt * 0.004) -> None:
            barrier.wait(5)
            time.sleep(delay)
            answers["webhook"] = post(client, body).get_json()["alerts"][0]

        def via_monitor() -> None:
            barrier.wait(5)
            answers["monitor"] = run_once(engine, prometheus)

        threads = [threading.Thread(target=via_webhook), threading.Thread(target=via_monitor)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert engine.wait_idle(10)

        hook = answers["webhook"]
        (mon,) = [o for o in answers["monitor"].outcomes if o.service == "api"]
        decisions = sorted([(hook["decision"], hook["reason"]), (mon.decision, mon.reason)])
        assert decisions == [("rollback", "passed"), ("skipped", "duplicate")], attempt
        assert hook["rollback_id"] == mon.rollback_id
        assert backend.executed()[before:] == [hook["rollback_id"]]
        assert answers["monitor"].exit_code == 0


def test_with_a_for_delay_the_keys_differ_and_the_cooldown_stops_the_second_rollback(
    prometheus: PrometheusClient, engine: Engine, backend: Backend
) -> None:
    first = next(o for o in run_once(engine, prometheus).outcomes if o.service == "api")
    assert first.decision == "rollback"
    # Alertmanager's startsAt for a rule with `for: 5m` is the firing time, not activeAt.
    body = shared_fixture("trigger-emergency-firing.json")
    active = datetime.fromisoformat(first.starts_at.replace("Z", "+00:00"))
    fired = (active + timedelta(minutes=5)).isoformat(timespec="milliseconds")
    body["alerts"][0]["startsAt"] = fired.replace("+00:00", "Z")
    client = create_app(engine.settings, engine=engine, start_sweeper=False).test_client()
    second = post(client, body).get_json()["alerts"][0]
    assert (second["decision"], second["reason"]) == ("skipped", "cooldown")
    assert backend.executed() == [first.rollback_id]


def test_a_rollback_it_started_that_fails_exits_1(
    prometheus: PrometheusClient, engine: Engine, backend: Backend
) -> None:
    backend.fail_stage = "gitops"
    result = run_once(engine, prometheus)
    (api,) = [o for o in result.outcomes if o.service == "api"]
    assert (api.decision, api.final_state) == ("rollback", "failed")
    assert result.exit_code == 1
    assert "-> failed" in api.line()


def test_a_rollback_still_running_when_the_wait_runs_out_exits_1(
    prometheus: PrometheusClient, engine: Engine, backend: Backend
) -> None:
    backend.release = threading.Event()
    try:
        result = run_once(engine, prometheus, wait_seconds=0.3)
    finally:
        backend.release.set()
    assert result.unfinished and result.exit_code == 1
    assert engine.wait_idle(10)


def test_dry_run_records_the_decision_and_changes_nothing(
    prometheus: PrometheusClient, make_engine: Callable[..., Engine], backend: Backend
) -> None:
    engine = make_engine(DRY_RUN="true")
    result = run_once(engine, prometheus)
    (api,) = [o for o in result.outcomes if o.service == "api"]
    assert (api.decision, api.reason) == ("skipped", "dry_run")
    assert backend.executed() == []
    assert result.exit_code == 0


def test_it_sweeps_before_evaluating_expired_approvals_included(
    prometheus: PrometheusClient, make_engine: Callable[..., Engine], backend: Backend
) -> None:
    engine = make_engine(REQUIRE_APPROVAL="true")
    old = engine.handle_alert(parse_alert(alert("api", fingerprint="00000000000000aa"), 0))
    assert old.decision == "pending_approval"
    engine.store.add_deadline("pending", old.rollback_id, time.time() - 1)
    result = run_once(engine, prometheus)
    assert result.swept["expired"] == 1
    assert engine.store.get_record(old.rollback_id).state == "expired"
    (api,) = [o for o in result.outcomes if o.service == "api"]
    assert api.decision == "pending_approval"
    assert backend.executed() == []
    assert "sweep: expired=1" in result.lines()


def test_prometheus_unreachable_is_could_not_evaluate(engine: Engine, backend: Backend) -> None:
    client = PrometheusClient(f"http://127.0.0.1:{free_port()}", timeout=2)
    try:
        result = run_once(engine, client)
    finally:
        client.session.close()
    assert result.exit_code == 4
    assert result.error is not None and "cannot reach Prometheus" in result.error
    assert result.outcomes == () and backend.executed() == []


# -- the real Alertmanager agrees ---------------------------------------------------------------


def test_monitor_builds_exactly_the_alert_a_real_alertmanager_delivers(
    tmp_path: Path, engine: Engine, backend: Backend
) -> None:
    external = {"cluster": "ci", "namespace": "shadowed-by-the-alert"}
    with Exporter() as exporter, WebhookSink() as sink:
        exporter.traffic.set("api", rps=100, error_ratio=0.5)
        am = Alertmanager(webhook_alertmanager_config(sink.url + "/hook"), workdir=tmp_path).start()
        try:
            prom = Prometheus(
                tmp_path,
                targets=[exporter.address],
                rule_files=SHIPPED_RULES,
                alertmanagers=[am.address],
                external_labels=external,
            ).start()
            try:
                bodies = sink.wait_for(lambda got: got, timeout=40)
                client = PrometheusClient(prom.url)
                try:
                    result = run_once(engine, client)
                finally:
                    client.session.close()
            finally:
                prom.stop()
        finally:
            am.stop()
    (delivered,) = bodies[0]["alerts"]
    assert delivered["labels"]["cluster"] == "ci"
    assert delivered["labels"]["namespace"] == "production"
    (mine,) = result.outcomes
    assert mine.fingerprint == delivered["fingerprint"]
    assert mine.starts_at == delivered["startsAt"]
    assert engine.store.get_record(mine.rollback_id).trigger["labels"] == delivered["labels"]
    # So the delivery itself, arriving after the monitor acted, is the same episode.
    client = create_app(engine.settings, engine=engine, start_sweeper=False).test_client()
    answer = post(client, bodies[0]).get_json()["alerts"][0]
    assert (answer["decision"], answer["reason"]) == ("skipped", "duplicate")
    assert answer["rollback_id"] == mine.rollback_id
    assert backend.executed() == [mine.rollback_id]


# -- the command -----------------------------------------------------------------------------


def monitor_cli(env: dict[str, str], *args: str, **popen: Any) -> subprocess.Popen[bytes]:
    """`monitor` as a real process (it sets up logging and signals, so not in-process)."""
    full = {**os.environ, **BASE_ENV, "LOG_LEVEL": "WARNING", **env}
    code = "from receiver.cli.evaluate import monitor; monitor()"
    return subprocess.Popen([sys.executable, "-c", code, *args], env=full, cwd=ROOT, **popen)


def finished(proc: subprocess.Popen[bytes], timeout: float = 30) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out.decode(), err.decode()


def redis_env() -> dict[str, str]:
    return {"REDIS_URL": REAL_REDIS_URL, "REDIS_PREFIX": f"t{secrets.token_hex(4)}:"}


def test_monitor_once_with_prometheus_down_exits_4(real_redis: redis_lib.Redis) -> None:
    env = {**redis_env(), "PROMETHEUS_URL": f"http://127.0.0.1:{free_port()}"}
    code, _out, err = finished(
        monitor_cli(env, "--once", stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    )
    assert code == 4
    assert "could not evaluate: cannot reach Prometheus" in err


def test_monitor_once_with_redis_down_exits_4(firing: Firing) -> None:
    env = {"REDIS_URL": f"redis://127.0.0.1:{free_port()}/0", "PROMETHEUS_URL": firing.prom.url}
    code, _out, err = finished(
        monitor_cli(env, "--once", stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    )
    assert code == 4
    assert "could not evaluate: state store unreachable" in err


def test_monitor_refuses_the_embedded_store() -> None:
    env = {"REDIS_URL": "", "PROMETHEUS_URL": f"http://127.0.0.1:{free_port()}"}
    code, _out, err = finished(
        monitor_cli(env, "--once", stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    )
    assert code == 4
    assert "monitor needs REDIS_URL" in err


def test_monitor_once_rolls_back_through_git_prints_a_line_per_trigger_and_exits_0(
    firing: Firing, real_redis: redis_lib.Redis, tmp_path: Path
) -> None:
    origin = BareRepo.create(tmp_path / "gitops.git")
    good = origin.commit_files(
        {"k8s/api/deploy.yaml": "image: api:v1"}, "v1", when=time.time() - 86400
    )
    bad = origin.commit_files(
        {"k8s/api/deploy.yaml": "image: api:v2"}, "v2", when=time.time() - 600
    )
    env = {
        **redis_env(),
        "PROMETHEUS_URL": firing.prom.url,
        "GITOPS_REPO": origin.url,
        "GITOPS_PROVIDER": "git",
        "GITOPS_PATH": "k8s/api",
        "GITOPS_CACHE_DIR": str(tmp_path / "cache"),
    }
    code, out, err = finished(
        monitor_cli(env, "--once", stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    )
    assert code == 0, err
    lines = [line for line in out.splitlines() if line.startswith("TriggerEmergencyRollback")]
    assert len(lines) == 2, out
    (api,) = [line for line in lines if " api/production " in line]
    assert "rollback (passed) rb-" in api and api.endswith("-> completed"), out
    assert any("other/production" in line and "ignored (not_configured)" in line for line in lines)
    head = origin.head()
    assert head not in (good, bad)
    assert origin.git("show", f"{head}:k8s/api/deploy.yaml") == "image: api:v1"

    # The next CronJob run sees the same episode: nothing more is pushed.
    code, out, err = finished(
        monitor_cli(env, "--once", stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    )
    assert code == 0, err
    assert "api/production" in out and "skipped (duplicate)" in out
    assert origin.head() == head


def test_monitor_without_once_loops_until_sigterm(
    tmp_path: Path, real_redis: redis_lib.Redis
) -> None:
    env = {
        **redis_env(),
        "PROMETHEUS_URL": f"http://127.0.0.1:{free_port()}",
        "MONITOR_INTERVAL_SECONDS": "1",
    }
    log = tmp_path / "monitor.err"
    with log.open("wb") as sink:
        proc = monitor_cli(env, stdout=subprocess.DEVNULL, stderr=sink)
        try:
            deadline = time.monotonic() + 20
            while log.read_text().count("could not evaluate") < 2:
                assert time.monotonic() < deadline, log.read_text()
                assert proc.poll() is None, log.read_text()
                time.sleep(0.1)
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(15) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)


def test_a_still_firing_skipped_alert_gets_one_record_however_often_it_is_evaluated(
    prometheus: PrometheusClient, make_engine: Callable[..., Engine], backend: Backend
) -> None:
    engine = make_engine(BLACKOUT_WINDOWS="Mon-Sun 00:00-23:59 UTC")
    stop, rounds = threading.Event(), []

    def report(result: Any) -> None:
        rounds.append(result)
        if len(rounds) >= 4:
            stop.set()

    loop = threading.Thread(target=run_forever, args=(engine, prometheus, 0.1, stop, report))
    loop.start()
    loop.join(timeout=30)
    stop.set()
    assert not loop.is_alive() and len(rounds) >= 4
    api = [o for r in rounds for o in r.outcomes if o.service == "api"]
    assert {(o.decision, o.reason) for o in api} == {("skipped", "blackout")}
    assert len({o.rollback_id for o in api}) == 1
    records = engine.store.list_records("api")
    assert [r.id for r in records] == [api[0].rollback_id]
    assert records[0].repeats == len(api) - 1 and records[0].actor == "monitor"
    # The blackout over (a replica without it), the next evaluation is decided afresh.
    after = run_once(make_engine(), prometheus)
    (fresh,) = [o for o in after.outcomes if o.service == "api"]
    assert (fresh.decision, fresh.reason, fresh.final_state) == ("rollback", "passed", "completed")
    assert engine.store.get_record(fresh.rollback_id).actor == "monitor"
