"""`rollback-receiver check` (the CI gate) and `monitor` (the CronJob path).

Both read Prometheus at PROMETHEUS_URL. `check` exits 0 healthy, 1 warning,
2 critical, 3 emergency, 4 could not evaluate. `monitor --once` exits 0
evaluated, 1 a rollback it started failed, 4 could not evaluate; configuration
errors are "could not evaluate" (4) for both.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from typing import Any, NoReturn

import click

from receiver.check import SOURCES, CannotEvaluate, read_budget, render_table
from receiver.errors import ConfigError

EXIT_CANNOT_EVALUATE = 4


def _cannot(message: str) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(EXIT_CANNOT_EVALUATE)


def _settings(**overrides: str | None) -> Any:
    from receiver.config import Settings

    env = dict(os.environ)
    env.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return Settings.from_env(env)
    except ConfigError as exc:
        _cannot(f"configuration: {exc.message}")


@click.command()
@click.option("--service", default=None, help="default: SERVICE_NAME")
@click.option("--namespace", default=None, help="default: NAMESPACE")
@click.option("--prometheus-url", default=None, help="default: PROMETHEUS_URL")
@click.option(
    "--source",
    type=click.Choice(SOURCES),
    default="auto",
    show_default=True,
    help="recording rules, raw PromQL, or rules when they have the service (auto)",
)
@click.option("--json", "as_json", is_flag=True, help="one JSON object on stdout")
def check(
    service: str | None,
    namespace: str | None,
    prometheus_url: str | None,
    source: str,
    as_json: bool,
) -> None:
    """Error-budget consumption of a service; the exit code is its tier (a pre-deploy gate)."""
    from receiver.clients.prometheus import PrometheusClient

    settings = _settings(PROMETHEUS_URL=prometheus_url)
    service = service or settings.service_name
    namespace = namespace or settings.namespace
    client = PrometheusClient(settings.prometheus_url, timeout=10.0)
    try:
        report = read_budget(
            client,
            service,
            namespace,
            error_budget=settings.error_budget,
            slo_window=settings.slo_window,
            source=source,
        )
    except CannotEvaluate as exc:
        if as_json:
            click.echo(
                json.dumps(
                    {
                        "service": service,
                        "namespace": namespace,
                        "tier": "unknown",
                        "cause": exc.cause,
                        "error": exc.message,
                        "exit_code": EXIT_CANNOT_EVALUATE,
                    },
                    sort_keys=True,
                )
            )
            sys.exit(EXIT_CANNOT_EVALUATE)
        cause = {"prometheus_unreachable": "Prometheus unreachable", "no_data": "no data"}
        _cannot(f"{cause.get(exc.cause, exc.cause)}: {exc.message}")
    finally:
        client.session.close()
    if as_json:
        click.echo(json.dumps(report.to_dict()))
    else:
        click.echo(render_table(report))
    sys.exit(report.exit_code)


@click.command()
@click.option("--once", is_flag=True, help="one evaluation; wait for rollbacks it starts; exit")
@click.option("--prometheus-url", default=None, help="default: PROMETHEUS_URL")
def monitor(once: bool, prometheus_url: str | None) -> None:
    """Evaluate trigger alerts from Prometheus through the same engine and locks as the webhook."""
    from receiver.app import build_engine
    from receiver.clients.prometheus import PrometheusClient
    from receiver.logs import setup_logging
    from receiver.monitor import MonitorResult, run_forever, run_once

    settings = _settings(PROMETHEUS_URL=prometheus_url)
    if settings.embedded_store:
        _cannot(
            "monitor needs REDIS_URL (or REDIS_SENTINELS): the embedded store is neither "
            "shared with the webhook nor kept between runs"
        )
    setup_logging(settings.log_level, settings.log_file, settings.secret_values)
    try:
        engine = build_engine(settings)
    except ConfigError as exc:
        _cannot(f"configuration: {exc.message}")
    client = PrometheusClient(settings.prometheus_url, timeout=10.0)

    def report(result: MonitorResult) -> None:
        for line in result.lines():
            click.echo(line, err=line.startswith("error:"))

    try:
        if once:
            result = run_once(engine, client)
            report(result)
            code = result.exit_code
        else:
            stop = threading.Event()
            for signum in (signal.SIGTERM, signal.SIGINT):
                signal.signal(signum, lambda *_: stop.set())
            run_forever(engine, client, settings.monitor_interval_seconds, stop, report)
            code = 0
    finally:
        # Let rollbacks started in the loop finish (bounded), and flush notifications.
        engine.shutdown(0 if once else settings.validation_timeout_seconds)
        notifications = getattr(engine, "notifications", None)
        if notifications is not None:
            notifications.close(10.0)
        engine.store.client.close()
        client.session.close()
    sys.exit(code)
