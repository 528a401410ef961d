"""Alertmanager silences API v2: create, list and expire silences, and re-check an alert.

Works with Alertmanager 0.25 through 0.34: `GET /api/v2/silences` has no `?active=` before
0.34, so states are filtered here, and an unknown id on `DELETE` is a 500 "silence not
found" in 0.25 but a 404 later. Matching an alert against silences is done here too
(Alertmanager's own matcher semantics), so the receiver can ask "is this alert silenced
now?" without depending on the alerts API of one version.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests

FREEZE_LABEL = "rollback_freeze"
TRIGGER_TIERS = "critical|emergency"


class AlertmanagerUnavailable(Exception):
    """Alertmanager could not be asked (network, timeout, 5xx, not JSON); the text says which."""


class AlertmanagerError(Exception):
    """Alertmanager answered and refused the request; the text is its own error string."""


class SilenceNotFound(AlertmanagerError):
    """No silence with that id."""


@dataclass(frozen=True)
class Matcher:
    """One silence matcher: `name="value"`, `name=~"regex"`, `name!="value"`, `name!~"regex"`."""

    name: str
    value: str
    is_regex: bool = False
    is_equal: bool = True

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Alertmanager semantics: a missing label is the empty string; regexes are anchored."""
        actual = labels.get(self.name, "")
        if self.is_regex:
            try:
                hit = re.fullmatch(f"(?:{self.value})", actual) is not None
            except re.error:
                hit = False  # Alertmanager would not have accepted it; never a match here
        else:
            hit = actual == self.value
        return hit == self.is_equal

    @property
    def is_freeze_marker(self) -> bool:
        return (
            self.name == FREEZE_LABEL
            and self.value == "true"
            and not self.is_regex
            and self.is_equal
        )

    def to_api(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "value": self.value,
            "isRegex": self.is_regex,
            "isEqual": self.is_equal,
        }

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> Matcher:
        return cls(
            name=str(data.get("name", "")),
            value=str(data.get("value", "")),
            is_regex=bool(data.get("isRegex", False)),
            is_equal=bool(data.get("isEqual", True)),  # absent before 0.22: equality
        )

    def __str__(self) -> str:
        operator = (
            ("=" if self.is_equal else "!=")
            if not self.is_regex
            else ("=~" if self.is_equal else "!~")
        )
        escaped = self.value.replace("\\", "\\\\").replace('"', '\\"')
        return f'{self.name}{operator}"{escaped}"'


@dataclass(frozen=True)
class Silence:
    """A silence as Alertmanager reports it."""

    id: str
    state: str  # active | pending | expired
    matchers: tuple[Matcher, ...]
    starts_at: datetime
    ends_at: datetime
    created_by: str
    comment: str

    @property
    def is_freeze(self) -> bool:
        """A silence with matcher rollback_freeze="true": a freeze scoped by its other matchers."""
        return any(m.is_freeze_marker for m in self.matchers)

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether this silence covers an alert with these labels (the freeze marker ignored)."""
        matchers = (
            [m for m in self.matchers if not m.is_freeze_marker]
            if self.is_freeze
            else list(self.matchers)
        )
        return all(m.matches(labels) for m in matchers)

    def describe_matchers(self) -> str:
        return "{" + ", ".join(str(m) for m in self.matchers) + "}"

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> Silence:
        status = data.get("status") or {}
        return cls(
            id=str(data["id"]),
            state=str(status.get("state", "")),
            matchers=tuple(Matcher.from_api(m) for m in data.get("matchers") or ()),
            starts_at=parse_time(str(data.get("startsAt", ""))),
            ends_at=parse_time(str(data.get("endsAt", ""))),
            created_by=str(data.get("createdBy", "")),
            comment=str(data.get("comment", "")),
        )


def blackout_matchers(service: str | None = None) -> list[Matcher]:
    """The matchers of a `blackout create`: every trigger alert, or one service's."""
    matchers = [Matcher("rollback_tier", TRIGGER_TIERS, is_regex=True)]
    if service:
        matchers.append(Matcher("service", service))
    return matchers


def parse_time(text: str) -> datetime:
    """An Alertmanager date-time (RFC 3339, any fraction length) as an aware UTC datetime."""
    cleaned = re.sub(r"(\.\d{6})\d+", r"\1", text.strip())
    try:
        value = datetime.fromisoformat(cleaned)
    except ValueError:
        raise AlertmanagerUnavailable(f"Alertmanager sent a bad time {text[:40]!r}") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def format_time(value: datetime) -> str:
    """An aware datetime as Alertmanager wants it: UTC with a Z."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def redact_url(url: str) -> str:
    """The URL without user:password, for messages."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


