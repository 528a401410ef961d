"""Typed reads of environment variables: booleans, bounded numbers, choices, URLs, durations.

Each read names its variable in the `ConfigError` it raises; an unset or empty variable
means the default written on the settings dataclass field, so no default is written twice.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from receiver.errors import ConfigError
from receiver.redaction import redact_userinfo

_DURATION = re.compile(r"^(\d+)(ms|s|m|h|d|w)?$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
N = TypeVar("N", int, float)


def parse_duration(name: str, text: str) -> float:
    """Seconds in a Prometheus-style duration ("30d", "24h", "90s", "0")."""
    match = _DURATION.match(text.strip())
    if not match:
        raise ConfigError(f"{name}: {text!r} is not a duration like 30s, 5m, 24h or 30d")
    number, unit = match.groups()
    if unit is None and number != "0":
        raise ConfigError(f"{name}: {text!r} needs a unit (s, m, h, d, w)")
    return int(number) * _UNIT_SECONDS[unit or "s"]


class EnvReader:
    """Reads variables for `Settings.from_env`; unset or empty means the dataclass field default."""

    def __init__(self, environ: Mapping[str, str], settings: type[Any]) -> None:
        self.environ = environ
        self._defaults = {
            f.name: f.default
            for f in dataclasses.fields(settings)
            if f.default is not dataclasses.MISSING
        }

    def _raw(self, name: str, keep_empty: bool = False) -> str | None:
        raw = self.environ.get(name)
        if raw is None or (raw.strip() == "" and not keep_empty):
            return None
        return raw.strip()

    def default(self, name: str, field_name: str | None = None) -> Any:
        return self._defaults[field_name or name.lower()]

    def text(self, name: str) -> Any:
        value = self._raw(name)
        return self.default(name) if value is None else value

    def checked(
        self,
        name: str,
        parse: Callable[[str, str], Any],
        field_name: str | None = None,
        keep_empty: bool = False,
    ) -> Any:
        value = self._raw(name, keep_empty)
        return self.default(name, field_name) if value is None else parse(name, value)

    def boolean(self, name: str) -> Any:
        value = self._raw(name)
        if value is None:
            return self.default(name)
        if value.lower() in ("1", "true", "yes", "on"):
            return True
        if value.lower() in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{name}: {value!r} is not a boolean (true or false)")

    def number(self, name: str, kind: type[N], low: N | None = None, high: N | None = None) -> Any:
        """An int (bounds inclusive) or a float (bounds exclusive: a ratio is never 0 or 1)."""
        value = self._raw(name)
        if value is None:
            return self.default(name)
        try:
            number = kind(value)
        except ValueError:
            what = "a whole number" if kind is int else "a number"
            raise ConfigError(f"{name}: {value!r} is not {what}") from None
        if kind is float:
            if (low is not None and number <= low) or (high is not None and number >= high):
                raise ConfigError(f"{name}: {number} must be between {low} and {high}")
        elif low is not None and number < low:
            raise ConfigError(f"{name}: {number} is below the minimum {low}")
        elif high is not None and number > high:
            raise ConfigError(f"{name}: {number} is above the maximum {high}")
        return number

    def choice(self, name: str, choices: tuple[str, ...]) -> Any:
        value = self.text(name)
        if value not in choices:
            raise ConfigError(f"{name}: {value!r} is not one of {', '.join(choices)}")
        return value

    def url(self, name: str) -> Any:
        value = self.text(name)
        if value is not None and not re.match(r"^https?://[^\s/]+", value):
            raise ConfigError(f"{name}: {redact_userinfo(value)!r} is not an http(s) URL")
        return value.rstrip("/") if value else value
