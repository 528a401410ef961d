"""/api/v1: history, manual rollbacks, approvals, status, explain, trigger kinds (ADMIN_TOKEN)."""

from __future__ import annotations

import re
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request

from receiver.blackouts import trigger_kinds
from receiver.errors import BadRequest
from receiver.http.auth import admin_actor
from receiver.intake.payload import parse_message
from receiver.pipeline import Engine, ManualRequest
from receiver.state.audit import CLI_ACTIONS

bp = Blueprint("api", __name__, url_prefix="/api/v1")
CURSOR = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:/@-]{0,199}")  # a rollback id or a service name


def engine() -> Engine:
    return current_app.extensions["rollback"]  # type: ignore[no-any-return]


@bp.before_request
def _authenticate() -> None:
    token_name = admin_actor(request, engine().settings)
    # The CLI names the person ($USER) behind the shared token; the token's name stays in the log.
    person = request.headers.get("X-Rollback-Actor", "").strip()[:64]
    request.environ["receiver.actor"] = f"{person} (token {token_name})" if person else token_name


def _actor() -> str:
    return str(request.environ.get("receiver.actor", "admin"))


def _json_object() -> dict[str, Any]:
    if not request.is_json:
        raise BadRequest("Content-Type must be application/json")
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise BadRequest("body must be a JSON object")
    return data


def _page_args(default: int) -> tuple[int, str | None]:
    """`?limit=` (1-1000) and `?cursor=` (the `next_cursor` of the page before)."""
    raw_limit = request.args.get("limit", str(default))
    if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= 1000:
        raise BadRequest("limit must be a whole number from 1 to 1000")
    cursor = request.args.get("cursor") or None
    if cursor is not None and not CURSOR.fullmatch(cursor):
        raise BadRequest("cursor must be a next_cursor this API answered")
    return int(raw_limit), cursor


@bp.get("/rollbacks")
def list_rollbacks() -> Response:
    limit, cursor = _page_args(50)
    service = request.args.get("service") or None
    records = engine().list_records(service, limit + 1, cursor)
    page = records[:limit]
    next_cursor = page[-1].id if len(records) > limit else None
    return jsonify({"rollbacks": [r.to_dict() for r in page], "next_cursor": next_cursor})


@bp.get("/rollbacks/<rollback_id>")
def get_rollback(rollback_id: str) -> Response:
    return jsonify(engine().get_record(rollback_id).to_dict())


def _opt_str(data: dict[str, Any], name: str) -> str | None:
    value = data.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise BadRequest(f"{name} must be a string")
    return value


def _opt_bool(data: dict[str, Any], name: str) -> bool:
    value = data.get(name, False)
    if not isinstance(value, bool):
        raise BadRequest(f"{name} must be true or false")
    return value


@bp.post("/rollbacks")
def manual_rollback() -> tuple[Response, int]:
    data = _json_object()
    service = _opt_str(data, "service")
    if not service:
        raise BadRequest("service is required")
    mode = _opt_str(data, "mode")
    if mode is not None and mode not in ("gitops", "argocd", "both"):
        raise BadRequest("mode must be gitops, argocd or both")
    manual = ManualRequest(
        service=service,
        mode=mode,
        target_commit=_opt_str(data, "target_commit"),
        target_revision=_opt_str(data, "target_revision"),
        reason=_opt_str(data, "reason") or "manual rollback",
        dry_run=_opt_bool(data, "dry_run"),
        force=_opt_bool(data, "force"),
    )
    outcome, record = engine().manual_rollback(manual, _actor())
    status = 202 if outcome.decision == "rollback" else 200  # started: it runs on
    return jsonify({**outcome.to_dict(), "record": record.to_dict()}), status


@bp.post("/rollbacks/<rollback_id>/approve")
def approve(rollback_id: str) -> Response:
    return jsonify(engine().approve(rollback_id, _actor()).to_dict())


@bp.post("/rollbacks/<rollback_id>/reject")
def reject(rollback_id: str) -> Response:
    return jsonify(engine().reject(rollback_id, _actor()).to_dict())


@bp.get("/audit")
def audit_trail() -> Response:
    """Operator actions, newest first: approvals, rejections, manual rollbacks, blackouts."""
    raw_limit = request.args.get("limit", "50")
    if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= 1000:
        raise BadRequest("limit must be a whole number from 1 to 1000")
    return jsonify({"audit": engine().audit_trail(int(raw_limit))})


@bp.post("/audit")
def record_audit() -> tuple[Response, int]:
    """What the CLI did outside the receiver (blackouts are Alertmanager silences)."""
    data = _json_object()
    action = _opt_str(data, "action")
    if action not in CLI_ACTIONS:
        raise BadRequest(f"action must be one of {', '.join(CLI_ACTIONS)}")
    silence_id = _opt_str(data, "silence_id")
    if not silence_id:
        raise BadRequest("silence_id is required")
    details = {name: _opt_str(data, name) for name in ("service", "comment", "until")}
    engine().audit(
        _actor(), action, silence_id=silence_id, **{k: v[:500] for k, v in details.items() if v}
    )
    return jsonify({"recorded": action}), 201


@bp.get("/status")
def status() -> Response:
    limit, cursor = _page_args(1000)
    found = engine().statuses(request.args.get("service") or None, limit + 1, cursor)
    page = found[:limit]
    next_cursor = page[-1]["service"] if len(found) > limit else None
    return jsonify({"services": page, "next_cursor": next_cursor})


@bp.get("/triggers")
def triggers() -> Response:
    """The trigger kinds the receiver acts on, as silence matchers (for `blackout create`)."""
    kinds = trigger_kinds(engine().settings.triggers)
    return jsonify({"kinds": [kind.to_dict() for kind in kinds]})


@bp.post("/explain")
def explain() -> Response:
    message = parse_message(_json_object())
    eng = engine()
    answers = []
    for alert in message.alerts:
        outcome = eng.explain(alert)
        answers.append({**outcome.to_dict(), "checks": list(outcome.checks)})
    return jsonify({"alerts": answers})
