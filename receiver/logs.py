"""JSON-lines logging on stderr (and LOG_FILE), every line through the one redaction step."""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any

from receiver.redaction import Redactor

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


ROOT_HANDLER = "rollback-receiver"  # the name of the handlers this module adds to the root


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
        # Raw values first (a secret as written), then the line (what `default=str` made).
        line = json.dumps(self.redact.obj(entry), default=str, sort_keys=False)
        return self.redact(line)


def setup_logging(
    level: str = "INFO",
    log_file: str | None = None,
    secrets: Callable[[], Iterable[str]] = lambda: (),
) -> None:
    """Route the `receiver` loggers (and gunicorn's, and others' warnings) to JSON lines."""
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
    # Other libraries' warnings (urllib3, PyGithub, werkzeug) reach the root logger: they go
    # through the same redacting formatter, never Python's bare last-resort handler.
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == ROOT_HANDLER]:
        root.removeHandler(old)
        old.close()
    root_handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_file:
        root_handlers.append(logging.FileHandler(log_file, encoding="utf-8"))
    for handler in root_handlers:
        handler.set_name(ROOT_HANDLER)
        handler.setFormatter(formatter)
        handler.setLevel(logging.WARNING)
        root.addHandler(handler)
