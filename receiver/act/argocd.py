"""Argo CD: a small REST client (requests + tenacity) and the three Argo CD rollback steps.

- `ArgoCDRollback` (mode `argocd`): POST /api/v1/applications/{app}/rollback to the previous
  history id (or TARGET_REVISION). Argo CD refuses it while automated sync is on ("rollback
  cannot be initiated when auto-sync is enabled", HTTP 400); `inspect` reports that as
  `autosync_blocks` so the pipeline skips with `autosync_enabled`, unless
  ARGOCD_DISABLE_AUTOSYNC=true, which patches `spec.syncPolicy.automated` to null first and
  records `autosync_disabled` (the operator re-enables it; the old policy is in the record).
- `ArgoCDSync` (mode `both`): after the git revert, a hard refresh. With auto-sync on, Argo CD
  deploys the commit itself (a sync naming another revision than targetRevision is refused:
  "Cannot sync to ...: auto-sync currently set to ..."), so the receiver only syncs, without
  a revision, when no operation starts within a short wait. With auto-sync off it syncs the
  revert commit.
- `ArgoCDWatch` (mode `gitops` with an app configured): changes nothing; validates.

All three validate the same way: poll the app until it is Synced at the expected revision and
Healthy with no operation running; Degraded, a Failed/Error operation or the timeout fail with
stage `validation`.

The client logs in with ARGOCD_USERNAME/PASSWORD (POST /api/v1/session; the token is cached
and renewed once on a 401) or uses ARGOCD_TOKEN. 5xx answers and connection errors are retried
with exponential backoff, bounded; 4xx answers are not.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import requests
from tenacity import (
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
)

from receiver.act.base import ActionContext, RollbackAction, RollbackJob, TargetFacts
from receiver.errors import ActionError
from receiver.secrets import Secret

STAGE = "argocd"
INSPECT_TIMEOUT_SECONDS = 3.0
REQUEST_TIMEOUT_SECONDS = 15.0
REFRESH_TIMEOUT_SECONDS = 60.0  # GET ?refresh=hard blocks until the controller reconciled
ATTEMPTS = 4
AUTOSYNC_WAIT_SECONDS = 15.0  # how long auto-sync gets to start deploying the revert commit
POLL_SECONDS = 5.0

AUTOSYNC_REFUSAL = "rollback cannot be initiated when auto-sync is enabled"
OPERATION_IN_PROGRESS = "another operation is already in progress"
FINISHED_PHASES = ("Succeeded", "Failed", "Error")


class ArgoCDError(Exception):
    """Argo CD answered with an error (or could not be reached: status 0)."""

    def __init__(self, status: int, message: str, what: str) -> None:
        super().__init__(
            f"{what}: Argo CD answered {status}: {message}" if status else f"{what}: {message}"
        )
        self.status = status
        self.message = message
        self.what = what


class ArgoCDLoginError(ArgoCDError):
    """The session login itself failed (bad credentials): renewing the session cannot help."""


def _retryable(exc: BaseException) -> bool:
    if isinstance(exc, requests.RequestException):
        return True
    return isinstance(exc, ArgoCDError) and exc.status >= 500


class ArgoCDClient:
    """Argo CD REST API client: session or token auth, bounded retries of 5xx and I/O errors."""

    def __init__(
        self,
        server: str,
        *,
        username: str = "admin",
        password: Secret | None = None,
        token: Secret | None = None,
        plaintext: bool = False,
        insecure: bool = False,
        attempts: int = ATTEMPTS,
        backoff: float = 0.5,
        sleep: Callable[[float], None] = time.sleep,
        session: requests.Session | None = None,
    ) -> None:
        self.base_url = f"{'http' if plaintext else 'https'}://{server}"
        self.username = username
        self.password = password or Secret("ARGOCD_PASSWORD")
        self.token = token or Secret("ARGOCD_TOKEN")
        self.attempts = attempts
        self.backoff = backoff
        self.sleep = sleep
        # No session is kept between calls unless one is given: actions are built per rollback
        # and dropped without a close, and a rollback makes only a handful of calls.
        self.session = session
        self.verify = not insecure
        self._session_token: str | None = None
        self._lock = threading.Lock()

    def close(self) -> None:
        if self.session is not None:
            self.session.close()

    def __enter__(self) -> ArgoCDClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- transport -------------------------------------------------------------------------

    def _login(self, timeout: float) -> str:
        password = self.password.get()
        if not password:
            raise ArgoCDError(
                0, "no ARGOCD_TOKEN and no ARGOCD_PASSWORD to log in with", "log in to Argo CD"
            )
        try:
            body = self._send(
                "POST",
                "/api/v1/session",
                {"username": self.username, "password": password},
                None,
                timeout,
                "log in to Argo CD",
                auth=False,
            )
        except ArgoCDError as exc:
            raise ArgoCDLoginError(exc.status, exc.message, exc.what) from None
        token = body.get("token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise ArgoCDError(200, "session answer without a token", "log in to Argo CD")
        return token

    def _bearer(self, timeout: float, renew: bool = False) -> str:
        static = self.token.get()
        if static:
            return static
        with self._lock:
            if renew or self._session_token is None:
                self._session_token = self._login(timeout)
            return self._session_token

    def _send(
        self,
        method: str,
        path: str,
        body: Any,
        params: dict[str, str] | None,
        timeout: float,
        what: str,
        auth: bool = True,
        renew: bool = False,
        attempts: int | None = None,
    ) -> Any:
        """One HTTP exchange, retried on 5xx and connection errors; 4xx raised at once."""
        headers = {"Accept": "application/json"}
        if auth:
            headers["Authorization"] = f"Bearer {self._bearer(timeout, renew)}"

        def exchange() -> Any:
            http = self.session or requests.Session()
            try:
                response = http.request(
                    method,
                    f"{self.base_url}{path}",
                    json=body,
                    params=params,
                    headers=headers,
                    timeout=timeout,
                    verify=self.verify,
                )
            finally:
                if http is not self.session:
                    http.close()
            if response.status_code >= 400:
                raise ArgoCDError(response.status_code, _error_text(response), what)
            return response.json() if response.content else {}

        retrying = Retrying(
            stop=stop_after_attempt(attempts or self.attempts),
            wait=wait_exponential(multiplier=self.backoff, max=8),
            retry=retry_if_exception(_retryable),
            sleep=self.sleep,
            reraise=True,
        )
        try:
            return retrying(exchange)
        except requests.RequestException as exc:
            raise ArgoCDError(
                0, f"cannot reach Argo CD at {self.base_url} ({exc.__class__.__name__})", what
            ) from None
        except ValueError:
            raise ArgoCDError(200, "answer is not JSON", what) from None

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        params: dict[str, str] | None = None,
        timeout: float = REQUEST_TIMEOUT_SECONDS,
        what: str = "Argo CD request",
        attempts: int | None = None,
    ) -> Any:
        """An authenticated call; a session token rejected with 401 is renewed once."""
        try:
            return self._send(method, path, body, params, timeout, what, attempts=attempts)
        except ArgoCDError as exc:
            if exc.status != 401 or self.token.get() or isinstance(exc, ArgoCDLoginError):
                raise
        return self._send(method, path, body, params, timeout, what, renew=True, attempts=attempts)

    # -- API -------------------------------------------------------------------------------

    def get_app(
        self,
        name: str,
        refresh: str | None = None,
        timeout: float = REQUEST_TIMEOUT_SECONDS,
        attempts: int | None = None,
    ) -> dict[str, Any]:
        params = {"refresh": refresh} if refresh else None
        app: dict[str, Any] = self.request(
            "GET",
            f"/api/v1/applications/{name}",
            None,
            params,
            timeout,
            f"read application {name}",
            attempts,
        )
        return app

    def rollback(self, name: str, history_id: int, prune: bool = False) -> dict[str, Any]:
        app: dict[str, Any] = self.request(
            "POST",
            f"/api/v1/applications/{name}/rollback",
            {"name": name, "id": history_id, "prune": prune, "dryRun": False},
            what=f"roll back application {name}",
        )
        return app

    def sync(self, name: str, revision: str | None = None, prune: bool = False) -> dict[str, Any]:
        body: dict[str, Any] = {"name": name, "prune": prune, "dryRun": False}
        if revision:
            body["revision"] = revision
        app: dict[str, Any] = self.request(
            "POST", f"/api/v1/applications/{name}/sync", body, what=f"sync application {name}"
        )
        return app

    def patch_app(self, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        app: dict[str, Any] = self.request(
            "PATCH",
            f"/api/v1/applications/{name}",
            {"name": name, "patchType": "merge", "patch": json.dumps(patch)},
            what=f"patch application {name}",
        )
        return app


def _error_text(response: requests.Response) -> str:
    """The grpc-gateway error message, or the plain-text body (e.g. 415)."""
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:200] or response.reason
    if isinstance(body, dict):
        return str(body.get("message") or body.get("error") or response.reason)
    return response.reason


# -- reading an Application --------------------------------------------------------------------


def autosync_enabled(app: dict[str, Any]) -> bool:
    """Argo CD's IsAutomatedSyncEnabled: `automated` set and `enabled` not false."""
    automated = ((app.get("spec") or {}).get("syncPolicy") or {}).get("automated")
    if automated is None:
        return False
    return not (isinstance(automated, dict) and automated.get("enabled") is False)


