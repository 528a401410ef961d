"""Every JSON or text answer of the app passes the one redaction step before it leaves."""

from __future__ import annotations

from flask import Flask, Response

from receiver.redaction import Redactor

_REDACTED_TYPES = ("application/json", "application/problem+json")


def redact_answers(app: Flask, redactor: Redactor) -> None:
    """Register an `after_request` hook that redacts JSON and text bodies (errors included)."""

    @app.after_request
    def _redact_answer(response: Response) -> Response:
        if response.direct_passthrough or response.is_streamed:
            return response
        mimetype = response.mimetype or ""
        if mimetype not in _REDACTED_TYPES and not mimetype.startswith("text/"):
            return response
        body = response.get_data(as_text=True)
        redacted = redactor(body)
        if redacted != body:
            response.set_data(redacted)
        return response
