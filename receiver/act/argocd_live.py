"""Waiting until a revision is live in Argo CD: the validation all the Argo CD steps share.

Poll the app until it is Synced at the expected revision and Healthy with no operation
running; Degraded, a Failed/Error operation or the timeout fail with stage `validation`.
"""

from __future__ import annotations

from typing import Any

from receiver.act.polling import Pacing
from receiver.clients.argocd import ArgoCDAPIError, ArgoCDClient, ArgoCDError
from receiver.clients.argocd_app import AppState
from receiver.errors import ActionError

POLL_SECONDS = 5.0
REFRESH_TIMEOUT_SECONDS = 60.0  # GET ?refresh=hard blocks until the controller reconciled


def wait_until_live(
    client: ArgoCDClient,
    app_name: str,
    revision: str,
    timeout: float,
    pacing: Pacing | None = None,
    details: dict[str, Any] | None = None,
    require_synced: bool = True,
) -> AppState:
    """Poll until `revision` is deployed, Healthy, no operation running (and Synced if asked).

    Fails (ActionError stage `validation`) on a Failed/Error operation for the revision,
    on Degraded health once the revision is deployed, on a 4xx answer, or at the timeout.
    """
    details = details or {}
    deadline = (pacing or Pacing(POLL_SECONDS)).deadline(timeout)
    refresh: str | None = "hard"
    last = "no answer yet"
    while True:
        try:
            app = client.get_app(app_name, refresh=refresh, timeout=REFRESH_TIMEOUT_SECONDS)
            refresh = None
        except ArgoCDAPIError as exc:
            if 400 <= exc.status < 500:
                raise ActionError("validation", str(exc), details) from None
            last = str(exc)
        except ArgoCDError as exc:
            last = str(exc)
        else:
            running = app.operation_running
            at_revision = app.deployed_revision == revision and (
                not require_synced or app.sync_revision == revision
            )
            failed = app.failed_operation
            if failed is not None and failed.revision == revision:
                raise ActionError(
                    "validation",
                    f"Argo CD sync of {revision[:7]} {failed.phase}: {failed.message}".rstrip(": "),
                    details,
                )
            if at_revision and not running and app.health == "Degraded":
                message = app.health_message
                raise ActionError(
                    "validation",
                    f"{app_name} is Degraded at {revision[:7]}"
                    + (f": {message}" if message else ""),
                    details,
                )
            synced = app.sync_status == "Synced" or not require_synced
            if at_revision and not running and synced and app.health == "Healthy":
                return app
            last = (
                f"sync {app.sync_status} at {str(app.sync_revision)[:7]}, deployed "
                f"{str(app.deployed_revision)[:7]}, health {app.health}"
                + (", operation running" if running else "")
            )
        if deadline.passed():
            raise ActionError(
                "validation",
                f"{app_name} not Synced and Healthy at "
                f"{revision[:7]} within {timeout:.0f} s ({last})",
                details,
            )
        deadline.wait()