def history(app: dict[str, Any]) -> list[dict[str, Any]]:
    return list((app.get("status") or {}).get("history") or [])


def deployed_revision(app: dict[str, Any]) -> str | None:
    """The revision last deployed: the newest history entry (else the compared revision).

    `status.sync.revision` is what the target revision resolves to now (git HEAD), which
    after an Argo CD rollback is not what runs; the history says what was deployed.
    """
    entries = history(app)
    if entries and entries[-1].get("revision"):
        return str(entries[-1]["revision"])
    revision = ((app.get("status") or {}).get("sync") or {}).get("revision")
    return str(revision) if revision else None


def parse_time(text: str | None) -> float | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def newest_deploy_at(app: dict[str, Any]) -> float | None:
    stamps = [parse_time(e.get("deployedAt")) for e in history(app)]
    found = [s for s in stamps if s is not None]
    return max(found) if found else None


def operation_running(app: dict[str, Any]) -> bool:
    phase = ((app.get("status") or {}).get("operationState") or {}).get("phase")
    return app.get("operation") is not None or phase in ("Running", "Terminating")


def operation_revision(app: dict[str, Any]) -> str | None:
    """The revision of the current or last operation."""
    operation = (
        app.get("operation")
        or ((app.get("status") or {}).get("operationState") or {}).get("operation")
        or {}
    )
    revision = (operation.get("sync") or {}).get("revision")
    if revision:
        return str(revision)
    result = ((app.get("status") or {}).get("operationState") or {}).get("syncResult") or {}
    return str(result["revision"]) if result.get("revision") else None