class AlertmanagerClient:
    """The silences part of Alertmanager's API v2 at ALERTMANAGER_URL, with short timeouts."""

    def __init__(
        self, base_url: str, timeout: float = 3.0, session: requests.Session | None = None
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._own_session = session is None
        self.session = session or requests.Session()
        self._where = redact_url(self.base_url)

    def close(self) -> None:
        if self._own_session:
            self.session.close()

    def __enter__(self) -> AlertmanagerClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, method: str, path: str, body: Any = None) -> requests.Response:
        try:
            return self.session.request(
                method, f"{self.base_url}/api/v2{path}", json=body, timeout=self.timeout
            )
        except requests.RequestException as exc:
            raise AlertmanagerUnavailable(
                f"cannot reach Alertmanager at {self._where}: {exc.__class__.__name__}"
            ) from None

    @staticmethod
    def _error_text(response: requests.Response) -> str:
        """Alertmanager's error: a JSON string, or go-openapi's {code, message}."""
        try:
            body = response.json()
        except ValueError:
            return response.text.strip()[:300] or response.reason
        if isinstance(body, str):
            return body
        if isinstance(body, dict) and "message" in body:
            return str(body["message"])
        return str(body)[:300]

    def _refused(self, response: requests.Response, what: str) -> Exception:
        text = self._error_text(response)
        if response.status_code == 404 or "silence not found" in text:
            return SilenceNotFound(f"{what}: silence not found")
        if response.status_code >= 500:
            return AlertmanagerUnavailable(
                f"{what}: Alertmanager answered {response.status_code}: {text}"
            )
        return AlertmanagerError(f"{what}: Alertmanager answered {response.status_code}: {text}")

    def _json(self, response: requests.Response) -> Any:
        try:
            return response.json()
        except ValueError:
            raise AlertmanagerUnavailable(
                f"Alertmanager at {self._where} answered {response.status_code} without JSON"
            ) from None

    def create_silence(
        self,
        matchers: Sequence[Matcher],
        *,
        created_by: str,
        comment: str,
        duration: timedelta | None = None,
        ends_at: datetime | None = None,
        starts_at: datetime | None = None,
    ) -> str:
        """Create a silence from now (or starts_at) for `duration` or until `ends_at`; its id."""
        if (duration is None) == (ends_at is None):
            raise ValueError("give exactly one of duration and ends_at")
        start = starts_at or datetime.now(UTC)
        end = ends_at if ends_at is not None else start + (duration or timedelta())
        body = {
            "matchers": [m.to_api() for m in matchers],
            "startsAt": format_time(start),
            "endsAt": format_time(end),
            "createdBy": created_by,
            "comment": comment,
        }
        response = self._call("POST", "/silences", body)
        if response.status_code != 200:
            raise self._refused(response, "create silence")
        data = self._json(response)
        if not isinstance(data, dict) or not data.get("silenceID"):
            raise AlertmanagerUnavailable("Alertmanager did not return a silenceID")
        return str(data["silenceID"])

    def list_silences(self, states: Iterable[str] | None = ("active",)) -> list[Silence]:
        """Silences in the given states (all when None), filtered here for Alertmanager < 0.34."""
        response = self._call("GET", "/silences")
        if response.status_code != 200:
            # Whatever the reason (a proxy's 401, a 5xx), the silences could not be read.
            raise AlertmanagerUnavailable(
                f"list silences: Alertmanager answered "
                f"{response.status_code}: {self._error_text(response)}"
            )
        data = self._json(response)
        if not isinstance(data, list):
            raise AlertmanagerUnavailable("Alertmanager's silence list is not a list")
        wanted = None if states is None else set(states)
        try:
            silences = [Silence.from_api(item) for item in data]
        except (KeyError, TypeError, AttributeError):
            raise AlertmanagerUnavailable("Alertmanager sent a silence without an id") from None
        return [s for s in silences if wanted is None or s.state in wanted]

    def get_silence(self, silence_id: str) -> Silence:
        """One silence by id, whatever its state."""
        response = self._call("GET", f"/silence/{silence_id}")
        if response.status_code != 200:
            raise self._refused(response, f"get silence {silence_id}")
        return Silence.from_api(self._json(response))

    def expire_silence(self, silence_id: str) -> None:
        """Expire a silence (DELETE expires it; an already expired one stays expired)."""
        if not re.fullmatch(r"[0-9a-fA-F-]{36}", silence_id):
            raise AlertmanagerError(f"{silence_id!r} is not a silence id (a UUID)")
        response = self._call("DELETE", f"/silence/{silence_id}")
        if response.status_code != 200:
            raise self._refused(response, f"end silence {silence_id}")

    def matching_silences(self, labels: Mapping[str, str]) -> list[Silence]:
        """The ACTIVE silences that cover an alert with these labels (freezes included)."""
        return [s for s in self.list_silences(("active",)) if s.matches(labels)]
