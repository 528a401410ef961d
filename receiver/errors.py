"""One error module: every error the receiver answers with carries its HTTP status."""

from __future__ import annotations

from typing import Any


class ReceiverError(Exception):
    """Base error: a message safe to show (never a secret) and an HTTP status."""

    status_code = 500

    def __init__(self, message: str, status_code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if status_code is not None:
            self.status_code = status_code

    def to_dict(self) -> dict[str, Any]:
        return {"error": self.message}


class ConfigError(ReceiverError):
    """Bad configuration; the message names the variable."""

    status_code = 500


class BadRequest(ReceiverError):
    """A payload that retrying will not fix."""

    status_code = 400


class Unauthorized(ReceiverError):
    status_code = 401


class Forbidden(ReceiverError):
    status_code = 403


class NotFound(ReceiverError):
    status_code = 404


class Conflict(ReceiverError):
    status_code = 409


class PayloadTooLarge(ReceiverError):
    status_code = 413


class UnsupportedMediaType(ReceiverError):
    status_code = 415


class StoreUnavailable(ReceiverError):
    """The state store (Redis) cannot be reached: nothing is decided, Alertmanager retries."""

    status_code = 503


class LockLost(ReceiverError):
    """The runner no longer owns its service lock (lease expired and reaped)."""

    status_code = 409


class ActionError(ReceiverError):
    """An external action failed; `stage` names where (gitops, argocd, validation)."""

    def __init__(self, stage: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message, 502)
        self.stage = stage
        self.details = details or {}