def choose_history_entry(app: dict[str, Any], job: RollbackJob, name: str) -> dict[str, Any]:
    """The history entry to roll back to: TARGET_REVISION, else the newest older good one."""
    entries = history(app)
    if job.target_revision:
        wanted = job.target_revision.strip()
        for entry in entries:
            revision = str(entry.get("revision") or "")
            if str(entry.get("id")) == wanted or (len(wanted) >= 7 and revision.startswith(wanted)):
                return entry
        raise ActionError(
            STAGE,
            f"application '{name}' does not have deployment id or revision '{wanted}' in history",
        )
    if len(entries) < 2:
        raise ActionError(
            STAGE, f"application '{name}' should have at least two successful deployments"
        )
    current = deployed_revision(app)
    bad = {b.lower() for b in job.bad_revisions}
    older: list[dict[str, Any]] = entries[:-1]
    for candidate in older[::-1]:
        revision = str(candidate.get("revision") or "").lower()
        if revision == (current or "").lower() or any(
            revision.startswith(b) for b in bad if len(b) >= 7
        ):
            continue
        return candidate
    raise ActionError(
        STAGE,
        f"application '{name}' has no earlier deployment that differs from "
        "the current one and is not on the bad-revision list",
    )


# -- the actions -------------------------------------------------------------------------------


