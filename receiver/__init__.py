"""rollback-receiver: roll a deployment back, safely, when its SLO error budget burns."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from receiver.version import __version__ as __version__

if TYPE_CHECKING:
    from flask import Flask

    from receiver.config import Settings


def create_app(settings: Settings | None = None, **kwargs: Any) -> Flask:
    """The Flask application (see receiver.app.create_app)."""
    from receiver.app import create_app as _create_app

    return _create_app(settings, **kwargs)
