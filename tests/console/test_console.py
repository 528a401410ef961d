"""The operator console through Flask's test client: sign-in, CSRF, pages, actions, escaping."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

import pytest
from flask.testing import FlaskClient

from receiver.app import create_app
from receiver.console import security, views
from receiver.pipeline import Engine
from tests.support import alert, payload

TOKEN = "admin-secret-token"


@pytest.fixture(autouse=True)
def _fast_failed_sign_ins(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    slept: list[float] = []
    monkeypatch.setattr(views.time, "sleep", slept.append)
    return slept


def console(engine: Engine) -> FlaskClient:
    return create_app(engine.settings, engine=engine, start_sweeper=False).test_client()


def sign_in(client: FlaskClient, token: str = TOKEN, next_path: str = "/ui/") -> Any:
    return client.post("/ui/login", data={"token": token, "next": next_path})


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found, "no CSRF token in the page"
    return found.group(1)


def page(client: FlaskClient, path: str) -> str:
    answer = client.get(path)
    assert answer.status_code == 200, answer.get_data(as_text=True)[:500]
    return answer.get_data(as_text=True)


def pending_rollback(
    client: FlaskClient, service: str = "api", decision: str = "pending_approval", **labels: str
) -> str:
    answer = client.post("/webhook", json=payload(alert(service, **labels)))
    assert answer.status_code == 200, answer.get_json()
    outcome = answer.get_json()["alerts"][0]
    assert outcome["decision"] == decision, outcome
    return str(outcome["rollback_id"])


@pytest.fixture
def approving(make_engine: Callable[..., Engine]) -> Engine:
    return make_engine(REQUIRE_APPROVAL="true")


def test_get_root_redirects_to_the_console(client: FlaskClient) -> None:
    answer = client.get("/")
    assert answer.status_code == 302 and answer.headers["Location"].endswith("/ui/")


def test_with_admin_token_unset_every_console_page_is_403(
    make_engine: Callable[..., Engine],
) -> None:
    client = console(make_engine(ADMIN_TOKEN=None))
    for path in ("/ui/", "/ui/login", "/ui/approvals", "/ui/services", "/ui/blackouts"):
        assert client.get(path).status_code == 403, path
    assert sign_in(client).status_code == 403
    assert client.post("/ui/rollbacks/rb-x/approve").status_code == 403


def test_a_signed_out_visitor_is_sent_to_sign_in_keeping_the_page_asked_for(
    client: FlaskClient,
) -> None:
    answer = client.get("/ui/approvals?x=1")
    assert answer.status_code == 303
    assert answer.headers["Location"] == "/ui/login?next=/ui/approvals?x%3D1"
    assert 'name="next" value="/ui/approvals?x=1"' in page(
        client, "/ui/login?next=/ui/approvals?x%3D1"
    )


def test_sign_in_sets_a_strict_http_only_cookie_and_follows_a_same_origin_next(
    client: FlaskClient,
) -> None:
    answer = sign_in(client, next_path="/ui/approvals")
    assert answer.status_code == 303 and answer.headers["Location"] == "/ui/approvals"
    cookie = answer.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Secure" not in cookie
    assert TOKEN not in cookie
    assert "data-actor>admin<" in page(client, "/ui/approvals")


def test_the_cookie_is_secure_when_public_url_is_https(
    make_engine: Callable[..., Engine],
) -> None:
    client = console(make_engine(PUBLIC_URL="https://rollback.example.com"))
    assert "Secure" in sign_in(client).headers["Set-Cookie"]


@pytest.mark.parametrize(
    "target",
    ["//evil.example/x", "https://evil.example/", "/\\evil.example", "javascript:alert(1)", ""],
)
def test_sign_in_never_redirects_to_another_origin(client: FlaskClient, target: str) -> None:
    answer = sign_in(client, next_path=target)
    assert answer.status_code == 303 and answer.headers["Location"] == "/ui/"


def test_a_wrong_token_is_refused_logged_and_slowed_down(
    make_engine: Callable[..., Engine], tmp_path: Any, _fast_failed_sign_ins: list[float]
) -> None:
    log_file = tmp_path / "receiver.log"
    client = console(make_engine(LOG_FILE=str(log_file)))
    answer = sign_in(client, token="guess-1234")
    assert answer.status_code == 401
    assert "not valid" in answer.get_data(as_text=True)
    assert _fast_failed_sign_ins == [views.FAILED_SIGN_IN_DELAY] and views.FAILED_SIGN_IN_DELAY >= 1
    logged = log_file.read_text()
    assert "console sign-in failed" in logged and "guess-1234" not in logged
    assert client.get("/ui/").status_code == 303  # still signed out


def test_tokens_from_admin_tokens_file_sign_in_as_their_name(
    make_engine: Callable[..., Engine], tmp_path: Any
) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text("ivy ivy-token-0123456789\n")
    engine = make_engine(ADMIN_TOKEN=None, ADMIN_TOKENS_FILE=str(tokens))
    client = console(engine)
    assert sign_in(client, token="ivy-token-0123456789").status_code == 303
    assert "data-actor>ivy<" in page(client, "/ui/")
    assert engine.store.list_audit(5)[0] | {"at": None} == {
        "at": None,
        "actor": "ivy",
        "action": "sign_in",
        "via": "console",
        "remote_addr": "127.0.0.1",
    }


def test_a_session_expires_after_eight_hours(client: FlaskClient) -> None:
    sign_in(client)
    assert client.get("/ui/").status_code == 200
    with client.session_transaction("/ui/") as session:
        session["signed_in_at"] = time.time() - security.SESSION_HOURS * 3600 - 1
    answer = client.get("/ui/")
    assert answer.status_code == 303 and "/ui/login" in answer.headers["Location"]


def test_a_session_cookie_signed_with_another_secret_is_not_accepted(
    make_engine: Callable[..., Engine],
) -> None:
    one = console(make_engine(SESSION_SECRET="first-secret-first-secret"))
    sign_in(one)
    cookie = one.get_cookie(security.COOKIE_NAME)
    assert cookie is not None
    other = console(make_engine(SESSION_SECRET="other-secret-other-secret"))
    other.set_cookie(security.COOKIE_NAME, cookie.value)
    assert other.get("/ui/").status_code == 303


def test_without_session_secret_workers_share_one_random_secret_through_redis(
    make_engine: Callable[..., Engine], real_store: Any
) -> None:
    worker_a = console(make_engine(store=real_store))
    worker_b = console(make_engine(store=real_store))
    sign_in(worker_a)
    cookie = worker_a.get_cookie(security.COOKIE_NAME)
    assert cookie is not None
    worker_b.set_cookie(security.COOKIE_NAME, cookie.value)
    assert worker_b.get("/ui/").status_code == 200
    stored = real_store.client.get(real_store.key("console:session_secret"))
    assert stored and len(stored) >= 40
    assert stored not in page(worker_b, "/ui/")


def test_signing_out_is_a_post_with_a_csrf_token(client: FlaskClient) -> None:
    sign_in(client)
    history = page(client, "/ui/")
    assert client.get("/ui/logout").status_code == 405
    assert client.post("/ui/logout").status_code == 400
    answer = client.post("/ui/logout", data={"csrf_token": csrf_of(history)})
    assert answer.status_code == 303 and answer.headers["Location"] == "/ui/login"
    assert client.get("/ui/").status_code == 303


def test_every_state_changing_form_without_its_csrf_token_is_a_400(
    approving: Engine,
) -> None:
    client = console(approving)
    rollback_id = pending_rollback(client)
    sign_in(client)
    for path, form in (
        (f"/ui/rollbacks/{rollback_id}/approve", {}),
        (f"/ui/rollbacks/{rollback_id}/reject", {"csrf_token": "forged"}),
        ("/ui/blackouts", {"duration": "1h", "comment": "x"}),
        ("/ui/blackouts/abc/end", {}),
    ):
        answer = client.post(path, data=form)
        assert answer.status_code == 400, path
        assert "CSRF" in answer.get_data(as_text=True)
    assert approving.store.get_record(rollback_id).state == "pending_approval"  # type: ignore[union-attr]


def test_console_answers_carry_the_security_headers(client: FlaskClient) -> None:
    for answer in (client.get("/ui/login"), client.get("/ui/"), client.get("/")):
        assert answer.headers["Content-Security-Policy"] == "default-src 'self'"
        assert answer.headers["X-Frame-Options"] == "DENY"
        assert answer.headers["Referrer-Policy"] == "no-referrer"


def test_approving_from_the_console_runs_the_rollback_as_the_signed_in_actor(
    approving: Engine,
) -> None:
    client = console(approving)
    rollback_id = pending_rollback(client)
    sign_in(client)
    approvals = page(client, "/ui/approvals")
    assert f'data-rollback-id="{rollback_id}"' in approvals
    assert 'data-action="approve"' in approvals and 'data-action="reject"' in approvals
    assert "Expires in" in approvals
    answer = client.post(
        f"/ui/rollbacks/{rollback_id}/approve",
        data={"csrf_token": csrf_of(approvals), "comment": "looks like the deploy"},
    )
    assert answer.status_code == 303
    assert answer.headers["Location"] == f"/ui/rollbacks/{rollback_id}"
    assert approving.wait_idle(10)
    record = approving.store.get_record(rollback_id)
    assert record is not None and record.state == "completed" and record.actor == "admin"
    actions = [(e["actor"], e["action"]) for e in approving.store.list_audit(10)]
    assert ("admin", "approve") in actions and ("admin", "comment") in actions
    shown = page(client, f"/ui/rollbacks/{rollback_id}")
    assert 'data-state="completed"' in shown and "<svg" in shown and 'data-stage="' in shown
    assert re.search(r'<tr data-check="[a-z_]+"><td>[a-z_]+</td>', shown), "check names missing"


def test_a_blocked_approval_shows_the_409_reason(approving: Engine) -> None:
    client = console(approving)
    rollback_id = pending_rollback(client)
    sign_in(client)
    token = csrf_of(page(client, "/ui/approvals"))
    assert (
        client.post(f"/ui/rollbacks/{rollback_id}/reject", data={"csrf_token": token}).status_code
        == 303
    )
    again = client.post(f"/ui/rollbacks/{rollback_id}/approve", data={"csrf_token": token})
    assert again.status_code == 409
    assert f"rollback {rollback_id} is not pending (it is rejected)" in again.get_data(as_text=True)
    record = approving.store.get_record(rollback_id)
    assert record is not None and record.state == "rejected"


def test_history_filters_by_service_and_state(approving: Engine) -> None:
    client = console(approving)
    api_id = pending_rollback(client, "api")
    web_id = pending_rollback(client, "web", decision="skipped")  # no target configured
    sign_in(client)
    both = page(client, "/ui/")
    assert f'data-rollback-id="{api_id}"' in both and f'data-rollback-id="{web_id}"' in both
    only_web = page(client, "/ui/?service=web")
    assert f'data-rollback-id="{web_id}"' in only_web and api_id not in only_web
    only_pending = page(client, "/ui/?state=pending_approval")
    assert f'data-rollback-id="{api_id}"' in only_pending and web_id not in only_pending
    assert "data-rollback-id" not in page(client, "/ui/?state=completed")
    assert client.get("/ui/?state=bogus").status_code == 400


def test_a_label_holding_a_script_tag_shows_as_text(approving: Engine) -> None:
    client = console(approving)
    rollback_id = pending_rollback(client, summary_note="<script>alert(1)</script>")
    sign_in(client)
    for path in (f"/ui/rollbacks/{rollback_id}", "/ui/approvals", "/ui/"):
        body = page(client, path)
        assert "<script>alert(1)</script>" not in body, path
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page(client, f"/ui/rollbacks/{rollback_id}")


def test_no_page_shows_a_secret(make_engine: Callable[..., Engine]) -> None:
    engine = make_engine(
        REQUIRE_APPROVAL="true",
        SESSION_SECRET="session-secret-0123456789",
        WEBHOOK_TOKEN="webhook-secret-0123456789",
        SLACK_WEBHOOK="https://hooks.slack.com/services/T0/B0/slacksecret0123",
    )
    client = console(engine)
    client.post(
        "/webhook",
        json=payload(alert("api")),
        headers={"Authorization": "Bearer webhook-secret-0123456789"},
    )
    sign_in(client)
    for path in ("/ui/", "/ui/approvals", "/ui/services", "/ui/blackouts"):
        body = page(client, path)
        for secret in (TOKEN, "session-secret", "webhook-secret", "slacksecret"):
            assert secret not in body, (path, secret)


def test_services_page_has_a_row_per_service_with_an_unknown_budget_without_prometheus(
    client: FlaskClient,
) -> None:
    sign_in(client)
    body = page(client, "/ui/services")
    row = re.search(r'<tr data-service="api">(.*?)</tr>', body, re.S)
    assert row, body
    assert re.search(r'data-field="budget">\s*unknown', row.group(1))
    assert re.search(r'data-field="cooldown">none<', row.group(1))
    assert re.search(r'data-field="hour">0 / 1<', row.group(1))


def test_blackouts_without_alertmanager_say_so_and_still_list_the_windows(
    make_engine: Callable[..., Engine],
) -> None:
    client = console(make_engine(BLACKOUT_WINDOWS="Sat,Sun 00:00-06:00 UTC"))
    sign_in(client)
    body = page(client, "/ui/blackouts")
    assert "ALERTMANAGER_URL is not set" in body
    assert "data-window" in body and "Sat" in body


def test_a_blackout_made_in_the_console_is_a_real_silence_and_can_be_ended(
    make_engine: Callable[..., Engine],
) -> None:
    from tests.procs import Alertmanager

    with Alertmanager() as am:
        engine = make_engine(ALERTMANAGER_URL=am.url)
        client = console(engine)
        sign_in(client)
        token = csrf_of(page(client, "/ui/blackouts"))
        bad = client.post(
            "/ui/blackouts", data={"csrf_token": token, "duration": "soon", "comment": "x"}
        )
        assert bad.status_code == 400 and "--duration" in bad.get_data(as_text=True)
        made = client.post(
            "/ui/blackouts",
            data={
                "csrf_token": token,
                "duration": "1h",
                "comment": "db migration",
                "service": "api",
            },
        )
        assert made.status_code == 303
        listed = page(client, made.headers["Location"])
        silence_id = re.search(r'data-silence-id="([^"]+)"', listed)
        assert silence_id and "db migration" in listed and "service=&#34;api&#34;" in listed
        ended = client.post(f"/ui/blackouts/{silence_id.group(1)}/end", data={"csrf_token": token})
        assert ended.status_code == 303
        assert "data-silence-id" not in page(client, "/ui/blackouts")
        actions = [(e["actor"], e["action"]) for e in engine.store.list_audit(10)]
        assert ("admin", "blackout_created") in actions and ("admin", "blackout_ended") in actions


def test_with_redis_down_the_console_answers_503_not_a_traceback(
    make_engine: Callable[..., Engine],
) -> None:
    import redis as redis_lib

    from receiver.state.store import Store
    from tests.procs import free_port

    down = Store(redis_lib.Redis(host="127.0.0.1", port=free_port(), socket_connect_timeout=0.5))
    client = console(make_engine(store=down))
    client.set_cookie(security.COOKIE_NAME, "anything")
    answer = client.get("/ui/login")
    assert answer.status_code == 503
    body = answer.get_data(as_text=True)
    assert "state store unreachable" in body and "Traceback" not in body
    assert client.post("/webhook", json=payload(alert("api"))).status_code == 503


def test_a_rollback_page_links_the_revert_commit_and_the_argocd_app(
    make_engine: Callable[..., Engine],
) -> None:
    from receiver.console import data

    engine = make_engine(ARGOCD_SERVER="argocd.example.com", ARGOCD_APP_NAME="api-prod")
    app = create_app(engine.settings, engine=engine, start_sweeper=False)
    record = {
        "service": "api",
        "details": {"revert_commit": "1a2b3c4"},
        "trigger": {"generatorURL": "http://prometheus:9090/graph?g0.expr=x"},
    }
    with app.app_context():
        links = dict(data.rollback_links(record))
    assert links == {
        "revert commit": "https://github.com/acme/gitops/commit/1a2b3c4",
        "Argo CD app": "https://argocd.example.com/applications/api-prod",
        "alert in Prometheus": "http://prometheus:9090/graph?g0.expr=x",
    }


def test_removing_a_token_from_admin_tokens_file_ends_its_sessions(
    make_engine: Callable[..., Engine], tmp_path: Any
) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text("ivy ivy-token-0123456789\nbob bob-token-0123456789\n")
    client = console(make_engine(ADMIN_TOKENS_FILE=str(tokens)))
    assert sign_in(client, token="ivy-token-0123456789").status_code == 303
    assert client.get("/ui/").status_code == 200
    cookie = client.get_cookie(security.COOKIE_NAME)
    assert cookie is not None and "ivy-token" not in cookie.value
    tokens.write_text("bob bob-token-0123456789\n")
    revoked = console(make_engine(ADMIN_TOKENS_FILE=str(tokens)))  # the file is read at start
    revoked.set_cookie(security.COOKIE_NAME, cookie.value)
    assert revoked.get("/ui/").status_code == 303


def test_a_console_blackout_silences_every_trigger_kind_and_ends_as_one_group(
    make_engine: Callable[..., Engine], make_settings: Callable[..., Any]
) -> None:
    """With `triggers:` configured, the console makes one silence per kind, ended together."""
    from dataclasses import replace

    from receiver.clients.alertmanager import AlertmanagerClient
    from receiver.decide.targets import parse_rollback_config
    from tests.procs import Alertmanager

    rules = parse_rollback_config(
        {
            "triggers": [
                {
                    "match": {"sloth_severity": "page"},
                    "tier": "emergency",
                    "service_label": "sloth_service",
                }
            ]
        },
        "production",
        "main",
    ).triggers
    with Alertmanager() as am, AlertmanagerClient(am.url) as alertmanager:
        settings = replace(make_settings(ALERTMANAGER_URL=am.url), triggers=rules)
        client = console(make_engine(settings=settings))
        sign_in(client)
        token = csrf_of(page(client, "/ui/blackouts"))
        made = client.post(
            "/ui/blackouts",
            data={"csrf_token": token, "duration": "1h", "comment": "freeze", "service": "api"},
        )
        assert made.status_code == 303
        assert alertmanager.matching_silences({"sloth_severity": "page", "sloth_service": "api"})
        listed = page(client, "/ui/blackouts")
        ids = re.findall(r'data-silence-id="([^"]+)"', listed)
        assert len(ids) == 2 and "(group " in listed and "[blackout group" not in listed
        ended = client.post(f"/ui/blackouts/{ids[0]}/end", data={"csrf_token": token})
        assert ended.status_code == 303
        assert [alertmanager.get_silence(sid).state for sid in ids] == ["expired", "expired"]
