"""POST /webhook (Alertmanager in), /healthz, /readyz, /metrics.

POST /webhook is answered by `webhook_answer`, from one of two places: `WebhookFastPath`, a
WSGI layer in front of Flask that every POST to exactly `/webhook` goes through (it is every
Alertmanager repeat, so Flask's request context, routing and hooks would cost more than the
decision), and the Flask view, reached only by a request Flask itself dispatches. Both give
the same answer: status, headers and body (tests/test_webhook_fast_path.py compares them).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from flask import Blueprint, Flask, Request, Response, current_app, jsonify, request
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.http import HTTP_STATUS_CODES

from receiver import metrics
from receiver.errors import PayloadTooLarge, ReceiverError, UnsupportedMediaType
from receiver.http.auth import check_webhook
from receiver.intake.json_body import load_json_body
from receiver.intake.payload import parse_message
from receiver.pipeline import Engine
from receiver.redaction import Redactor
from receiver.startup import redis_address

bp = Blueprint("webhook", __name__)
log = logging.getLogger("receiver.webhook")
app_log = logging.getLogger("receiver.app")  # the 500 handler's line, wherever it is answered
MAX_BODY = 1024 * 1024
StartResponse = Callable[..., Any]


def engine() -> Engine:
    return current_app.extensions["rollback"]  # type: ignore[no-any-return]


def unexpected_answer(exc: Exception) -> dict[str, Any]:
    """A 500's body (the app's handler and the fast path): the error's class, never its text."""
    app_log.exception("unhandled error")
    return {"error": f"internal error ({exc.__class__.__name__})"}


def webhook_answer(req: Request, eng: Engine) -> tuple[dict[str, Any], int]:
    """One answer per alert, in delivery order; 503 when the state store is unreachable."""
    started = time.perf_counter()
    code = 500
    try:
        body, code = _handle(req, eng), 200
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
        return exc.to_dict(), code
    except RequestEntityTooLarge:  # a body without Content-Length that outgrew MAX_CONTENT_LENGTH
        code = 413
        return {"error": "payload larger than 1 MiB"}, code
    finally:
        metrics.WEBHOOK_REQUESTS.labels(str(code)).inc()
        metrics.WEBHOOK_DURATION.observe(time.perf_counter() - started)


@bp.post("/webhook")
def webhook() -> tuple[Response, int]:
    body, code = webhook_answer(request, engine())
    return jsonify(body), code


def _handle(req: Request, eng: Engine) -> dict[str, Any]:
    check_webhook(req, eng.settings)
    if req.content_length is not None and req.content_length > MAX_BODY:
        raise PayloadTooLarge("payload larger than 1 MiB")
    if not req.is_json:
        raise UnsupportedMediaType("Content-Type must be application/json")
    raw = req.stream.read(MAX_BODY + 1)  # bounded, whether or not Content-Length was sent
    if len(raw) > MAX_BODY:
        raise PayloadTooLarge("payload larger than 1 MiB")
    message = parse_message(load_json_body(raw))
    if message.truncated_alerts > 0:
        log.warning(
            "Alertmanager truncated this delivery (max_alerts): some alerts are missing",
            extra={"truncated_alerts": message.truncated_alerts, "group_key": message.group_key},
        )
    return {"alerts": [outcome.to_dict() for outcome in eng.handle_delivery(message.alerts)]}


def _json(body: dict[str, Any]) -> str:
    """`body` as `jsonify` writes it outside debug mode: sorted keys, compact, a newline."""
    return json.dumps(body, sort_keys=True, separators=(",", ":")) + "\n"


class WebhookFastPath:
    """POST /webhook without Flask's request context, routing and hooks; the rest to Flask.

    The answer is what the view and the app's hooks give: `webhook_answer`, an unexpected
    error as the app's 500 handler answers it, JSON as `jsonify` writes it (sorted keys,
    compact, a final newline), passed through the app's one redaction step.
    """

    def __init__(self, app: Flask, redactor: Redactor) -> None:
        self.flask_app = app.wsgi_app  # everything that is not a POST to /webhook
        self.engine: Engine = app.extensions["rollback"]
        self.max_content_length = app.config["MAX_CONTENT_LENGTH"]
        self.redactor = redactor

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != "/webhook" or environ.get("REQUEST_METHOD") != "POST":
            return self.flask_app(environ, start_response)
        req = Request(environ)
        req.max_content_length = self.max_content_length
        try:
            body, code = webhook_answer(req, self.engine)
            text = _json(body)
        except Exception as exc:  # as the app's handler answers it: never a traceback
            body, code = unexpected_answer(exc), 500
            text = _json(body)
        data = self.redactor(text).encode()
        status = f"{code} {HTTP_STATUS_CODES.get(code, 'unknown').upper()}"  # as werkzeug
        headers = [("Content-Type", "application/json"), ("Content-Length", str(len(data)))]
        start_response(status, headers)
        return [data]


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
    return Response(body, mimetype="text/plain; version=0.0.4; charset=utf-8")
