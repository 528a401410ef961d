"""Authentication of the webhook (bearer or basic) and the admin API (ADMIN_TOKEN)."""

from __future__ import annotations

import base64
import binascii
import hmac

from flask import Request

from receiver.config import Settings
from receiver.errors import Forbidden, Unauthorized


def _equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def check_webhook(request: Request, settings: Settings) -> None:
    """Accept the bearer token or basic auth when configured; open when neither is set."""
    token = settings.webhook_token.get()
    username = settings.webhook_username
    password = settings.webhook_password.get()
    if not token and not username:
        return
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    value = value.strip()
    if token and scheme.lower() == "bearer" and _equal(value, token):
        return
    if username and password and scheme.lower() == "basic":
        try:
            user, _, given = base64.b64decode(value, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise Unauthorized("malformed basic auth") from None
        if _equal(user, username) & _equal(given, password):
            return
    raise Unauthorized("missing or invalid credentials")


def token_actor(token: str, settings: Settings) -> str | None:
    """The actor name of a valid admin token, or None (constant-time comparisons)."""
    found = None
    for name, candidate in settings.admin_tokens:
        if _equal(candidate, token):
            found = name
    admin = settings.admin_token.get()
    if admin and _equal(admin, token):
        found = found or "admin"
    return found


def admin_actor(request: Request, settings: Settings) -> str:
    """The actor name of the request's admin token; 403 while the API is disabled, else 401."""
    if not settings.api_enabled:
        raise Forbidden("admin API disabled: set ADMIN_TOKEN to enable it")
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        actor = token_actor(value.strip(), settings)
        if actor:
            return actor
    raise Unauthorized("missing or invalid admin token")
