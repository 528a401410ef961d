"""The three Argo CD rollback steps, reading the app through `AppState` (clients/argocd_app.py).

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

Writes are never retried blindly (CONTRACT "Actions"): after an error, a timeout or a lost
answer the step re-reads the application. An operation at the wanted revision that started
after the write was sent (queued, running, finished, or a new history entry) means the write
took effect and the step goes on; an operation at another revision means Argo CD is busy and
the step fails without sending again; nothing at all means the write did not land and it is
sent once more. A definite refusal (a 4xx with Argo CD's message) fails at once.

All three validate the same way (`argocd_live.wait_until_live`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from receiver.act.argocd_live import POLL_SECONDS, REFRESH_TIMEOUT_SECONDS, wait_until_live
from receiver.act.base import ActionContext, RollbackAction, RollbackJob, TargetFacts
from receiver.act.polling import Pacing
from receiver.act.shared_reads import shared_read
from receiver.clients.argocd import (
    AUTOSYNC_REFUSAL,
    ArgoCDAPIError,
    ArgoCDClient,
    ArgoCDError,
)
from receiver.clients.argocd_app import AppState, HistoryEntry
from receiver.errors import ActionError
from receiver.state.memory import PastRollback

STAGE = "argocd"
INSPECT_TIMEOUT_SECONDS = 3.0
AUTOSYNC_WAIT_SECONDS = 15.0  # how long auto-sync gets to start deploying the revert commit
WRITE_ATTEMPTS = 2  # a write is sent again only when a re-read shows it did not land
CONFIRM_READS = 3  # re-reads after an unclear write, one second apart
CONFIRM_PAUSE_SECONDS = 1.0


def choose_history_entry(app: AppState, job: RollbackJob, name: str) -> HistoryEntry:
    """The history entry to roll back to: TARGET_REVISION, else the newest older good one."""
    entries = app.history
    if job.target_revision:
        wanted = job.target_revision.strip()
        for entry in entries:
            if str(entry.id) == wanted or (len(wanted) >= 7 and entry.revision.startswith(wanted)):
                return entry
        raise ActionError(
            STAGE,
            f"application '{name}' does not have deployment id or revision '{wanted}' in history",
        )
    if len(entries) < 2:
        raise ActionError(
            STAGE, f"application '{name}' should have at least two successful deployments"
        )
    current = (app.deployed_revision or "").lower()
    bad = {b.lower() for b in job.bad_revisions if len(b) >= 7}
    for candidate in entries[-2::-1]:
        revision = candidate.revision.lower()
        if revision == current or any(revision.startswith(b) for b in bad):
            continue
        return candidate
    raise ActionError(
        STAGE,
        f"application '{name}' has no earlier deployment that differs from "
        "the current one and is not on the bad-revision list",
    )


class _ArgoCDStep(RollbackAction):
    """What the Argo CD steps share: reading the app, confirmed writes, and validation."""

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
        pacing: Pacing | None = None,
    ) -> None:
        self.client = client
        self.app = app
        self.validation_timeout = validation_timeout
        self.pacing = pacing or Pacing(POLL_SECONDS)

    def _read(
        self,
        what: str,
        timeout: float | None = None,
        refresh: str | None = None,
        attempts: int | None = None,
    ) -> AppState:
        try:
            return self.client.get_app(
                self.app, refresh=refresh, timeout=timeout or self.client.timeout, attempts=attempts
            )
        except ArgoCDError as exc:
            raise ActionError(STAGE, f"{what}: {exc}") from None

    def _inspect_read(self) -> AppState:
        """The application for inspect: one try, read once per delivery and app."""
        return shared_read(
            ("argocd-app", self.client.base_url, self.app),
            lambda: self._read(
                f"cannot read Argo CD application {self.app}",
                timeout=INSPECT_TIMEOUT_SECONDS,
                attempts=1,
            ),
        )

    def _base_facts(self, job: RollbackJob, app: AppState) -> TargetFacts:
        current = app.deployed_revision
        return TargetFacts(
            current=current,
            last_change_at=app.newest_deploy_at,
            already_rolled_back=current is not None and current in job.rolled_back_to,
            details={"argocd_app": self.app, "argocd_autosync": app.autosync},
        )

    def inspect(self, job: RollbackJob) -> TargetFacts:
        """One quick GET (once per delivery): deployed revision, newest deployment, rolled back."""
        app = self._inspect_read()
        return self._base_facts(job, app)

    def past_rollbacks(self, job: RollbackJob) -> tuple[PastRollback, ...]:
        """Deployments of the app its own account started (never a person's) in its history."""
        app = self._read(
            f"cannot read Argo CD application {self.app}",
            timeout=INSPECT_TIMEOUT_SECONDS,
            attempts=1,
        )
        ours = {entry.id for entry in app.entries_initiated_by(self.client.account)}
        found = []
        for index, entry in enumerate(app.history):
            if entry.id not in ours:
                continue
            before = app.history[index - 1].revision if index > 0 else None
            found.append(
                PastRollback(
                    at=entry.deployed_at or 0.0,
                    rolled_back_from=before or None,
                    restored=entry.revision or None,
                    rollback_id=f"argocd:{self.app}:{entry.id}",
                )
            )
        return tuple(found)

    def _write(
        self,
        ctx: ActionContext,
        what: str,
        send: Callable[[], None],
        took_effect: Callable[[AppState], bool],
        deploys: bool = False,
    ) -> None:
        """Send one write; after an unclear answer, re-read and go on from what Argo CD did."""
        # A write that `deploys` sets `argocd_written` once it took effect or may have: the
        # dispatcher writes revision memory from it, whatever the rollback's outcome.
        error: ArgoCDError | None = None
        for _ in range(WRITE_ATTEMPTS):
            ctx.ensure_owned()
            try:
                send()
                if deploys:
                    ctx.details["argocd_written"] = True
                return
            except ArgoCDAPIError as exc:
                if exc.refused:
                    raise ActionError(STAGE, str(exc), dict(ctx.details)) from None
                error = exc
            except ArgoCDError as exc:
                error = exc
            ctx.log(f"{error}; re-reading {self.app} to see what Argo CD did")
            now = self._confirm(took_effect)
            if now is None:
                if deploys:
                    ctx.details["argocd_written"] = True  # in doubt: remember it as done
                raise ActionError(
                    STAGE,
                    f"{error}; Argo CD could not be re-read, so whether it happened is unknown",
                    dict(ctx.details),
                )
            if took_effect(now):
                if deploys:
                    ctx.details["argocd_written"] = True
                ctx.details["argocd_answer_lost"] = True
                ctx.log(f"{what}: took effect in Argo CD although the answer was an error")
                return
            if now.operation_running:
                raise ActionError(
                    STAGE,
                    f"{error}; Argo CD is running another operation (revision "
                    f"{(now.operation_revision or '?')[:7]}), not sending again",
                    dict(ctx.details),
                )
        raise ActionError(
            STAGE,
            f"{error} (sent {WRITE_ATTEMPTS} times; Argo CD shows no effect)",
            dict(ctx.details),
        )

    def _confirm(self, took_effect: Callable[[AppState], bool]) -> AppState | None:
        """Re-read the app a few times, until the write shows; the last reading or None."""
        seen: AppState | None = None
        for attempt in range(CONFIRM_READS):
            if attempt:
                self.pacing.sleep(CONFIRM_PAUSE_SECONDS)
            try:
                seen = self.client.get_app(self.app)
            except ArgoCDError:
                continue
            if took_effect(seen):
                break
        return seen

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
            self.pacing,
            dict(ctx.details),
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
        app = self._inspect_read()
        base = self._base_facts(job, app)
        entry = choose_history_entry(app, job, self.app)
        blocks = app.autosync and not self.disable_autosync
        details: dict[str, Any] = {**base.details, "argocd_history_id": entry.id}
        if blocks:
            details["autosync_message"] = (
                f"Argo CD application {self.app} has automated sync on and Argo CD refuses: "
                f"'{AUTOSYNC_REFUSAL}'; set ARGOCD_DISABLE_AUTOSYNC=true or use ROLLBACK_MODE=both"
            )
        return TargetFacts(
            current=base.current,
            target=entry.revision,
            last_change_at=base.last_change_at,
            already_rolled_back=base.already_rolled_back,
            autosync_blocks=blocks,
            details=details,
        )

    def execute(self, job: RollbackJob, ctx: ActionContext) -> None:
        """Disable auto-sync when allowed, then POST the rollback to the chosen history id."""
        before = self._read(f"cannot read Argo CD application {self.app}")
        entry = choose_history_entry(before, job, self.app)
        current = before.deployed_revision
        if current:
            ctx.details.setdefault("rolled_back_from", current)
            ctx.details["argocd_from_revision"] = current
        ctx.details["argocd_history_id"] = entry.id
        ctx.details["argocd_revision"] = entry.revision
        ctx.details.setdefault("target_commit", entry.revision)
        if before.autosync:
            if not self.disable_autosync:
                raise ActionError(
                    STAGE,
                    f"Argo CD application {self.app} has automated sync on: "
                    f"'{AUTOSYNC_REFUSAL}'. Set ARGOCD_DISABLE_AUTOSYNC=true to let the "
                    "receiver turn it off first",
                    dict(ctx.details),
                )
            ctx.details["autosync_previous"] = before.automated
            self._write(
                ctx,
                f"disable auto-sync of {self.app}",
                lambda: self.client.patch_app(
                    self.app, {"spec": {"syncPolicy": {"automated": None}}}
                ),
                lambda now: not now.autosync,
            )
            ctx.details["autosync_disabled"] = True
            ctx.log(f"disabled automated sync of {self.app}; re-enable it after the incident")
        self._write(
            ctx,
            f"roll back {self.app} to history id {entry.id}",
            lambda: self.client.rollback(self.app, entry.id),
            lambda now: now.operation_since(before, entry.revision),
            deploys=True,
        )
        ctx.log(f"Argo CD rolling {self.app} back to history id {entry.id} ({entry.revision[:7]})")

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
        revert = str(revert)
        ctx.details["argocd_revision"] = revert
        before = self._read(
            f"cannot hard-refresh Argo CD application {self.app}",
            timeout=REFRESH_TIMEOUT_SECONDS,
            refresh="hard",
        )
        ctx.details.setdefault("argocd_from_revision", before.deployed_revision)
        if before.autosync:
            if self._autosync_started(before, revert):
                ctx.details["argocd_sync"] = "automated"
                ctx.log(f"Argo CD auto-sync is deploying {revert[:7]}")
                return
            # A revision other than targetRevision would be refused; any new operation will do.
            self._sync(ctx, before, None)
        else:
            self._sync(ctx, before, revert)
        ctx.details["argocd_sync"] = "requested"

    def _autosync_started(self, app: AppState, revert: str) -> bool:
        deadline = self.pacing.deadline(self.autosync_wait)
        while True:
            if app.operation_running or revert in (app.operation_revision, app.deployed_revision):
                return True
            if deadline.passed():
                return False
            deadline.wait(min(1.0, self.pacing.poll_seconds))
            app = self._read(f"cannot read Argo CD application {self.app}")

    def _sync(self, ctx: ActionContext, before: AppState, revision: str | None) -> None:
        self._write(
            ctx,
            f"sync {self.app}" + (f" to {revision[:7]}" if revision else ""),
            lambda: self.client.sync(self.app, revision),
            lambda now: now.operation_since(before, revision),
            deploys=True,
        )
        ctx.log(f"requested a sync of {self.app}" + (f" to {revision[:7]}" if revision else ""))


class ArgoCDWatch(_ArgoCDStep):
    """Mode `gitops` with an application configured: change nothing, validate the commit."""

    def execute(self, job: RollbackJob, ctx: ActionContext) -> None:
        """Nothing to change; Argo CD picks the commit up (validation waits for it)."""
