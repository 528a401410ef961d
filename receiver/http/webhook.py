"""POST /webhook (Alertmanager in), /healthz, /readyz, /metrics."""

from __future__ import annotations

import logging
import time

from flask import Blueprint, Response, current_app, jsonify, request
from werkzeug.exceptions import RequestEntityTooLarge

from receiver import memory, metrics
from receiver.errors import PayloadTooLarge, ReceiverError, UnsupportedMediaType
from receiver.http.auth import check_webhook
from receiver.intake.json_body import load_json_body
from receiver.intake.payload import parse_message
from receiver.pipeline import Engine
from receiver.startup import redis_address

bp = Blueprint("webhook", __name__)
log = logging.getLogger("receiver.webhook")
MAX_BODY = 1024 * 1024


def engine() -> Engine:
    return current_app.extensions["rollback"]  # type: ignore[no-any-return]


@bp.post("/webhook")
def webhook() -> tuple[Response, int]:
    """One answer per alert, in delivery order; 503 when the state store is unreachable."""
    started = time.perf_counter()
    code = 500
    try:
        body, code = _handle()
        return body, code
    except ReceiverError as exc:
        code = exc.status_code
        if code == 503:
            log.error(
                "webhook refused: state store unreachable, Alertmanager will retry",
                extra={"error": exc.message},
            )
        elif code != 401:
            log.warning("webhook rejected", extra={"status": code, "error": exc.message})
        return jsonify(exc.to_dict()), code
    except RequestEntityTooLarge:  # a body without Content-Length that outgrew MAX_CONTENT_LENGTH
        code = 413
        return jsonify({"error": "payload larger than 1 MiB"}), code
    finally:
        metrics.WEBHOOK_REQUESTS.labels(str(code)).inc()
        metrics.WEBHOOK_DURATION.observe(time.perf_counter() - started)


def _handle() -> tuple[Response, int]:
    eng = engine()
    check_webhook(request, eng.settings)
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise PayloadTooLarge("payload larger than 1 MiB")
    if not request.is_json:
        raise UnsupportedMediaType("Content-Type must be application/json")
    raw = request.stream.read(MAX_BODY + 1)  # bounded, whether or not Content-Length was sent
    if len(raw) > MAX_BODY:
        raise PayloadTooLarge("payload larger than 1 MiB")
    message = parse_message(load_json_body(raw))
    if message.truncated_alerts > 0:
        log.warning(
            "Alertmanager truncated this delivery (max_alerts): some alerts are missing",
            extra={"truncated_alerts": message.truncated_alerts, "group_key": message.group_key},
        )
    answers = [outcome.to_dict() for outcome in eng.handle_delivery(message.alerts)]
    return jsonify({"alerts": answers}), 200


@bp.get("/healthz")
def healthz() -> tuple[Response, int]:
    return jsonify({"status": "ok"}), 200


@bp.get("/readyz")
def readyz() -> tuple[Response, int]:
    eng = engine()
    if eng.ready():
        return jsonify({"status": "ready"}), 200
    address = redis_address(eng.settings)  # host:port only, never REDIS_URL's credentials
    log.warning("readyz: state store unreachable", extra={"redis": address})
    return jsonify(
        {"status": "not ready", "error": f"state store unreachable at {address}", "redis": address}
    ), 503


@bp.get("/metrics")
def metrics_endpoint() -> Response:
    eng = engine()
    body = metrics.render_process_metrics()
    try:
        in_progress, transitions = eng.gauges()
        body.append(metrics.render_gauges(in_progress, transitions))
        body.append(metrics.render_autosync_gauge(eng.autosync_disabled_apps()))
    except ReceiverError:
        log.warning("metrics: state store unreachable; Redis-backed gauges omitted")
    response = Response(body, mimetype="text/plain; version=0.0.4; charset=utf-8")
    if eng.settings.receiver_malloc_trim:  # once the answer is sent and its memory freed
        response.call_on_close(memory.release_free_memory)
    return response
