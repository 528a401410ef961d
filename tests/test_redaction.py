"""No configured secret leaves the receiver: logs, API answers and notifications are redacted."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest
import redis
from hypothesis import given, settings
from hypothesis import strategies as st

from receiver.app import create_app
from receiver.config import Settings
from receiver.pipeline import Engine
from receiver.redaction import REDACTED, Redactor, redact, redact_obj, written_forms
from receiver.secrets import SECRET_NAMES
from receiver.state.store import Store, connect
from receiver.tell import base
from receiver.tell.notify import Notifications
from tests.e2e.stack import RedisServer
from tests.fakes_notify import PagerDutySink, SlackSink
from tests.support import alert, payload

# Secrets with a quote, a backslash and non-ASCII characters (the header-borne ones stay
# latin-1, as HTTP headers must).
ADMIN = 'adm-"tok\\en-1'
WEBHOOK = 'whk-"tok\\en-2'
VALUES = {
    "GITOPS_TOKEN": 'ghp_"quoted\\back-ä€',
    "ARGOCD_PASSWORD": 'argo-pä$$"wörd',
    "ARGOCD_TOKEN": "argo-tøken-\\-3",
    "WEBHOOK_TOKEN": WEBHOOK,
    "ADMIN_TOKEN": ADMIN,
    "PAGERDUTY_KEY": 'pd-kéy-"4\\' + "x" * 22,  # Events API v2 keys are 32 characters
    "SESSION_SECRET": 'sess-"ß\\ecret-5',
    "INCIDENT_TOKEN": "inc-tøk-6",
    "INCIDENT_WEBHOOK": 'https://hooks.example.invalid/in"c-7-ü',
    "INCIDENT_WEBHOOK_TOKEN": 'inc-wh-"8\\',
}
REDIS_PASSWORD = 'rds-"pä\\ss-9'
GIT_PASSWORD = "git-pw-10-s3cret"
GITOPS_REPO = f"https://bot:{GIT_PASSWORD}@git.example.invalid/acme/gitops.git"


def test_the_test_covers_every_registered_secret() -> None:
    covered = set(VALUES) | {"SLACK_WEBHOOK", "REDIS_PASSWORD", "WEBHOOK_PASSWORD"}
    assert covered == set(SECRET_NAMES)


def leaks(text: str, secrets: list[str]) -> list[str]:
    """The secrets found in `text`, in any way they can be written."""
    return [s for s in secrets if any(form in text for form in written_forms(s))]


@pytest.mark.parametrize("secret", [ADMIN, VALUES["GITOPS_TOKEN"], VALUES["ARGOCD_PASSWORD"]])
def test_a_secret_is_redacted_as_raw_text_and_inside_json(secret: str) -> None:
    raw = f"failed with {secret} in it"
    assert redact(raw, [secret]) == f"failed with {REDACTED} in it"
    for ascii_only in (True, False):
        body = json.dumps({"error": raw}, ensure_ascii=ascii_only, separators=(",", ":"))
        redacted = redact(body, [secret])
        assert leaks(redacted, [secret]) == []
        assert json.loads(redacted) == {"error": f"failed with {REDACTED} in it"}


@pytest.mark.parametrize(
    "text, expected",
    [
        (
            "clone https://bot:pw@git.example/g.git failed",
            "clone https://[REDACTED]@git.example/g.git failed",
        ),
        ("redis://:pw@redis:6379/0", "redis://[REDACTED]@redis:6379/0"),
        ("rediss://user@redis:6379", "rediss://[REDACTED]@redis:6379"),
        ("Authorization: Bearer abcdefgh123", "Authorization: Bearer [REDACTED]"),
        ("https://hooks.slack.com/services/T/B/x", REDACTED),
    ],
)
def test_url_userinfo_and_auth_credentials_are_redacted_without_knowing_them(
    text: str, expected: str
) -> None:
    assert redact(text) == expected


def test_userinfo_redaction_does_not_run_across_the_fields_of_compact_json() -> None:
    body = json.dumps({"url": "https://host/x", "email": "a@b.example"}, separators=(",", ":"))
    assert redact(body) == body


def test_data_is_redacted_in_keys_values_lists_and_dataclasses() -> None:
    @dataclass(frozen=True)
    class Note:
        text: str
        count: int

    data = {"a": [f"x {ADMIN}", (Note(ADMIN, 3),)], ADMIN: None}
    assert redact_obj(data, [ADMIN]) == {
        "a": [f"x {REDACTED}", (Note(REDACTED, 3),)],
        REDACTED: None,
    }


def test_a_rotated_secret_is_redacted_from_the_next_text_on() -> None:
    current = ["first-secret"]
    redactor = Redactor(lambda: current)
    assert redactor("first-secret") == REDACTED
    current[0] = "second-secret"
    assert (redactor("first-secret"), redactor("second-secret")) == ("first-secret", REDACTED)


# -- end to end: secrets configured everywhere, every exit scanned -------------------------


@pytest.fixture
def protected_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(workdir=tmp_path / "redis").start()
    try:
        redis.Redis(port=server.port).config_set("requirepass", REDIS_PASSWORD)
        yield server
    finally:
        server.stop()


@pytest.fixture
def sinks() -> Iterator[tuple[SlackSink, PagerDutySink]]:
    with SlackSink() as slack, PagerDutySink() as pagerduty:
        yield slack, pagerduty


@pytest.fixture
def leaky_settings(
    tmp_path: Path, protected_redis: RedisServer, sinks: tuple[SlackSink, PagerDutySink]
) -> Settings:
    slack, pagerduty = sinks
    env = {
        "SERVICE_NAME": "api",
        "GITOPS_REPO": GITOPS_REPO,
        "GITOPS_PATH": "k8s/api",
        "BLACKOUT_WINDOWS": "none",
        "ROLLBACK_MODE": "gitops",
        "DRY_RUN": "true",
        "STABILIZATION_SECONDS": "0",
        "PROMETHEUS_URL": "http://127.0.0.1:9",
        "REDIS_URL": f"redis://default:{quote(REDIS_PASSWORD, safe='')}@127.0.0.1:"
        f"{protected_redis.port}/0",
        "REDIS_PREFIX": "redaction-test:",
        "SLACK_WEBHOOK": slack.url,
        "PAGERDUTY_URL": pagerduty.url,
        "WEBHOOK_USERNAME": "am",
        "WEBHOOK_PASSWORD": 'whp-"pä\\ss-11',
        "LOG_FILE": str(tmp_path / "receiver.log"),
    }
    for name, value in VALUES.items():  # half of them as files, as in a Kubernetes Secret
        if len(name) % 2:
            (tmp_path / name).write_text(value, encoding="utf-8")
            env[f"{name}_FILE"] = str(tmp_path / name)
        else:
            env[name] = value
    return Settings.from_env(env)


def all_secrets(settings: Settings) -> list[str]:
    every = [*VALUES.values(), REDIS_PASSWORD, GIT_PASSWORD, settings.slack_webhook.get() or ""]
    return [*every, 'whp-"pä\\ss-11']


def test_secrets_configured_everywhere_never_reach_logs_answers_or_notifications(
    leaky_settings: Settings,
    make_engine: Callable[..., Engine],
    sinks: tuple[SlackSink, PagerDutySink],
) -> None:
    settings = leaky_settings
    secrets = all_secrets(settings)
    unknown = [
        v for v in settings.secret_values() if not any(v in written_forms(s) for s in secrets)
    ]
    assert unknown == [] and REDIS_PASSWORD in settings.secret_values()
    store = Store(connect(settings), prefix=settings.redis_prefix)
    engine = make_engine(store=store, settings=settings)
    app = create_app(settings, engine=engine, start_sweeper=False)
    client = app.test_client()
    admin = {"Authorization": f"Bearer {ADMIN}"}
    hook = {"Authorization": f"Bearer {WEBHOOK}"}
    # Secrets smuggled into alert labels reach records, check details and log lines.
    refused = alert(fingerprint="a1", gitops_path=VALUES["GITOPS_TOKEN"], note=ADMIN)
    passing = alert(
        fingerprint="b2", note=VALUES["PAGERDUTY_KEY"], starts_at="2026-11-26T13:00:00Z"
    )
    delivery = payload(refused, passing)

    answers = [client.post("/webhook", json=delivery, headers=hook)]
    assert answers[0].status_code == 200
    decisions = [a["reason"] for a in answers[0].get_json()["alerts"]]
    assert decisions == ["no_target", "dry_run"]
    answers += [
        client.get("/api/v1/rollbacks", headers=admin),
        client.get("/api/v1/status?service=api", headers=admin),
        client.post("/api/v1/explain", json=delivery, headers=admin),
        client.post("/api/v1/rollbacks", json={"service": VALUES["ARGOCD_TOKEN"]}, headers=admin),
        client.get("/api/v1/rollbacks/" + quote(VALUES["SESSION_SECRET"], safe=""), headers=admin),
    ]
    for answer in answers[1:4]:
        assert answer.status_code == 200, answer.get_data(as_text=True)
    texts = [a.get_data(as_text=True) for a in answers]
    assert [leaks(text, secrets) for text in texts] == [[]] * len(texts)
    records = answers[1].get_json()["rollbacks"]
    no_target = next(r for r in records if r["reason"] == "no_target")
    detail = json.dumps(no_target)
    assert "gitops_path" in detail and REDACTED in detail
    explained = json.dumps(answers[3].get_json())
    assert "https://[REDACTED]@git.example.invalid/acme/gitops.git" in explained

    slack, pagerduty = sinks
    notifications = Notifications.from_settings(settings)
    leaky = base.Event(
        kind=base.FAILED,
        service="api",
        namespace="production",
        tier="emergency",
        reason=f"push to {GITOPS_REPO} failed: token {VALUES['GITOPS_TOKEN']}",
        rollback_id="r-1",
        error=f"argocd said {VALUES['ARGOCD_PASSWORD']} / {VALUES['INCIDENT_WEBHOOK']}",
        stage="gitops",
        details={"redis": settings.redis_url, "note": VALUES["INCIDENT_WEBHOOK_TOKEN"]},
    )
    notifications.notify(leaky)
    assert notifications.flush(10)
    notifications.close()
    bodies = [r.body.decode() for r in slack.wait_for(1)]
    events = pagerduty.wait_for(1)
    for event in events:
        sent = dict(event.json)
        assert sent.pop("routing_key") == VALUES["PAGERDUTY_KEY"]  # its own destination
        bodies.append(json.dumps(sent))
    assert [leaks(body, secrets) for body in bodies] == [[]] * len(bodies)
    assert any(REDACTED in body for body in bodies)

    log_text = Path(settings.log_file or "").read_text(encoding="utf-8")
    assert "label override refused" in log_text
    assert leaks(log_text, secrets) == []
    store.client.flushdb()


def test_a_log_line_naming_secrets_is_redacted_in_the_log_file(leaky_settings: Settings) -> None:
    import logging

    from receiver.logs import setup_logging

    setup_logging("INFO", leaky_settings.log_file, leaky_settings.secret_values)
    logger = logging.getLogger("receiver.test")
    logger.warning(
        "cannot reach %s with %s",
        GITOPS_REPO,
        VALUES["ARGOCD_PASSWORD"],
        extra={"token": VALUES["GITOPS_TOKEN"], "nested": {"k": [ADMIN]}},
    )
    try:
        raise RuntimeError(f"boom {VALUES['SESSION_SECRET']}")
    except RuntimeError:
        logger.exception("failed")
    text = Path(leaky_settings.log_file or "").read_text(encoding="utf-8")
    lines = [json.loads(line) for line in text.splitlines()]
    assert [line["msg"] for line in lines][-2:] == [
        "cannot reach https://[REDACTED]@git.example.invalid/acme/gitops.git with [REDACTED]",
        "failed",
    ]
    assert lines[-2]["token"] == REDACTED and lines[-2]["nested"] == {"k": [REDACTED]}
    assert lines[-1]["error"] == f"boom {REDACTED}"
    assert leaks(text, all_secrets(leaky_settings)) == []


def test_another_librarys_warning_goes_through_the_same_redaction(
    leaky_settings: Settings,
) -> None:
    """urllib3, PyGithub or werkzeug warnings reach the root logger: redacted there too."""
    import logging

    from receiver.logs import setup_logging

    setup_logging("INFO", leaky_settings.log_file, leaky_settings.secret_values)
    logging.getLogger("urllib3.connectionpool").warning(
        "Retrying after connection broken: %s token=%s", GITOPS_REPO, VALUES["GITOPS_TOKEN"]
    )
    logging.getLogger("urllib3.connectionpool").debug("below WARNING: %s", VALUES["ADMIN_TOKEN"])
    text = Path(leaky_settings.log_file or "").read_text(encoding="utf-8")
    (line,) = [json.loads(x) for x in text.splitlines() if "Retrying" in x]
    assert line["logger"] == "urllib3.connectionpool"
    assert VALUES["GITOPS_TOKEN"] not in text and "below WARNING" not in text
    assert leaks(text, all_secrets(leaky_settings)) == []


def _every_pattern(text: str, secrets: list[str]) -> str:
    """Redaction with every pattern run on every text: what the prefilters must not change."""
    from receiver import redaction

    text = Redactor(lambda: secrets)._secret_pattern().sub(REDACTED, text)  # type: ignore[union-attr]
    text = redaction.redact_userinfo(text)
    text = redaction._SLACK_HOOK.sub(REDACTED, text)
    return redaction._AUTH_HEADER.sub(lambda m: m.group("scheme") + " " + REDACTED, text)


_PIECES = [
    "https://",
    "http://u:p@",
    "://",
    "ftp://x@y",
    "hooks.slack.com/services/T0/B0/x",
    "https://hooks.slack.com/services/T1/B2/abc",
    "Bearer ",
    "bearer\t",
    "BASIC ",
    "Basic",
    "ba\u017fic ",
    "BEARER ",
    "beaRer",
    "abcdefgh12345678",
    "\u017f",
    "\u212a",
    "\u0130",
    "é",
    "@",
    " ",
    '"',
    "\\",
    "{",
    "}",
    ",",
    "tok-secret-1",
    "a.b+c-d",
]


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(_PIECES) | st.text(max_size=6), max_size=14))
def test_the_shortcuts_give_what_running_every_pattern_gives(parts: list[str]) -> None:
    text = "".join(parts)
    secrets = ["tok-secret-1"]
    assert Redactor(lambda: secrets)(text) == _every_pattern(text, secrets)


@pytest.mark.parametrize(
    "text",
    ["Authorization: ba\u017fic dXNlcjpwYXNzd29yZA==", "token: Bearer abcdefgh12345678 in ASCII"],
)
def test_credentials_are_found_whether_or_not_the_text_is_ascii(text: str) -> None:
    assert "dXNlcjpwYXNzd29yZA" not in redact(text)
    assert "abcdefgh12345678" not in redact(text)
