"""`rollback-receiver check` (the CI gate) and `monitor` (the CronJob path).

Both read Prometheus at PROMETHEUS_URL. `check` exits 0 healthy, 1 warning,
2 critical, 3 emergency, 4 could not evaluate. `monitor --once` exits 0
evaluated, 1 a rollback it started failed, 4 could not evaluate; configuration
errors are "could not evaluate" (4) for both.
"""

from __future__ import annotations

import json
import signal
import sys
import threading

import click

from receiver.check import SOURCES, CannotEvaluate, read_budget, render_table
from receiver.cli.shared import ExitCode, fail, load_settings
from receiver.errors import ConfigError

CANNOT_EVALUATE = ExitCode.UNREACHABLE


@click.command()
@click.option("--service", default=None, help="the service (default: $SERVICE_NAME, else app)")
@click.option(
    "--namespace", default=None, help="its namespace (default: $NAMESPACE, else production)"
)
@click.option(
    "--prometheus-url",
    default=None,
    help="Prometheus base URL (default: $PROMETHEUS_URL, else http://localhost:9090)",
)
@click.option(
    "--source",
    type=click.Choice(SOURCES),
    default="auto",
    show_default=True,
    help="recording rules, raw PromQL, or auto: the rules when they have the service",
)
@click.option(
    "--slo",
    default=None,
    help="with --source sloth: the Sloth SLO name (sloth_slo) when a service has several "
    "(default: the service's only SLO)",
)
@click.option(
    "--json", "as_json", is_flag=True, help="one JSON object on stdout (default: a table)"
)
def check(
    service: str | None,
    namespace: str | None,
    prometheus_url: str | None,
    source: str,
    slo: str | None,
    as_json: bool,
) -> None:
    """Error-budget consumption of a service; the exit code is its tier (a pre-deploy gate)."""
    from receiver.clients.prometheus import PrometheusClient

    if slo and source != "sloth":
        # A gate that silently read another SLO than the one named would pass a bad deploy.
        fail(f"--slo {slo} names a Sloth SLO: add --source sloth", CANNOT_EVALUATE)
    settings = load_settings(CANNOT_EVALUATE, PROMETHEUS_URL=prometheus_url)
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
            slo=slo,
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
                        "exit_code": int(CANNOT_EVALUATE),
                    },
                    sort_keys=True,
                )
            )
            sys.exit(CANNOT_EVALUATE)
        cause = {"prometheus_unreachable": "Prometheus unreachable", "no_data": "no data"}
        fail(f"{cause.get(exc.cause, exc.cause)}: {exc.message}", CANNOT_EVALUATE)
    finally:
        client.session.close()
    if as_json:
        click.echo(json.dumps(report.to_dict()))
    else:
        click.echo(render_table(report))
    sys.exit(report.exit_code)


@click.command()
@click.option(
    "--once",
    is_flag=True,
    help="one evaluation, wait for the rollbacks it starts, exit "
    "(default: loop every MONITOR_INTERVAL_SECONDS until SIGTERM)",
)
@click.option(
    "--prometheus-url",
    default=None,
    help="Prometheus base URL (default: $PROMETHEUS_URL, else http://localhost:9090)",
)
def monitor(once: bool, prometheus_url: str | None) -> None:
    """Evaluate trigger alerts from Prometheus through the same engine and locks as the webhook."""
    from receiver.app import build_engine
    from receiver.clients.prometheus import PrometheusClient
    from receiver.logs import setup_logging
    from receiver.monitor import MonitorResult, run_forever, run_once

    settings = load_settings(CANNOT_EVALUATE, PROMETHEUS_URL=prometheus_url)
    if settings.embedded_store:
        fail(
            "monitor needs REDIS_URL (or REDIS_SENTINELS): the embedded store is neither "
            "shared with the webhook nor kept between runs",
            CANNOT_EVALUATE,
        )
    setup_logging(settings.log_level, settings.log_file, settings.secret_values)
    try:
        engine = build_engine(settings)
    except ConfigError as exc:
        fail(f"configuration: {exc.message}", CANNOT_EVALUATE)
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
