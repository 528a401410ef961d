"""The baseline: a bare Flask app on gunicorn that parses the delivery and answers."""

from __future__ import annotations

from flask import Flask, jsonify, request

app = Flask(__name__)


@app.post("/webhook")
def webhook() -> object:
    body = request.get_json(force=True)
    return jsonify({"alerts": [{"fingerprint": a.get("fingerprint")} for a in body["alerts"]]})


@app.get("/healthz")
def healthz() -> object:
    return jsonify({"status": "ok"})
