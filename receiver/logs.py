"""JSON-lines logging on stderr (and LOG_FILE), with every configured secret redacted."""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}
# Secrets we may not know the value of: credentials in URLs and bearer headers.
_URL_CREDENTIALS = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)[^/@\s:]+(:[^/@\s]*)?@", re.I)
_BEARER = re.compile(r"(?i)(bearer|token|basic)\s+[A-Za-z0-9._~+/=-]{8,}")
_SLACK_HOOK = re.compile(r"https://hooks\.slack\.com/\S+")
REDACTED = "[REDACTED]"


class Redactor:
    """Replaces every known secret value and credential-looking text with [REDACTED]."""

    def __init__(self, secrets: Callable[[], Iterable[str]] = lambda: ()) -> None:
        self._secrets = secrets

    def __call__(self, text: str) -> str:
        for value in sorted(set(self._secrets()), key=len, reverse=True):
            if value and len(value) >= 4:
                text = text.replace(value, REDACTED)
        text = _URL_CREDENTIALS.sub(lambda m: m.group("scheme") + REDACTED + "@", text)
        text = _SLACK_HOOK.sub(REDACTED, text)
        return _BEARER.sub(lambda m: m.group(1) + " " + REDACTED, text)


class JsonFormatter(logging.Formatter):
    """One JSON object a line: ts, level, logger, msg, and the record's extra fields."""

    def __init__(self, redact: Redactor) -> None:
        super().__init__()
        self.redact = redact

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info and record.exc_info[0] is not None:
            entry["error_type"] = record.exc_info[0].__name__
            entry["error"] = str(record.exc_info[1])
        return self.redact(json.dumps(entry, default=str, sort_keys=False))


def setup_logging(
    level: str = "INFO",
    log_file: str | None = None,
    secrets: Callable[[], Iterable[str]] = lambda: (),
) -> None:
    """Route the `receiver` loggers (and gunicorn's) to JSON lines; idempotent."""
    formatter = JsonFormatter(Redactor(secrets))
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_file:
        handlers.append(logging.FileHandler(log_file, encoding="utf-8"))
    for handler in handlers:
        handler.setFormatter(formatter)
    for name in ("receiver", "gunicorn.error"):
        logger = logging.getLogger(name)
        for old in list(logger.handlers):
            logger.removeHandler(old)
            old.close()
        for handler in handlers:
            logger.addHandler(handler)
        logger.setLevel(level)
        logger.propagate = False
