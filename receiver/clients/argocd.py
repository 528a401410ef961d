"""A small Argo CD REST client: session or token auth, reads retried, writes sent once.

Errors are distinct: `ArgoCDUnreachable` (connection error or timeout: a write may or may not
have happened), `ArgoCDBadAnswer` (not JSON, or not the shape asked for), `ArgoCDAPIError`
(Argo CD's status and message; `ArgoCDLoginError` when the login itself was refused).

Session tokens are cached per server and account for the process, so building a client per
rollback (or twice) logs in once; a token rejected with 401 is renewed once. GETs are retried
with exponential backoff on 5xx and I/O errors, bounded. Writes (rollback, sync, patch) are
never retried here: the caller re-reads the application and decides (API-FACTS C.3, C.5).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

import requests
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential

from receiver.clients.argocd_app import AppShapeError, AppState
from receiver.secrets import Secret

REQUEST_TIMEOUT_SECONDS = 15.0
ATTEMPTS = 4

AUTOSYNC_REFUSAL = "rollback cannot be initiated when auto-sync is enabled"
OPERATION_IN_PROGRESS = "another operation is already in progress"

_SESSIONS: dict[tuple[str, str], str] = {}  # (base URL, account) -> session token
_SESSIONS_LOCK = threading.Lock()


class ArgoCDError(Exception):
    """Any failure talking to Argo CD; `what` says which call, `message` what went wrong."""

    def __init__(self, what: str, message: str, text: str | None = None) -> None:
        super().__init__(text or f"{what}: {message}")
        self.what = what
        self.message = message


class ArgoCDUnreachable(ArgoCDError):
    """No answer: connection refused, reset or timed out."""


class ArgoCDBadAnswer(ArgoCDError):
    """An answer that is not JSON or not the expected shape."""


class ArgoCDAPIError(ArgoCDError):
    """Argo CD (or a proxy in front of it) answered an error status."""

    def __init__(self, what: str, status: int, message: str) -> None:
        super().__init__(what, message, f"{what}: Argo CD answered {status}: {message}")
        self.status = status

    @property
    def refused(self) -> bool:
        """A definite refusal: the request was understood and not carried out."""
        in_doubt = self.status >= 500 or self.status in (408, 429)
        return not in_doubt and OPERATION_IN_PROGRESS not in self.message


class ArgoCDLoginError(ArgoCDAPIError):
    """The session login was refused (bad credentials): renewing cannot help."""


def _retryable(exc: BaseException) -> bool:
    if isinstance(exc, ArgoCDUnreachable):
        return True
    return isinstance(exc, ArgoCDAPIError) and exc.status >= 500


def _error_text(response: requests.Response) -> str:
    """The grpc-gateway error message, or the plain-text body (e.g. 415, a proxy's 502)."""
    try:
        body = response.json()
    except ValueError:
        text = response.text.strip()
        if not text or text.startswith("<"):  # a proxy's HTML error page says no more
            return response.reason or "no message"
        return text[:200]
    if isinstance(body, dict):
        return str(body.get("message") or body.get("error") or response.reason)
    return response.reason


def forget_sessions() -> None:
    """Drop every cached session token (tests, credential rotation)."""
    with _SESSIONS_LOCK:
        _SESSIONS.clear()


class ArgoCDClient:
    """Argo CD REST API client for one server and account."""

    def __init__(
        self,
        server: str,
        *,
        username: str = "admin",
        password: Secret | None = None,
        token: Secret | None = None,
        plaintext: bool = False,
        insecure: bool = False,
        timeout: float = REQUEST_TIMEOUT_SECONDS,
        attempts: int = ATTEMPTS,
        backoff: float = 0.5,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.base_url = f"{'http' if plaintext else 'https'}://{server}"
        self.username = username
        self.password = password or Secret("ARGOCD_PASSWORD")
        self.token = token or Secret("ARGOCD_TOKEN")
        self.timeout = timeout  # per request; a write that times out is in doubt, not failed
        self.attempts = attempts
        self.backoff = backoff
        self.sleep = sleep
        self.verify = not insecure
        self._login_lock = threading.Lock()

    def close(self) -> None:
        """Nothing to release: every call uses its own HTTP session."""

    def __enter__(self) -> ArgoCDClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def account(self) -> str:
        """The Argo CD account history entries name when the receiver deployed them."""
        return self.username

    # -- transport -------------------------------------------------------------------------

    def _exchange(
        self,
        method: str,
        path: str,
        body: Any,
        params: dict[str, str] | None,
        timeout: float,
        what: str,
        bearer: str | None,
    ) -> Any:
        headers = {"Accept": "application/json"}
        if bearer is not None:
            headers["Authorization"] = f"Bearer {bearer}"
        try:
            with requests.Session() as http:
                response = http.request(
                    method,
                    f"{self.base_url}{path}",
                    json=body,
                    params=params,
                    headers=headers,
                    timeout=timeout,
                    verify=self.verify,
                )
        except requests.RequestException as exc:
            raise ArgoCDUnreachable(
                what, f"cannot reach Argo CD at {self.base_url} ({exc.__class__.__name__})"
            ) from None
        if response.status_code >= 400:
            raise ArgoCDAPIError(what, response.status_code, _error_text(response))
        if not response.content:
            return {}
        try:
            return response.json()
        except ValueError:
            raise ArgoCDBadAnswer(what, "the answer is not JSON") from None

    def _login(self, timeout: float) -> str:
        what = "log in to Argo CD"
        password = self.password.get()
        if not password:
            raise ArgoCDError(what, "no ARGOCD_TOKEN and no ARGOCD_PASSWORD to log in with")
        try:
            body = self._exchange(
                "POST",
                "/api/v1/session",
                {"username": self.username, "password": password},
                None,
                timeout,
                what,
                None,
            )
        except ArgoCDAPIError as exc:
            if exc.status >= 500:
                raise
            raise ArgoCDLoginError(what, exc.status, exc.message) from None
        token = body.get("token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise ArgoCDBadAnswer(what, "session answer without a token")
        return token

    def _bearer(self, timeout: float, rejected: str | None = None) -> str:
        """ARGOCD_TOKEN, else the cached session token (logging in when there is none)."""
        static = self.token.get()
        if static:
            return static
        key = (self.base_url, self.username)
        with self._login_lock:
            with _SESSIONS_LOCK:
                cached = _SESSIONS.get(key)
            if cached is not None and cached != rejected:
                return cached
            fresh = self._login(timeout)
            with _SESSIONS_LOCK:
                _SESSIONS[key] = fresh
            return fresh

    def _call(
        self,
        method: str,
        path: str,
        body: Any,
        params: dict[str, str] | None,
        timeout: float,
        what: str,
    ) -> Any:
        """One authenticated exchange; a session token answered 401 is renewed once."""
        bearer = self._bearer(timeout)
        try:
            return self._exchange(method, path, body, params, timeout, what, bearer)
        except ArgoCDAPIError as exc:
            if exc.status != 401 or self.token.get():
                raise
        return self._exchange(
            method, path, body, params, timeout, what, self._bearer(timeout, rejected=bearer)
        )

    def _read(
        self, path: str, params: dict[str, str] | None, timeout: float, what: str, attempts: int
    ) -> Any:
        retrying = Retrying(
            stop=stop_after_attempt(attempts),
            wait=wait_exponential(multiplier=self.backoff, max=8),
            retry=retry_if_exception(_retryable),
            sleep=self.sleep,
            reraise=True,
        )
        return retrying(self._call, "GET", path, None, params, timeout, what)

    # -- API -------------------------------------------------------------------------------

    def get_app(
        self,
        name: str,
        refresh: str | None = None,
        timeout: float | None = None,
        attempts: int | None = None,
    ) -> AppState:
        """GET the application (`refresh=hard` blocks until reconciled), parsed."""
        what = f"read application {name}"
        params = {"refresh": refresh} if refresh else None
        body = self._read(
            f"/api/v1/applications/{name}",
            params,
            timeout or self.timeout,
            what,
            attempts or self.attempts,
        )
        try:
            return AppState.from_api(body)
        except AppShapeError as exc:
            raise ArgoCDBadAnswer(what, f"not an Application ({exc})") from None

    def rollback(self, name: str, history_id: int, prune: bool = False) -> None:
        """POST the rollback to a history id; sent once."""
        self._call(
            "POST",
            f"/api/v1/applications/{name}/rollback",
            {"name": name, "id": history_id, "prune": prune, "dryRun": False},
            None,
            self.timeout,
            f"roll back application {name}",
        )

    def sync(self, name: str, revision: str | None = None, prune: bool = False) -> None:
        """POST a sync (to `revision`, else the target revision); sent once."""
        body: dict[str, Any] = {"name": name, "prune": prune, "dryRun": False}
        if revision:
            body["revision"] = revision
        self._call(
            "POST",
            f"/api/v1/applications/{name}/sync",
            body,
            None,
            self.timeout,
            f"sync application {name}",
        )

    def patch_app(self, name: str, patch: dict[str, Any]) -> None:
        """PATCH the application with a JSON merge patch; sent once."""
        self._call(
            "PATCH",
            f"/api/v1/applications/{name}",
            {"name": name, "patchType": "merge", "patch": json.dumps(patch)},
            None,
            self.timeout,
            f"patch application {name}",
        )