class _ArgoCDStep(RollbackAction):
    """What the Argo CD steps share: reading the app in inspect, and validation."""

    stage = STAGE
    # After a git revert the app is Synced at the commit; after an Argo CD rollback it runs an
    # older revision than its target, so Argo CD shows OutOfSync by design.
    require_synced = True

    def __init__(
        self,
        client: ArgoCDClient,
        app: str,
        *,
        validation_timeout: float = 600.0,
        poll_seconds: float = POLL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.client = client
        self.app = app
        self.validation_timeout = validation_timeout
        self.poll_seconds = poll_seconds
        self.clock = clock
        self.sleep = sleep

    def _read(
        self,
        what: str,
        timeout: float = REQUEST_TIMEOUT_SECONDS,
        refresh: str | None = None,
        attempts: int | None = None,
    ) -> dict[str, Any]:
        try:
            return self.client.get_app(
                self.app, refresh=refresh, timeout=timeout, attempts=attempts
            )
        except ArgoCDError as exc:
            raise ActionError(STAGE, f"{what}: {exc}") from None

    def _base_facts(self, job: RollbackJob, app: dict[str, Any]) -> TargetFacts:
        current = deployed_revision(app)
        return TargetFacts(
            current=current,
            last_change_at=newest_deploy_at(app),
            already_rolled_back=current is not None and current in job.rolled_back_to,
            details={"argocd_app": self.app, "argocd_autosync": autosync_enabled(app)},
        )

    def inspect(self, job: RollbackJob) -> TargetFacts:
        """One quick GET: deployed revision, newest deployment, already rolled back."""
        app = self._read(
            f"cannot read Argo CD application {self.app}",
            timeout=INSPECT_TIMEOUT_SECONDS,
            attempts=1,
        )
        return self._base_facts(job, app)

    def expected_revision(self, ctx: ActionContext) -> str | None:
        """The revision validation waits for."""
        value = ctx.details.get("revert_commit")
        return str(value) if value else None

    def validate(self, job: RollbackJob, ctx: ActionContext) -> None:
        """Wait until Synced at the expected revision and Healthy, or fail (stage validation)."""
        if ctx.details.get("validated") is False:
            return
        expected = self.expected_revision(ctx)
        if not expected:
            raise ActionError("validation", "no revision to wait for", dict(ctx.details))
        wait_until_live(
            self.client,
            self.app,
            expected,
            self.validation_timeout,
            self.poll_seconds,
            self.clock,
            self.sleep,
            ctx,
            require_synced=self.require_synced,
        )


class ArgoCDRollback(_ArgoCDStep):
    """Mode `argocd`: roll the application back to an earlier history entry."""

    require_synced = False

    def __init__(
        self, client: ArgoCDClient, app: str, *, disable_autosync: bool = False, **kwargs: Any
    ) -> None:
        super().__init__(client, app, **kwargs)
        self.disable_autosync = disable_autosync

    def inspect(self, job: RollbackJob) -> TargetFacts:
        """The deployed revision, the history entry it would restore, and the auto-sync block."""
        app = self._read(
            f"cannot read Argo CD application {self.app}",
            timeout=INSPECT_TIMEOUT_SECONDS,
            attempts=1,
        )
        base = self._base_facts(job, app)
        entry = choose_history_entry(app, job, self.app)
        blocks = autosync_enabled(app) and not self.disable_autosync
        return TargetFacts(
            current=base.current,
            target=str(entry.get("revision")),
            last_change_at=base.last_change_at,
            already_rolled_back=base.already_rolled_back,
            autosync_blocks=blocks,
            details={
                **base.details,
                "argocd_history_id": entry.get("id"),
                **(
                    {
                        "autosync_message": f"Argo CD application {self.app} has automated "
                        f"sync on and Argo CD refuses: '{AUTOSYNC_REFUSAL}'; set "
                        "ARGOCD_DISABLE_AUTOSYNC=true or use ROLLBACK_MODE=both"
                    }
                    if blocks
                    else {}
                ),
            },
        )

    def execute(self, job: RollbackJob, ctx: ActionContext) -> None:
        """Disable auto-sync when allowed, then POST the rollback to the chosen history id."""
        app = self._read(f"cannot read Argo CD application {self.app}")
        entry = choose_history_entry(app, job, self.app)
        current = deployed_revision(app)
        if current:
            ctx.details.setdefault("rolled_back_from", current)
            ctx.details["argocd_from_revision"] = current
        ctx.details["argocd_history_id"] = entry.get("id")
        ctx.details["argocd_revision"] = str(entry.get("revision"))
        ctx.details.setdefault("target_commit", str(entry.get("revision")))
        if autosync_enabled(app):
            if not self.disable_autosync:
                raise ActionError(
                    STAGE,
                    f"Argo CD application {self.app} has automated sync on: "
                    f"'{AUTOSYNC_REFUSAL}'. Set ARGOCD_DISABLE_AUTOSYNC=true to let the "
                    "receiver turn it off first",
                    dict(ctx.details),
                )
            original = app["spec"]["syncPolicy"]["automated"]
            ctx.ensure_owned()
            try:
                self.client.patch_app(self.app, {"spec": {"syncPolicy": {"automated": None}}})
            except ArgoCDError as exc:
                raise ActionError(
                    STAGE, f"cannot disable auto-sync: {exc}", dict(ctx.details)
                ) from None
            ctx.details["autosync_disabled"] = True
            ctx.details["autosync_previous"] = original
            ctx.log(f"disabled automated sync of {self.app}; re-enable it after the incident")
        ctx.ensure_owned()
        try:
            self.client.rollback(self.app, int(entry["id"]))
        except ArgoCDError as exc:
            raise ActionError(STAGE, str(exc), dict(ctx.details)) from None
        ctx.log(
            f"Argo CD rolling {self.app} back to history id {entry['id']} "
            f"({str(entry.get('revision'))[:7]})"
        )

    def expected_revision(self, ctx: ActionContext) -> str | None:
        value = ctx.details.get("argocd_revision")
        return str(value) if value else None


class ArgoCDSync(_ArgoCDStep):
    """Mode `both`: make Argo CD deploy the revert commit the git step pushed."""

    def __init__(
        self,
        client: ArgoCDClient,
        app: str,
        *,
        autosync_wait: float = AUTOSYNC_WAIT_SECONDS,
        **kwargs: Any,
    ) -> None:
        super().__init__(client, app, **kwargs)
        self.autosync_wait = autosync_wait

    def execute(self, job: RollbackJob, ctx: ActionContext) -> None:
        """Hard refresh; let auto-sync deploy, or sync (the revert commit when auto-sync is off)."""
        if ctx.details.get("validated") is False:
            ctx.log("pull request opened: Argo CD deploys it once merged")
            return
        revert = ctx.details.get("revert_commit")
        if not revert:
            raise ActionError(STAGE, "no revert commit to deploy", dict(ctx.details))
        ctx.details["argocd_revision"] = revert
        app = self._read(
            f"cannot hard-refresh Argo CD application {self.app}",
            timeout=REFRESH_TIMEOUT_SECONDS,
            refresh="hard",
        )
        ctx.details.setdefault("argocd_from_revision", deployed_revision(app))
        if autosync_enabled(app):
            if self._autosync_started(app, str(revert)):
                ctx.details["argocd_sync"] = "automated"
                ctx.log(f"Argo CD auto-sync is deploying {str(revert)[:7]}")
                return
            ctx.ensure_owned()
            self._sync(None, ctx)  # a revision other than targetRevision would be refused
            ctx.details["argocd_sync"] = "requested"
            return
        ctx.ensure_owned()
        self._sync(str(revert), ctx)
        ctx.details["argocd_sync"] = "requested"

    def _autosync_started(self, app: dict[str, Any], revert: str) -> bool:
        deadline = self.clock() + self.autosync_wait
        while True:
            if (
                operation_running(app)
                or operation_revision(app) == revert
                or (deployed_revision(app) == revert)
            ):
                return True
            if self.clock() >= deadline:
                return False
            self.sleep(min(1.0, self.poll_seconds))
            app = self._read(f"cannot read Argo CD application {self.app}")

    def _sync(self, revision: str | None, ctx: ActionContext) -> None:
        try:
            self.client.sync(self.app, revision)
        except ArgoCDError as exc:
            if exc.status == 400 and OPERATION_IN_PROGRESS in exc.message and revision is None:
                ctx.log("an operation started meanwhile (auto-sync); not syncing again")
                return
            raise ActionError(STAGE, str(exc), dict(ctx.details)) from None
        ctx.log(f"requested a sync of {self.app}" + (f" to {revision[:7]}" if revision else ""))


class ArgoCDWatch(_ArgoCDStep):
    """Mode `gitops` with an application configured: change nothing, validate the commit."""

    def execute(self, job: RollbackJob, ctx: ActionContext) -> None:
        """Nothing to change; Argo CD picks the commit up (validation waits for it)."""


def wait_until_live(
    client: ArgoCDClient,
    app_name: str,
    revision: str,
    timeout: float,
    poll_seconds: float = POLL_SECONDS,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    ctx: ActionContext | None = None,
    require_synced: bool = True,
) -> dict[str, Any]:
    """Poll until `revision` is deployed, Healthy, no operation running (and Synced if asked).

    Fails (ActionError stage `validation`) on a Failed/Error operation for the revision,
    on Degraded health once the revision is deployed, on a 4xx answer, or at the timeout.
    """
    details = dict(ctx.details) if ctx else {}
    deadline = clock() + timeout
    refresh: str | None = "hard"
    last = "no answer yet"
    while True:
        try:
            app = client.get_app(app_name, refresh=refresh, timeout=REFRESH_TIMEOUT_SECONDS)
            refresh = None
        except ArgoCDError as exc:
            if 400 <= exc.status < 500:
                raise ActionError("validation", str(exc), details) from None
            last = str(exc)
        else:
            status = app.get("status") or {}
            sync = status.get("sync") or {}
            health = (status.get("health") or {}).get("status")
            op = status.get("operationState") or {}
            running = operation_running(app)
            at_revision = deployed_revision(app) == revision and (
                not require_synced or sync.get("revision") == revision
            )
            if (
                op.get("phase") in ("Failed", "Error")
                and operation_revision(app) == revision
                and not running
            ):
                raise ActionError(
                    "validation",
                    f"Argo CD sync of {revision[:7]} "
                    f"{op.get('phase')}: {op.get('message', '')}".rstrip(": "),
                    details,
                )
            if at_revision and not running and health == "Degraded":
                message = (status.get("health") or {}).get("message") or ""
                raise ActionError(
                    "validation",
                    f"{app_name} is Degraded at {revision[:7]}"
                    + (f": {message}" if message else ""),
                    details,
                )
            synced = sync.get("status") == "Synced" or not require_synced
            if at_revision and not running and synced and health == "Healthy":
                return app
            last = (
                f"sync {sync.get('status')} at {str(sync.get('revision'))[:7]}, deployed "
                f"{str(deployed_revision(app))[:7]}, health {health}"
                + (", operation running" if running else "")
            )
        if clock() >= deadline:
            raise ActionError(
                "validation",
                f"{app_name} not Synced and Healthy at "
                f"{revision[:7]} within {timeout:.0f} s ({last})",
                details,
            )
        sleep(poll_seconds)
