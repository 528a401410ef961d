"""WSGI entry point for gunicorn: `receiver.wsgi:app`."""

from __future__ import annotations

from receiver.app import create_app

app = create_app()
