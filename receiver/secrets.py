"""Secrets: the one registry of secret names, NAME / NAME_FILE loading, and the admin tokens.

The registry (`SECRET_NAMES`) drives both the `_FILE` loading here and the redaction of every
text the receiver emits (`receiver.redaction`), so a new secret is added in one place.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from pathlib import Path

from receiver.errors import ConfigError

SECRET_NAMES = (
    "GITOPS_TOKEN",
    "ARGOCD_PASSWORD",
    "ARGOCD_TOKEN",
    "WEBHOOK_TOKEN",
    "WEBHOOK_PASSWORD",
    "ADMIN_TOKEN",
    "SLACK_WEBHOOK",
    "PAGERDUTY_KEY",
    "REDIS_PASSWORD",
    "SESSION_SECRET",
    "INCIDENT_TOKEN",
    "INCIDENT_WEBHOOK",
    "INCIDENT_WEBHOOK_TOKEN",
)


class Secret:
    """A secret given as NAME or NAME_FILE; a file is re-read when it changes (rotation).

    Its repr never shows the value, so a Settings object can be logged safely.
    """

    def __init__(self, name: str, value: str | None = None, path: str | None = None) -> None:
        self.name = name
        self._value = value
        self._path = path
        self._mtime: float | None = None
        self._lock = threading.Lock()
        if path is not None:
            self._load()

    def _load(self) -> None:
        assert self._path is not None
        try:
            stat = os.stat(self._path)
            text = Path(self._path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(
                f"{self.name}_FILE: cannot read {self._path}: {exc.strerror}"
            ) from None
        except UnicodeDecodeError:
            raise ConfigError(f"{self.name}_FILE: {self._path} is not UTF-8 text") from None
        self._value = text.strip() or None
        self._mtime = stat.st_mtime

    def get(self) -> str | None:
        """The current value; a NAME_FILE secret is re-read when its mtime changed."""
        if self._path is not None:
            with self._lock:
                try:
                    mtime = os.stat(self._path).st_mtime
                except OSError:
                    return self._value  # keep the last good value while a file is swapped
                if mtime != self._mtime:
                    self._load()
        return self._value

    def __bool__(self) -> bool:
        return bool(self.get())

    def __repr__(self) -> str:
        return f"Secret({self.name}, {'set' if self.get() else 'unset'})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and (self.name, self.get()) == (other.name, other.get())

    def __hash__(self) -> int:
        return hash(self.name)


def _set(env: Mapping[str, str], name: str) -> str | None:
    raw = env.get(name)
    return raw.strip() if raw is not None and raw.strip() else None


def load_secret(env: Mapping[str, str], name: str) -> Secret:
    """The secret NAME, from NAME or the file NAME_FILE (both set is a start-up error)."""
    if name not in SECRET_NAMES:
        raise ValueError(f"{name} is not in the secret registry")
    path = _set(env, f"{name}_FILE")
    if path is not None:
        if _set(env, name) is not None:
            raise ConfigError(f"{name}: set either {name} or {name}_FILE, not both")
        return Secret(name, path=path)
    return Secret(name, value=_set(env, name))


def load_secrets(env: Mapping[str, str]) -> dict[str, Secret]:
    """Every secret of the registry, by name."""
    return {name: load_secret(env, name) for name in SECRET_NAMES}


def load_admin_tokens(env: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    """`ADMIN_TOKENS_FILE`: one `name token` pair a line; blank lines and # comments skipped."""
    path = _set(env, "ADMIN_TOKENS_FILE")
    if path is None:
        return ()
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"ADMIN_TOKENS_FILE: cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"ADMIN_TOKENS_FILE: {path} is not UTF-8 text") from None
    pairs = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split()
        if len(parts) != 2:
            raise ConfigError(f"ADMIN_TOKENS_FILE: line {number} is not 'name token'")
        pairs.append((parts[0], parts[1]))
    return tuple(pairs)
