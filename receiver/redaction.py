"""One redaction step for every text that leaves the receiver: logs, answers, notifications.

It removes the value of every configured secret (the registry of `receiver.secrets` plus
the ADMIN_TOKENS_FILE tokens), the userinfo of any URL, and bearer/basic credentials. A
secret is searched for as raw text and in its JSON-escaped forms, so a value holding `"`,
`\\` or non-ASCII characters is found in a JSON body as well as in a plain log message.
"""

from __future__ import annotations

import dataclasses
import json
import re
import threading
from collections.abc import Callable, Iterable
from typing import Any, TypeVar
from urllib.parse import quote

REDACTED = "[REDACTED]"
# Shorter values would blank out ordinary words; a secret that short is not a secret.
MIN_SECRET_CHARS = 4
# Userinfo never holds a raw quote, bracket, space or backslash (RFC 3986), so the match
# cannot run across the fields of compact JSON. A scheme starts only where a run of scheme
# characters starts (not at every word boundary inside `a.a.a…`): linear, not quadratic, in
# a long label.
_URL_USERINFO = re.compile(r"(?<![a-z0-9+.-])(?P<scheme>[a-z0-9+.-]+://)[^/@\s\"'<>\\]+@", re.I)
_AUTH_HEADER = re.compile(r"(?i)\b(?P<scheme>bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}")
_AUTH_SCHEMES = re.compile(r"bearer|basic")  # searched in the lowered text, ASCII only
_SLACK_HOOK = re.compile(r"https://hooks\.slack\.com/[^\s\"'<>\\]+")
T = TypeVar("T")


def redact_userinfo(text: str) -> str:
    """`text` with the `user:password@` part of every URL in it replaced by [REDACTED]."""
    return _URL_USERINFO.sub(lambda m: m.group("scheme") + REDACTED + "@", text)


def written_forms(value: str) -> set[str]:
    """The ways `value` can appear in emitted text: raw, JSON-escaped, percent-encoded."""
    forms = {
        value,
        json.dumps(value)[1:-1],
        json.dumps(value, ensure_ascii=False)[1:-1],
        quote(value, safe=""),
    }
    return {form for form in forms if len(form) >= MIN_SECRET_CHARS}


class Redactor:
    """Redacts text and data; `secrets` is asked each time, so a rotated secret is covered."""

    def __init__(self, secrets: Callable[[], Iterable[str]] = lambda: ()) -> None:
        self._secrets = secrets
        self._lock = threading.Lock()
        # The values last asked for and their pattern, swapped as one tuple: a reader needs
        # no lock while the secrets stay the same (every answer and log line asks).
        self._known: tuple[tuple[str, ...], re.Pattern[str] | None] = ((), None)

    def _secret_pattern(self) -> re.Pattern[str] | None:
        values = tuple(self._secrets())
        known = self._known
        if values == known[0]:
            return known[1]
        with self._lock:
            kept = {v for v in values if v and len(v) >= MIN_SECRET_CHARS}
            forms = set().union(*(written_forms(v) for v in kept)) if kept else set()
            ordered = sorted(forms, key=len, reverse=True)  # longest first: no partial leaks
            pattern = re.compile("|".join(map(re.escape, ordered))) if forms else None
            self._known = (values, pattern)
            return pattern

    def __call__(self, text: str) -> str:
        """`text` with every secret, URL userinfo and auth credential replaced by [REDACTED]."""
        pattern = self._secret_pattern()
        if pattern is not None:
            text = pattern.sub(REDACTED, text)
        # Every answer and log line passes here, and most hold no URL and no credential:
        # a pattern runs only where the text could match it (the result is the same).
        if "://" in text:  # both URL patterns need it
            text = redact_userinfo(text)
            text = _SLACK_HOOK.sub(REDACTED, text)
        if not text.isascii() or _AUTH_SCHEMES.search(text.lower()):
            # Outside ASCII, case-insensitive matching is Unicode's (U+017F matches s): no shortcut.
            text = _AUTH_HEADER.sub(lambda m: m.group("scheme") + " " + REDACTED, text)
        return text

    def obj(self, value: T) -> T:
        """A copy of `value` (str, dict, list, tuple, dataclass) with every text redacted."""
        return self._walk(value, 0)  # type: ignore[no-any-return]

    def _walk(self, value: Any, depth: int) -> Any:
        if depth > 64:  # bounded: deeper data is not ours to emit
            return REDACTED
        if isinstance(value, str):
            return self(value)
        if isinstance(value, dict):
            return {self._walk(k, depth + 1): self._walk(v, depth + 1) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return type(value)(self._walk(item, depth + 1) for item in value)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            changes = {
                f.name: self._walk(getattr(value, f.name), depth + 1)
                for f in dataclasses.fields(value)
                if f.init
            }
            return dataclasses.replace(value, **changes)
        return value


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` with these secrets, URL userinfo and auth credentials redacted."""
    values = tuple(secrets)
    return Redactor(lambda: values)(text)


def redact_obj(value: T, secrets: Iterable[str] = ()) -> T:
    """`value` with every text in it redacted as `redact` does."""
    values = tuple(secrets)
    return Redactor(lambda: values).obj(value)
