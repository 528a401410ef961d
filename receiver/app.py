"""create_app: wires settings, the state store, the engine, the blueprints and metrics."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, jsonify
from werkzeug.exceptions import HTTPException

from receiver import memory, metrics
from receiver.act.base import RollbackJob
from receiver.config import Settings
from receiver.errors import ReceiverError
from receiver.gathering import SilenceCheck
from receiver.logs import setup_logging
from receiver.pipeline import Engine
from receiver.runner import ActionFactory, Tell
from receiver.startup import log_startup
from receiver.state.store import Store
from receiver.sweeper import Sweeper

log = logging.getLogger("receiver.app")

MAX_BODY = 1024 * 1024
SILENCE_TIMEOUT_SECONDS = 1.0  # the silence re-check: one bounded wait per delivery


def default_action_factory() -> ActionFactory:
    from receiver.act.factory import build_actions

    return build_actions


def default_silence_check(settings: Settings, client: Any = None) -> SilenceCheck | None:
    """Ask Alertmanager for an active silence matching the alert (freeze silences included)."""
    if not settings.alertmanager_url and client is None:
        return None
    from receiver.act.shared_reads import shared_read
    from receiver.clients.alertmanager import AlertmanagerClient

    if client is None:
        url = settings.alertmanager_url or ""
        client = AlertmanagerClient(url, timeout=SILENCE_TIMEOUT_SECONDS)

    def check(labels: dict[str, str]) -> tuple[bool, str]:
        # One list per delivery (or status request), never one from an earlier delivery.
        active = shared_read(("alertmanager-silences",), client.list_silences)
        found = [s for s in active if s.matches(labels)]
        if not found:
            return False, "no matching silence"
        first = found[0]
        return True, f"silenced by {first.id} ({first.created_by}: {first.comment})"

    return check


def default_notifications(settings: Settings, store: Store) -> tuple[Tell, Any]:
    from receiver.tell.notify import Notifications

    notifications = Notifications.from_settings(settings, once=store.claim_once)
    return notifications.notify, notifications


def default_stabilizer(settings: Settings) -> Any:
    if not settings.prometheus_url or settings.stabilization_seconds <= 0:
        return None
    from receiver.act.validate import errors_fell
    from receiver.clients.prometheus import PrometheusClient

    client = PrometheusClient(settings.prometheus_url, timeout=3.0)

    def stabilize(job: RollbackJob) -> bool | None:
        return errors_fell(
            client,
            job.service,
            job.namespace,
            settings.stabilization_threshold,
            settings.stabilization_seconds,
        )

    return stabilize


def build_engine(
    settings: Settings,
    store: Store | None = None,
    build_actions: ActionFactory | None = None,
    tell: Tell | None = None,
    silences: SilenceCheck | None = None,
    stabilize: Any = None,
) -> Engine:
    """The engine with the real backends, unless a test hands in its own."""
    store = store or Store.from_settings(settings)
    notifications = None
    if tell is None:
        tell, notifications = default_notifications(settings, store)
    engine = Engine(
        settings,
        store,
        build_actions or default_action_factory(),
        tell,
        silences if silences is not None else default_silence_check(settings),
        stabilize if stabilize is not None else default_stabilizer(settings),
    )
    engine.notifications = notifications
    return engine


def create_app(
    settings: Settings | None = None, engine: Engine | None = None, start_sweeper: bool = True
) -> Flask:
    """The Flask app; `settings` default to the environment, `engine` to the real backends.

    `start_sweeper` starts the serving process's background threads: the sweeper and, unless
    RECEIVER_MALLOC_TRIM is false, the allocator's trimmer (receiver.memory.Trimmer).
    """
    settings = settings or Settings.from_env()
    setup_logging(settings.log_level, settings.log_file, settings.secret_values)
    engine = engine or build_engine(settings)
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY + 1  # one byte more: the webhook tells "too large"
    app.extensions["rollback"] = engine
    app.extensions["settings"] = settings
    metrics.precreate(settings.services)

    from receiver.console import bp as console_bp
    from receiver.http.api import bp as api_bp
    from receiver.http.openapi import bp as openapi_bp
    from receiver.http.redaction import redact_answers
    from receiver.http.webhook import WebhookFastPath, unexpected_answer
    from receiver.http.webhook import bp as webhook_bp

    app.register_blueprint(webhook_bp)
    app.register_blueprint(api_bp)
    app.register_blueprint(console_bp)
    redactor = settings.redactor()
    redact_answers(app, redactor)
    app.register_blueprint(openapi_bp)
    app.wsgi_app = WebhookFastPath(app, redactor)  # type: ignore[method-assign]

    @app.errorhandler(ReceiverError)
    def _receiver_error(exc: ReceiverError) -> tuple[Response, int]:
        if exc.status_code >= 500:
            log.error("request failed", extra={"error": exc.message, "status": exc.status_code})
        return jsonify(exc.to_dict()), exc.status_code

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> tuple[Response, int]:
        code = exc.code or 500
        messages = {413: "payload larger than 1 MiB", 404: "not found", 405: "method not allowed"}
        return jsonify({"error": messages.get(code, exc.name.lower())}), code

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> tuple[Response, int]:
        return jsonify(unexpected_answer(exc)), 500

    if settings.embedded_store:
        log.warning(
            "REDIS_URL is not set: using the embedded in-process store. Locks, dedupe and "
            "rate limits are NOT shared between processes or replicas; run one worker only."
        )
    if not settings.webhook_token and not settings.webhook_username:
        log.warning("WEBHOOK_TOKEN and WEBHOOK_USERNAME are unset: the webhook accepts anyone")
    if not settings.api_enabled:
        log.info("ADMIN_TOKEN is unset: the /api/v1 admin API is disabled (403)")
    log_startup(settings)
    if start_sweeper:
        sweeper = Sweeper(engine, settings.reaper_interval_seconds)
        sweeper.start()
        app.extensions["sweeper"] = sweeper
        if settings.receiver_malloc_trim and memory.can_trim():
            trimmer = memory.Trimmer()
            trimmer.start()
            app.extensions["trimmer"] = trimmer
    return app
