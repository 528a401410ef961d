"""The Argo CD REST client against the fake Argo CD: auth, session cache, retries, errors."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest

from receiver.clients.argocd import (
    AUTOSYNC_REFUSAL,
    ArgoCDAPIError,
    ArgoCDBadAnswer,
    ArgoCDClient,
    ArgoCDLoginError,
    ArgoCDUnreachable,
    forget_sessions,
)
from receiver.config import Secret
from tests.fake_time import Sleeps
from tests.fakes.argocd import FakeApp, FakeArgoCD, running_argocd

V1, V2, V3, REVERT = "1" * 40, "2" * 40, "3" * 40, "4" * 40
PASSWORD = "argo-pass"
APP_PATH = "/api/v1/applications/checkout"


@pytest.fixture(autouse=True)
def no_cached_sessions() -> Iterator[None]:
    forget_sessions()
    yield
    forget_sessions()


@pytest.fixture
def argocd() -> Iterator[FakeArgoCD]:
    app = FakeApp("checkout", revisions=[V1, V2, V3], resolve=lambda: V3)
    with running_argocd(app, password=PASSWORD, api_tokens=("static-api-token",)) as fake:
        yield fake


def client(fake: FakeArgoCD, sleep: Sleeps | None = None, **kwargs: Any) -> ArgoCDClient:
    options: dict[str, Any] = {
        "password": Secret("ARGOCD_PASSWORD", PASSWORD),
        "plaintext": True,
        "sleep": sleep or Sleeps(),
    }
    options.update(kwargs)
    return ArgoCDClient(fake.address, **options)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_the_client_logs_in_once_and_reuses_the_session(argocd: FakeArgoCD) -> None:
    with client(argocd) as api:
        api.get_app("checkout")
        api.get_app("checkout")
    assert argocd.logins == 1
    assert argocd.faults.count("POST", "/api/v1/session") == 1


def test_clients_built_per_rollback_share_one_session_per_server_and_account(
    argocd: FakeArgoCD,
) -> None:
    for _ in range(3):  # inspect, execute, the next rollback: each builds its own client
        client(argocd).get_app("checkout")
    assert argocd.logins == 1
    argocd.users["other"] = "other-pass"
    client(argocd, username="other", password=Secret("ARGOCD_PASSWORD", "other-pass")).get_app(
        "checkout"
    )
    assert argocd.logins == 2


def test_an_expired_session_is_renewed_once(argocd: FakeArgoCD) -> None:
    with client(argocd) as api:
        api.get_app("checkout")
        argocd.expire_sessions()
        assert api.get_app("checkout").name == "checkout"
    assert argocd.logins == 2


def test_a_wrong_password_fails_with_argo_cds_message_and_no_secret(argocd: FakeArgoCD) -> None:
    with client(argocd, password=Secret("ARGOCD_PASSWORD", "nope-secret")) as api:
        with pytest.raises(ArgoCDLoginError) as caught:
            api.get_app("checkout")
    assert caught.value.status == 401
    assert "Invalid username or password" in str(caught.value)
    assert "nope-secret" not in str(caught.value)
    assert argocd.faults.count("POST", "/api/v1/session") == 1


def test_an_api_token_is_used_without_logging_in(argocd: FakeArgoCD) -> None:
    with client(argocd, password=None, token=Secret("ARGOCD_TOKEN", "static-api-token")) as api:
        api.get_app("checkout")
    assert argocd.logins == 0
    assert argocd.faults.calls[-1].headers["Authorization"] == "Bearer static-api-token"


def test_server_errors_on_reads_are_retried_with_backoff(argocd: FakeArgoCD) -> None:
    argocd.faults.fail(
        "GET",
        APP_PATH + "$",
        503,
        {"error": "unavailable", "code": 14, "message": "unavailable"},
        times=2,
    )
    sleeps = Sleeps()
    with client(argocd, sleeps) as api:
        assert api.get_app("checkout").name == "checkout"
    assert sleeps.waits == [0.5, 1.0]
    assert argocd.faults.count("GET", APP_PATH + "$") == 3


def test_persistent_server_errors_on_reads_fail_after_bounded_attempts(
    argocd: FakeArgoCD,
) -> None:
    argocd.faults.fail("GET", APP_PATH + "$", 500, {"message": "boom"}, times=10)
    with client(argocd, attempts=3) as api, pytest.raises(ArgoCDAPIError) as caught:
        api.get_app("checkout")
    assert caught.value.status == 500 and "boom" in str(caught.value)
    assert argocd.faults.count("GET", APP_PATH + "$") == 3


@pytest.mark.parametrize(
    ("method", "path", "call"),
    [
        ("POST", "/rollback", lambda api: api.rollback("checkout", 1)),
        ("POST", "/sync", lambda api: api.sync("checkout")),
        ("PATCH", APP_PATH + "$", lambda api: api.patch_app("checkout", {"spec": {}})),
    ],
)
def test_writes_are_sent_once_whatever_the_answer(
    argocd: FakeArgoCD, method: str, path: str, call: Any
) -> None:
    argocd.faults.fail(method, path, 502, "<html>Bad Gateway</html>", times=5)
    with client(argocd) as api, pytest.raises(ArgoCDAPIError) as caught:
        call(api)
    assert caught.value.status == 502 and caught.value.refused is False
    assert "<html>" not in str(caught.value) and "BAD GATEWAY" in str(caught.value).upper()
    assert argocd.faults.count(method, path) == 1


def test_client_errors_carry_argo_cds_status_and_message(argocd: FakeArgoCD) -> None:
    with client(argocd) as api, pytest.raises(ArgoCDAPIError) as caught:
        api.get_app("missing-app")
    assert caught.value.status == 403 and caught.value.message == "permission denied"
    assert caught.value.refused is True
    assert argocd.faults.count("GET", "/missing-app") == 1


def test_an_answer_that_is_not_json_is_a_bad_answer(argocd: FakeArgoCD) -> None:
    argocd.faults.fail("GET", APP_PATH + "$", 200, "<html>login portal</html>")
    with client(argocd) as api, pytest.raises(ArgoCDBadAnswer) as caught:
        api.get_app("checkout")
    assert "not JSON" in str(caught.value)


def test_json_that_is_not_an_application_is_a_bad_answer(argocd: FakeArgoCD) -> None:
    argocd.faults.fail("GET", APP_PATH + "$", 200, {"status": {"history": {"id": 1}}})
    with client(argocd) as api, pytest.raises(ArgoCDBadAnswer) as caught:
        api.get_app("checkout")
    assert "status.history is not a list" in str(caught.value)


def test_connection_errors_are_retried_then_reported_as_unreachable() -> None:
    sleeps = Sleeps()
    api = ArgoCDClient(
        f"127.0.0.1:{free_port()}",
        token=Secret("ARGOCD_TOKEN", "t"),
        plaintext=True,
        attempts=3,
        sleep=sleeps,
    )
    with api, pytest.raises(ArgoCDUnreachable) as caught:
        api.get_app("checkout")
    assert "cannot reach Argo CD" in str(caught.value)
    assert len(sleeps.waits) == 2


def test_a_write_whose_answer_is_late_is_reported_unreachable_and_happened(
    argocd: FakeArgoCD,
) -> None:
    argocd.apps["checkout"].ticks_to_finish = 100
    argocd.answer_late("POST", "/rollback", 1.5)
    with client(argocd, timeout=0.3) as api, pytest.raises(ArgoCDUnreachable):
        api.rollback("checkout", 1)
    assert argocd.apps["checkout"].operation is not None  # Argo CD acted all the same


def test_tls_settings_choose_scheme_and_verification() -> None:
    with ArgoCDClient("argocd.example:443", insecure=True) as api:
        assert api.base_url == "https://argocd.example:443"
        assert api.verify is False
    with ArgoCDClient("argocd:80", plaintext=True) as api:
        assert api.base_url == "http://argocd:80" and api.verify is True


def test_the_fake_refuses_a_rollback_with_auto_sync_like_argo_cd(argocd: FakeArgoCD) -> None:
    argocd.apps["checkout"].automated = {"prune": True, "selfHeal": True}
    with client(argocd) as api, pytest.raises(ArgoCDAPIError) as caught:
        api.rollback("checkout", 1)
    assert caught.value.status == 400 and caught.value.message == AUTOSYNC_REFUSAL


def test_a_sync_naming_another_revision_with_auto_sync_is_refused(argocd: FakeArgoCD) -> None:
    argocd.apps["checkout"].automated = {"prune": True}
    with client(argocd) as api, pytest.raises(ArgoCDAPIError) as caught:
        api.sync("checkout", REVERT)
    assert caught.value.message == f"Cannot sync to {REVERT}: auto-sync currently set to main"


def test_the_fake_records_the_account_that_started_an_operation(argocd: FakeArgoCD) -> None:
    with client(argocd) as api:
        api.rollback("checkout", 1)
        api.get_app("checkout")
        api.get_app("checkout")
        state = api.get_app("checkout")
    assert [e.revision for e in state.entries_initiated_by("admin")] == [V2]
