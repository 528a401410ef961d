"""The operator console's pages: history, one rollback, approvals, services, blackouts."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import Any

from flask import (
    Blueprint,
    Response,
    abort,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response as BaseResponse

from receiver.act.shared_reads import delivery_scope
from receiver.console import data, security, timeline
from receiver.errors import ReceiverError, StoreUnavailable
from receiver.state.history import State

STATES = tuple(s.value for s in State)

log = logging.getLogger("receiver.console")

bp = Blueprint(
    "console",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/ui/static",
)

FAILED_SIGN_IN_DELAY = 1.0  # seconds; slows a token guesser to one try a second per worker
COMMENT_LIMIT = 500
OPEN_PATHS = ("console.login", "console.static", "console.root")
RUNNING_STATES = (State.RUNNING.value,)


@bp.record_once
def _setup(state: Any) -> None:
    security.configure(state.app)


@bp.before_request
def _guard() -> BaseResponse | None:
    if request.endpoint == "console.root":
        return None
    if not data.console_enabled():
        abort(403, "the console is disabled: set ADMIN_TOKEN (or ADMIN_TOKENS_FILE) to enable it")
    if request.environ.get(security.STORE_DOWN):
        raise StoreUnavailable("state store unreachable: the console needs Redis")
    if request.endpoint in OPEN_PATHS:
        return None
    actor = security.signed_in_actor()
    if actor is None:
        wanted = request.full_path.rstrip("?") if request.method == "GET" else None
        return redirect(url_for("console.login", next=wanted), code=303)
    request.environ["receiver.console.actor"] = actor
    if request.method == "POST" and not security.csrf_valid(request.form.get("csrf_token")):
        abort(400, "missing or invalid CSRF token: reload the page and try again")
    return None


@bp.after_request
def _headers(response: Response) -> Response:
    return security.add_headers(response)


@bp.context_processor
def _template_helpers() -> dict[str, Any]:
    def csrf_token() -> str:
        return security.csrf_token()

    return {"csrf_token": csrf_token, "actor": _actor_or_none()}


def _actor_or_none() -> str | None:
    value = request.environ.get("receiver.console.actor") if request else None
    return str(value) if value else None


def _actor() -> str:
    return str(request.environ["receiver.console.actor"])


@bp.errorhandler(ReceiverError)
def _receiver_error(exc: ReceiverError) -> tuple[str, int]:
    if exc.status_code >= 500:
        log.error("console request failed", extra={"error": exc.message})
    return render_template("error.html", status=exc.status_code, message=exc.message), (
        exc.status_code
    )


@bp.errorhandler(HTTPException)
def _http_error(exc: HTTPException) -> tuple[str, int]:
    code = exc.code or 500
    return render_template("error.html", status=code, message=exc.description), code


# -- sign-in --------------------------------------------------------------------------------


@bp.get("/")
def root() -> BaseResponse:
    return redirect("/ui/", code=302)


@bp.route("/ui/login", methods=["GET", "POST"])
def login() -> BaseResponse | tuple[str, int] | str:
    target = security.safe_next(request.values.get("next"))
    if request.method == "GET":
        return render_template("login.html", next=target, error=None)
    token = request.form.get("token", "")
    actor = data.admin_actor(token.strip()) if token.strip() else None
    if actor is None:
        log.warning(
            "console sign-in failed",
            extra={"remote_addr": request.remote_addr, "reason": "invalid admin token"},
        )
        time.sleep(FAILED_SIGN_IN_DELAY)
        return render_template("login.html", next=target, error="That token is not valid."), 401
    security.sign_in(actor, token.strip())
    data.audit(actor, "sign_in", remote_addr=request.remote_addr)
    return redirect(target, code=303)


@bp.post("/ui/logout")
def logout() -> BaseResponse:
    data.audit(_actor(), "sign_out")
    session.clear()
    return redirect(url_for("console.login"), code=303)


# -- history and one rollback -------------------------------------------------------------------


@bp.get("/ui/")
def history() -> str:
    service = request.args.get("service", "").strip() or None
    state = request.args.get("state", "").strip() or None
    if state is not None and state not in STATES:
        abort(400, f"unknown state {state!r}: one of {', '.join(STATES)}")
    rows = data.list_rollbacks(service, state)
    return render_template(
        "history.html",
        rows=rows,
        service=service or "",
        state=state or "",
        states=STATES,
        services=data.service_names(),
        refresh=any(r["state"] in RUNNING_STATES for r in rows),
    )


@bp.get("/ui/rollbacks/<rollback_id>")
def rollback(rollback_id: str) -> str:
    record = data.get_rollback(rollback_id)
    if record is None:
        abort(404, f"no rollback {rollback_id}")
    bars = timeline.stage_bars(record.get("stages") or [], datetime.now(UTC))
    return render_template(
        "rollback.html",
        r=record,
        bars=bars,
        svg_width=timeline.WIDTH,
        svg_height=timeline.height(bars),
        label_width=timeline.LABEL_WIDTH,
        links=data.rollback_links(record),
        fields=_plain_fields(record),
        refresh=record["state"] in RUNNING_STATES,
    )


SHOWN_APART = ("stages", "checks", "audit", "trigger", "target", "rolled_back_from", "details")


def _plain_fields(record: dict[str, Any]) -> list[tuple[str, Any]]:
    return [(k, v) for k, v in record.items() if k not in SHOWN_APART]


# -- approvals --------------------------------------------------------------------------------


def _left(deadline: str | None) -> str:
    moment = timeline.parse_time(deadline)
    if moment is None:
        return "unknown"
    seconds = moment.timestamp() - data.now()
    if seconds <= 0:
        return "due now"
    return timeline.duration_text(seconds).replace(".0 s", " s")


@bp.get("/ui/approvals")
def approvals(error: str | None = None, status: int = 200) -> tuple[str, int]:
    pending = [
        {**r, "expires_left": _left(r.get("expires_at")), "veto_left": _left(r.get("veto_at"))}
        for r in data.pending_approvals()
    ]
    return render_template("approvals.html", pending=pending, error=error), status


def _comment() -> str:
    return request.form.get("comment", "").strip()[:COMMENT_LIMIT]


@bp.post("/ui/rollbacks/<rollback_id>/approve")
def approve(rollback_id: str) -> BaseResponse | tuple[str, int]:
    try:
        data.approve(rollback_id, _actor(), _comment())
    except ReceiverError as exc:
        if exc.status_code >= 500:
            raise
        return approvals(error=exc.message, status=exc.status_code)
    return redirect(url_for("console.rollback", rollback_id=rollback_id), code=303)


@bp.post("/ui/rollbacks/<rollback_id>/reject")
def reject(rollback_id: str) -> BaseResponse | tuple[str, int]:
    try:
        data.reject(rollback_id, _actor(), _comment())
    except ReceiverError as exc:
        if exc.status_code >= 500:
            raise
        return approvals(error=exc.message, status=exc.status_code)
    return redirect(url_for("console.rollback", rollback_id=rollback_id), code=303)


# -- services ---------------------------------------------------------------------------------


def _budget_class(consumed: float) -> str:
    if consumed >= 0.95:
        return "emergency"
    return "critical" if consumed >= 0.8 else "fine"


@bp.get("/ui/services")
def services() -> str:
    rows = []
    with delivery_scope():  # Alertmanager's silences listed once for the whole page
        statuses = data.service_statuses(data.service_names())
    for status in statuses:
        name = status["service"]
        consumed = data.error_budget_consumed(name)
        rows.append(
            {
                **status,
                "cooldown_left": _duration_or_none(status["cooldown_seconds_left"]),
                "budget": consumed,
                "budget_width": round(min(max(consumed or 0.0, 0.0), 1.0) * 200, 1),
                "budget_class": _budget_class(consumed) if consumed is not None else "unknown",
            }
        )
    return render_template("services.html", rows=rows)


def _duration_or_none(seconds: float) -> str | None:
    return timeline.duration_text(seconds) if seconds > 0 else None


# -- blackouts --------------------------------------------------------------------------------


@bp.get("/ui/blackouts")
def blackouts(error: str | None = None, status: int = 200, notice: str | None = None) -> Any:
    silences = None
    unavailable = None
    if data.alertmanager_configured():
        try:
            silences = data.active_silences()
        except data.BlackoutsUnavailable as exc:
            unavailable = str(exc)
    else:
        unavailable = "ALERTMANAGER_URL is not set: silences cannot be shown or made here."
    page = render_template(
        "blackouts.html",
        silences=silences,
        unavailable=unavailable,
        windows=data.recurring_windows(),
        services=data.service_names(),
        error=error,
        notice=notice or request.args.get("notice"),
    )
    return page, status


@bp.post("/ui/blackouts")
def create_blackout() -> Any:
    form = request.form
    try:
        silence_id = data.create_blackout(
            form.get("duration", "").strip(),
            form.get("comment", "")[:COMMENT_LIMIT],
            form.get("service", "").strip() or None,
            _actor(),
        )
    except data.BlackoutsUnavailable as exc:
        return blackouts(error=str(exc), status=400)
    return redirect(url_for("console.blackouts", notice=f"created blackout {silence_id}"), 303)


@bp.post("/ui/blackouts/<silence_id>/end")
def end_blackout(silence_id: str) -> Any:
    try:
        data.end_blackout(silence_id, _actor())
    except data.BlackoutsUnavailable as exc:
        return blackouts(error=str(exc), status=400)
    return redirect(url_for("console.blackouts", notice=f"ended blackout {silence_id}"), 303)
