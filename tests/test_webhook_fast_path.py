"""POST /webhook's fast path answers exactly as the Flask view and the app's hooks would.

`create_app` puts `WebhookFastPath` in front of Flask's own WSGI app. Every case below is
sent once through the app as served (the fast path) and once through Flask's WSGI app behind
it (the view, the redaction hook, the error handlers), and the two answers must be equal:
status line, headers and body.
"""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Callable
from typing import Any

import pytest
from flask import request_started
from werkzeug.test import Client

from receiver.app import create_app
from receiver.http.webhook import WebhookFastPath
from tests.support import Backend, alert, payload, sample

TOKEN = "hook-token-123"
BIG = "x" * (1024 * 1024)


def both(app: Any) -> tuple[Client, Client]:
    """A client of the app as served (the fast path) and one of Flask's WSGI app behind it."""
    served = app.wsgi_app
    assert isinstance(served, WebhookFastPath)
    return Client(served), Client(served.flask_app)


def answer(client: Client, **request: Any) -> tuple[str, list[tuple[str, str]], bytes]:
    path, method = request.pop("path", "/webhook"), request.pop("method", "POST")
    response = client.open(path, method=method, **request)
    return response.status, list(response.headers.items()), response.get_data()


def as_json(body: Any, **headers: str) -> dict[str, Any]:
    return {"data": json.dumps(body), "content_type": "application/json", "headers": headers}


def nested(depth: int) -> str:
    return '{"alerts": ' + "[" * depth + "]" * depth + "}"


CASES: dict[str, Callable[[], dict[str, Any]]] = {
    "not a trigger": lambda: as_json(payload(alert(alertname="HighMemory", rollback_tier=""))),
    "resolved": lambda: as_json(payload(alert(status="resolved"))),
    "unconfigured service": lambda: as_json(payload(alert("nobody-knows-me"))),
    "empty alerts": lambda: as_json(payload()),
    "no fingerprint": lambda: as_json(
        {**payload(), "alerts": [{"status": "firing", "labels": {}}]}
    ),
    "alerts not a list": lambda: as_json({**payload(), "alerts": {}}),
    "not JSON": lambda: {"data": "{nope", "content_type": "application/json"},
    "nested too deep": lambda: {"data": nested(100), "content_type": "application/json"},
    "not UTF-8": lambda: {"data": b'{"alerts": "\xff"}', "content_type": "application/json"},
    "wrong media type": lambda: {"data": "x", "content_type": "text/plain"},
    "too large": lambda: as_json({**payload(), "blob": BIG}),
    "too large, chunked": lambda: {
        "input_stream": io.BytesIO(json.dumps({**payload(), "blob": BIG}).encode()),
        "content_type": "application/json",
        "headers": {"Transfer-Encoding": "chunked"},
        "environ_overrides": {"wsgi.input_terminated": True},
    },
    "truncated delivery": lambda: as_json({**payload(), "truncatedAlerts": 3}),
    "GET falls through to Flask": lambda: {"method": "GET"},
}


@pytest.mark.parametrize("case", list(CASES))
def test_every_kind_of_answer_is_the_same_through_the_fast_path_and_through_flask(
    app: Any, case: str
) -> None:
    fast, flask = both(app)
    assert answer(fast, **CASES[case]()) == answer(flask, **CASES[case]())


def test_a_repeat_answers_the_same_duplicate_both_ways(app: Any, engine: Any) -> None:
    fast, flask = both(app)
    first = answer(flask, **as_json(payload(alert())))
    assert json.loads(first[2])["alerts"][0]["decision"] == "rollback"
    assert engine.wait_idle(10)
    repeat = answer(fast, **as_json(payload(alert())))
    assert repeat == answer(flask, **as_json(payload(alert())))
    (only,) = json.loads(repeat[2])["alerts"]
    assert (only["decision"], only["reason"]) == ("skipped", "duplicate")


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "Bearer wrong",
        f"Bearer {TOKEN}",
        "Basic !!!",
        "Basic " + base64.b64encode(b"am:no").decode(),
    ],
)
def test_authentication_answers_the_same_both_ways(
    make_engine: Any, authorization: str | None
) -> None:
    engine = make_engine(WEBHOOK_TOKEN=TOKEN, WEBHOOK_USERNAME="am", WEBHOOK_PASSWORD="pw-456789")
    fast, flask = both(create_app(engine.settings, engine=engine, start_sweeper=False))
    headers = {"Authorization": authorization} if authorization else {}
    body = payload(alert(alertname="HighMemory", rollback_tier=""))
    assert answer(fast, **as_json(body, **headers)) == answer(flask, **as_json(body, **headers))


def test_an_unreachable_state_store_is_the_same_503_both_ways(make_engine: Any) -> None:
    import redis

    from receiver.state.store import Store, client_options

    dead = Store(redis.Redis(host="127.0.0.1", port=1, **client_options()))
    engine = make_engine(store=dead)
    fast, flask = both(create_app(engine.settings, engine=engine, start_sweeper=False))
    served = answer(fast, **as_json(payload(alert())))
    assert served == answer(flask, **as_json(payload(alert())))
    assert served[0] == "503 SERVICE UNAVAILABLE"


def test_an_unexpected_error_is_the_same_500_both_ways_and_logged_without_its_text(
    app: Any, engine: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def explode(*_: Any, **__: Any) -> Any:
        raise RuntimeError("the text of this error is not for the answer")

    monkeypatch.setattr(engine, "handle_delivery", explode)
    fast, flask = both(app)
    served = answer(fast, **as_json(payload(alert())))
    assert served == answer(flask, **as_json(payload(alert())))
    assert served[0] == "500 INTERNAL SERVER ERROR"
    assert json.loads(served[2]) == {"error": "internal error (RuntimeError)"}
    logged = [r for r in caplog.records if r.getMessage() == "unhandled error"]
    assert [r.name for r in logged] == ["receiver.app", "receiver.app"]


def test_a_secret_in_an_alert_is_redacted_the_same_both_ways(make_engine: Any) -> None:
    engine = make_engine(WEBHOOK_TOKEN=TOKEN)
    fast, flask = both(create_app(engine.settings, engine=engine, start_sweeper=False))
    body = payload(alert(f"svc-{TOKEN}"))
    served = answer(fast, **as_json(body, Authorization=f"Bearer {TOKEN}"))
    assert served == answer(flask, **as_json(body, Authorization=f"Bearer {TOKEN}"))
    assert served[0] == "200 OK"
    assert TOKEN.encode() not in served[2]
    assert b"[REDACTED]" in served[2]


def test_the_fast_path_answers_without_flask_and_counts_like_the_view(
    app: Any, backend: Backend
) -> None:
    dispatched: list[str] = []

    def seen(sender: Any, **_: Any) -> None:
        from flask import request

        dispatched.append(f"{request.method} {request.path}")

    before = sample("rollback_webhook_requests_total", code="200")
    fast, _ = both(app)
    with request_started.connected_to(seen, app):
        assert answer(fast, **as_json(payload()))[0] == "200 OK"
        assert answer(fast, method="GET")[0] == "405 METHOD NOT ALLOWED"
        assert answer(fast, method="POST", path="/webhook/")[0] == "404 NOT FOUND"
    assert dispatched == ["GET /webhook", "POST /webhook/"]
    assert sample("rollback_webhook_requests_total", code="200") == before + 1
    assert backend.executed() == []
