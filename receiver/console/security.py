"""Console sign-in plumbing: the signed session cookie, CSRF tokens, safe redirects, headers."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from typing import Any
from urllib.parse import urlsplit

from flask import Flask, Request, Response, session
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface
from itsdangerous import URLSafeTimedSerializer

from receiver.console import data
from receiver.errors import ReceiverError

SESSION_HOURS = 8
COOKIE_NAME = "rollback_console"
CONSOLE_PREFIX = "/ui"
STORE_DOWN = "receiver.console.store_down"
HEADERS = {
    "Content-Security-Policy": "default-src 'self'",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}


class ConsoleSessionInterface(SecureCookieSessionInterface):
    """Flask's signed cookie, keyed by the shared session secret, only under /ui/."""

    def get_signing_serializer(self, app: Flask) -> URLSafeTimedSerializer | None:
        return URLSafeTimedSerializer(
            data.session_secret(),
            salt=self.salt,
            serializer=self.serializer,
            signer_kwargs={
                "key_derivation": self.key_derivation,
                "digest_method": self.digest_method,
            },
        )

    def get_cookie_secure(self, app: Flask) -> bool:
        """Secure whenever the console is reached over https (PUBLIC_URL says so)."""
        public_url = data.settings().public_url
        return bool(public_url and public_url.startswith("https://"))

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        if not request.path.startswith(CONSOLE_PREFIX):
            return self.session_class()  # the webhook and the API never touch the secret
        try:
            return super().open_session(app, request)
        except ReceiverError:
            # Redis is down: answer 503 from the view, not a traceback from session set-up.
            request.environ[STORE_DOWN] = True
            return self.session_class()

    def save_session(self, app: Flask, session: Any, response: Response) -> None:
        from flask import request

        if not request.path.startswith(CONSOLE_PREFIX) or request.environ.get(STORE_DOWN):
            return
        super().save_session(app, session, response)


def configure(app: Flask) -> None:
    """Cookie flags for the console session: HttpOnly, SameSite=Strict, 8 hours."""
    from datetime import timedelta

    app.session_interface = ConsoleSessionInterface()
    app.config.update(
        SESSION_COOKIE_NAME=COOKIE_NAME,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        PERMANENT_SESSION_LIFETIME=timedelta(hours=SESSION_HOURS),
    )


def token_fingerprint(token: str) -> str:
    """A keyed digest of the sign-in token: names it in the cookie without revealing it."""
    key = data.session_secret().encode()
    return hmac.new(key, token.encode(), hashlib.sha256).hexdigest()[:32]


def _token_still_valid(actor: str, fingerprint: str) -> bool:
    """A removed or rotated token ends the sessions it opened."""
    return any(
        name == actor and hmac.compare_digest(token_fingerprint(token), fingerprint)
        for name, token in data.admin_tokens()
    )


def sign_in(actor: str, token: str) -> None:
    """A fresh session for `actor` with a new CSRF token (no fixation of an old one)."""
    session.clear()
    session.permanent = True
    session["actor"] = actor
    session["token"] = token_fingerprint(token)
    session["signed_in_at"] = time.time()
    session["csrf"] = secrets.token_urlsafe(32)


def signed_in_actor() -> str | None:
    """The actor of a live session; None when signed out or past the 8 h limit."""
    actor = session.get("actor")
    started = session.get("signed_in_at")
    fingerprint = session.get("token")
    if not isinstance(actor, str) or not isinstance(started, int | float):
        return None
    if not isinstance(fingerprint, str) or not _token_still_valid(actor, fingerprint):
        session.clear()
        return None
    if time.time() - started > SESSION_HOURS * 3600:
        session.clear()
        return None
    return actor


def csrf_token() -> str:
    """This session's CSRF token (made on first use)."""
    token = session.get("csrf")
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        session["csrf"] = token
    return token


def csrf_valid(given: str | None) -> bool:
    """The form's token equals the session's (constant time)."""
    expected = session.get("csrf")
    if not given or not isinstance(expected, str):
        return False
    return hmac.compare_digest(given.encode(), expected.encode())


def safe_next(target: str | None) -> str:
    """A same-origin path to go to after sign-in; anything else is the history page."""
    default = CONSOLE_PREFIX + "/"
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")):
        return default
    if any(ord(ch) < 32 or ch == "\\" for ch in target):
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return default
    return target


def add_headers(response: Response) -> Response:
    """No framing, no referrer, only our own assets."""
    for name, value in HEADERS.items():
        response.headers[name] = value
    return response
