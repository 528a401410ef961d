"""GET /api/v1/openapi.json: the OpenAPI 3.1 description of /webhook and /api/v1 (no auth)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify

from receiver import __version__

bp = Blueprint("openapi", __name__)

JSON = "application/json"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(kind: str) -> dict[str, Any]:
    return {"type": [kind, "null"]}


def _json_body(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": schema}}}


def _errors(*codes: int) -> dict[str, Any]:
    return {
        str(code): {"$ref": f"#/components/responses/{ERROR_RESPONSES[code][0]}"} for code in codes
    }


ERROR_RESPONSES: dict[int, tuple[str, str]] = {
    400: ("BadRequest", "a payload or parameter that retrying will not fix; the message names it"),
    401: ("Unauthorized", "missing or invalid credentials"),
    403: ("Forbidden", "the admin API is disabled (no ADMIN_TOKEN configured)"),
    404: ("NotFound", "no such rollback"),
    409: ("Conflict", "refused: not pending, or blocked by a safety check (the reason)"),
    413: ("PayloadTooLarge", "body larger than 1 MiB"),
    415: ("UnsupportedMediaType", "the webhook body is not application/json"),
    503: ("ServiceUnavailable", "the state store (Redis) is unreachable; retry later"),
}

_STRING_MAP = {"type": "object", "additionalProperties": {"type": "string"}}

_ALERT = {
    "type": "object",
    "description": "One Alertmanager alert (webhook payload version 4).",
    "required": ["status", "labels", "fingerprint"],
    "properties": {
        "status": {"type": "string", "enum": ["firing", "resolved"]},
        "labels": _STRING_MAP,
        "annotations": _STRING_MAP,
        "startsAt": {"type": "string", "format": "date-time"},
        "endsAt": {"type": "string", "format": "date-time"},
        "generatorURL": {"type": "string"},
        "fingerprint": {"type": "string", "minLength": 1},
    },
}

_MESSAGE = {
    "type": "object",
    "description": "An Alertmanager webhook delivery (payload version 4).",
    "required": ["alerts"],
    "properties": {
        "version": {"type": "string"},
        "groupKey": {"type": "string"},
        "truncatedAlerts": {"type": "integer", "minimum": 0},
        "status": {"type": "string", "enum": ["firing", "resolved"]},
        "receiver": {"type": "string"},
        "groupLabels": _STRING_MAP,
        "commonLabels": _STRING_MAP,
        "commonAnnotations": _STRING_MAP,
        "externalURL": {"type": "string"},
        "alerts": {"type": "array", "items": _ref("Alert")},
    },
}

_DECISION = {"type": "string", "enum": ["rollback", "pending_approval", "ignored", "skipped"]}

_OUTCOME = {
    "type": "object",
    "description": "One alert's decision; `rollback_id` names its history record.",
    "required": ["fingerprint", "alertname", "service", "decision", "reason", "rollback_id"],
    "properties": {
        "fingerprint": {"type": "string"},
        "alertname": {"type": "string"},
        "service": {"type": "string"},
        "decision": _DECISION,
        "reason": {"type": "string"},
        "rollback_id": _nullable("string"),
    },
}

_CHECK = {
    "type": "object",
    "description": "One safety check and its result at decision time.",
    "required": ["check", "passed"],
    "properties": {
        "check": {"type": "string"},
        "passed": {"type": ["boolean", "null"]},
        "detail": {"type": "string"},
    },
}

_STAGE = {
    "type": "object",
    "required": ["name", "started_at"],
    "properties": {
        "name": {"type": "string"},
        "started_at": {"type": "string"},
        "finished_at": _nullable("string"),
        "ok": _nullable("boolean"),
        "error": _nullable("string"),
    },
}

_RECORD = {
    "type": "object",
    "description": "Every stage and timestamp of one rollback, or of one decision not to.",
    "required": [
        "id",
        "service",
        "namespace",
        "tier",
        "decision",
        "reason",
        "state",
        "trigger",
        "created_at",
        "actor",
    ],
    "properties": {
        "id": {"type": "string"},
        "service": {"type": "string"},
        "namespace": {"type": "string"},
        "tier": {"type": "string"},
        "decision": _DECISION,
        "reason": {"type": "string"},
        "state": {
            "type": "string",
            "enum": [
                "pending_approval",
                "running",
                "completed",
                "failed",
                "interrupted",
                "skipped",
                "rejected",
                "expired",
            ],
        },
        "trigger": {"type": "object", "description": "labels, annotations, fingerprint, startsAt"},
        "created_at": {"type": "string"},
        "finished_at": _nullable("string"),
        "actor": {"type": "string"},
        "mode": {"type": "string"},
        "automatic": {"type": "boolean"},
        "dry_run": {"type": "boolean"},
        "episode": _nullable("string"),
        "rolled_back_from": {"type": "object"},
        "target": {
            "type": "object",
            "description": "commit, revision, revert_commit, pull_request",
        },
        "stages": {"type": "array", "items": _ref("Stage")},
        "checks": {"type": "array", "items": _ref("Check")},
        "error": _nullable("string"),
        "failed_stage": _nullable("string"),
        "not_effective": {"type": "boolean"},
        "validated": _nullable("boolean"),
        "audit": {"type": "array", "items": {"type": "object"}},
        "expires_at": _nullable("string"),
        "veto_at": _nullable("string"),
        "repeats": {"type": "integer", "minimum": 0},
        "last_seen_at": _nullable("string"),
        "details": {"type": "object"},
    },
}

_MANUAL_REQUEST = {
    "type": "object",
    "required": ["service"],
    "properties": {
        "service": {"type": "string", "minLength": 1},
        "mode": {"type": ["string", "null"], "enum": ["gitops", "argocd", "both", None]},
        "target_commit": _nullable("string"),
        "target_revision": _nullable("string"),
        "reason": _nullable("string"),
        "dry_run": {"type": "boolean"},
        "force": {"type": "boolean"},
    },
}

_MANUAL_ANSWER = {
    "allOf": [
        _ref("Outcome"),
        {"type": "object", "required": ["record"], "properties": {"record": _ref("Record")}},
    ]
}

_SERVICE_STATUS = {
    "type": "object",
    "description": "Safety state of one service: lock, cooldown, rate limits, blackout, last.",
    "required": ["service"],
    "properties": {
        "service": {"type": "string"},
        "enabled": {"type": "boolean"},
        "locked_by": _nullable("string"),
        "cooldown_seconds_left": {"type": "number", "minimum": 0},
        "rollbacks_last_hour": {"type": "integer", "minimum": 0},
        "rollbacks_last_day": {"type": "integer", "minimum": 0},
        "limits": {"type": "object"},
        "blackout": {"type": "object"},
        "last_rollback": {"anyOf": [_ref("Record"), {"type": "null"}]},
    },
}

_AUDIT_REQUEST = {
    "type": "object",
    "required": ["action", "silence_id"],
    "properties": {
        "action": {"type": "string", "enum": ["blackout_created", "blackout_ended"]},
        "silence_id": {"type": "string", "minLength": 1},
        "service": _nullable("string"),
        "comment": _nullable("string"),
        "until": _nullable("string"),
    },
}

_ROLLBACK_ID = {
    "name": "rollback_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string"},
    "description": "the record's id, e.g. rb-20260101T000000Z-0123abcd",
}
_LIMIT = {
    "name": "limit",
    "in": "query",
    "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 50},
}
_ADMIN: list[dict[str, list[str]]] = [{"adminToken": []}]
_ADMIN_ERRORS = (401, 403, 503)


def _op(operation_id: str, summary: str, responses: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "operationId": operation_id,
        "summary": summary,
        "security": _ADMIN,
        "responses": responses,
        **extra,
    }


def _record_links() -> dict[str, Any]:
    """Links from an answer carrying `rollback_id` to the operations on that record."""
    by_id = {"rollback_id": "$response.body#/rollback_id"}
    return {
        "GetRollback": {"operationId": "getRollback", "parameters": by_id},
        "ApproveRollback": {"operationId": "approveRollback", "parameters": by_id},
        "RejectRollback": {"operationId": "rejectRollback", "parameters": by_id},
    }


def _with_links(response: dict[str, Any]) -> dict[str, Any]:
    return {**response, "links": _record_links()}


SPEC: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "rollback-receiver",
        "version": __version__,
        "description": "Alertmanager webhook in; history, manual rollbacks, approvals, status "
        'and explain for operators. Errors are JSON `{"error": ...}`.',
        "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
    },
    "paths": {
        "/webhook": {
            "post": {
                "operationId": "receiveAlertmanagerDelivery",
                "summary": "Alertmanager delivery: one decision per alert, in delivery order",
                "security": [{"webhookToken": []}, {"webhookBasic": []}, {}],
                "requestBody": {
                    "required": True,
                    "content": {JSON: {"schema": _ref("AlertmanagerMessage")}},
                },
                "responses": {
                    "200": _json_body(
                        {
                            "type": "object",
                            "required": ["alerts"],
                            "properties": {"alerts": {"type": "array", "items": _ref("Outcome")}},
                        },
                        "accepted, duplicate or suppressed by policy",
                    ),
                    **_errors(400, 401, 413, 415, 503),
                },
            }
        },
        "/api/v1/rollbacks": {
            "get": _op(
                "listRollbacks",
                "History, newest first",
                {
                    "200": _json_body(
                        {
                            "type": "object",
                            "required": ["rollbacks"],
                            "properties": {
                                "rollbacks": {"type": "array", "items": _ref("Record")},
                                "next_cursor": {
                                    "type": ["string", "null"],
                                    "description": "pass as `cursor` for the next page; "
                                    "null at the end",
                                },
                            },
                        },
                        "a page of records",
                    ),
                    **_errors(400, *_ADMIN_ERRORS),
                },
                parameters=[
                    {"name": "service", "in": "query", "schema": {"type": "string"}},
                    {"name": "state", "in": "query", "schema": {"type": "string"}},
                    _LIMIT,
                    {
                        "name": "cursor",
                        "in": "query",
                        "schema": {"type": "string"},
                        "description": "`next_cursor` of the previous page",
                    },
                ],
            ),
            "post": _op(
                "startManualRollback",
                "Manual rollback (a human's decision: blackout and approval do not apply)",
                {
                    "202": _with_links(_json_body(_MANUAL_ANSWER, "started; it runs on")),
                    "200": _with_links(
                        _json_body(_MANUAL_ANSWER, "dry run or skipped: nothing changed")
                    ),
                    **_errors(400, 409, 413, *_ADMIN_ERRORS),
                },
                requestBody={
                    "required": True,
                    "content": {JSON: {"schema": _ref("ManualRollbackRequest")}},
                },
            ),
        },
        "/api/v1/rollbacks/{rollback_id}": {
            "get": _op(
                "getRollback",
                "One record with every stage and timestamp",
                {"200": _json_body(_ref("Record"), "the record"), **_errors(404, *_ADMIN_ERRORS)},
                parameters=[_ROLLBACK_ID],
            )
        },
        "/api/v1/rollbacks/{rollback_id}/approve": {
            "post": _op(
                "approveRollback",
                "Approve a pending rollback (the safety checks run again)",
                {
                    "200": _json_body(_ref("Record"), "approved: the record"),
                    **_errors(404, 409, *_ADMIN_ERRORS),
                },
                parameters=[_ROLLBACK_ID],
            )
        },
        "/api/v1/rollbacks/{rollback_id}/reject": {
            "post": _op(
                "rejectRollback",
                "Reject a pending rollback",
                {
                    "200": _json_body(_ref("Record"), "rejected: the record"),
                    **_errors(404, 409, *_ADMIN_ERRORS),
                },
                parameters=[_ROLLBACK_ID],
            )
        },
        "/api/v1/status": {
            "get": _op(
                "getStatus",
                "Safety state per service",
                {
                    "200": _json_body(
                        {
                            "type": "object",
                            "required": ["services"],
                            "properties": {
                                "services": {"type": "array", "items": _ref("ServiceStatus")}
                            },
                        },
                        "one entry per service",
                    ),
                    **_errors(*_ADMIN_ERRORS),
                },
                parameters=[{"name": "service", "in": "query", "schema": {"type": "string"}}],
            )
        },
        "/api/v1/explain": {
            "post": _op(
                "explainDelivery",
                "Every check of every alert of a delivery; acts on nothing, records nothing",
                {
                    "200": _json_body(
                        {
                            "type": "object",
                            "required": ["alerts"],
                            "properties": {
                                "alerts": {
                                    "type": "array",
                                    "items": {
                                        "allOf": [
                                            _ref("Outcome"),
                                            {
                                                "type": "object",
                                                "required": ["checks"],
                                                "properties": {
                                                    "checks": {
                                                        "type": "array",
                                                        "items": _ref("Check"),
                                                    }
                                                },
                                            },
                                        ]
                                    },
                                }
                            },
                        },
                        "per alert the decision and every check",
                    ),
                    **_errors(400, 413, *_ADMIN_ERRORS),
                },
                requestBody={
                    "required": True,
                    "content": {JSON: {"schema": _ref("AlertmanagerMessage")}},
                },
            )
        },
        "/api/v1/audit": {
            "get": _op(
                "listAudit",
                "Operator actions, newest first",
                {
                    "200": _json_body(
                        {
                            "type": "object",
                            "required": ["audit"],
                            "properties": {"audit": {"type": "array", "items": {"type": "object"}}},
                        },
                        "the audit trail",
                    ),
                    **_errors(400, *_ADMIN_ERRORS),
                },
                parameters=[_LIMIT],
            ),
            "post": _op(
                "recordAudit",
                "Record a CLI action done outside the receiver (blackout silences)",
                {
                    "201": _json_body(
                        {
                            "type": "object",
                            "required": ["recorded"],
                            "properties": {"recorded": {"type": "string"}},
                        },
                        "recorded",
                    ),
                    **_errors(400, 413, *_ADMIN_ERRORS),
                },
                requestBody={
                    "required": True,
                    "content": {JSON: {"schema": _ref("AuditRequest")}},
                },
            ),
        },
        "/api/v1/openapi.json": {
            "get": {
                "operationId": "getOpenAPIDocument",
                "summary": "This document",
                "security": [{}],
                "responses": {"200": _json_body({"type": "object"}, "the OpenAPI 3.1 description")},
            }
        },
    },
    "components": {
        "securitySchemes": {
            "adminToken": {
                "type": "http",
                "scheme": "bearer",
                "description": "ADMIN_TOKEN or a token of ADMIN_TOKENS_FILE",
            },
            "webhookToken": {"type": "http", "scheme": "bearer", "description": "WEBHOOK_TOKEN"},
            "webhookBasic": {
                "type": "http",
                "scheme": "basic",
                "description": "WEBHOOK_USERNAME / WEBHOOK_PASSWORD",
            },
        },
        "schemas": {
            "Error": {
                "type": "object",
                "required": ["error"],
                "properties": {"error": {"type": "string"}},
            },
            "Alert": _ALERT,
            "AlertmanagerMessage": _MESSAGE,
            "Outcome": _OUTCOME,
            "Check": _CHECK,
            "Stage": _STAGE,
            "Record": _RECORD,
            "ManualRollbackRequest": _MANUAL_REQUEST,
            "ServiceStatus": _SERVICE_STATUS,
            "AuditRequest": _AUDIT_REQUEST,
        },
        "responses": {
            name: _json_body(_ref("Error"), description)
            for name, description in ERROR_RESPONSES.values()
        },
    },
}


@bp.get("/api/v1/openapi.json")
def openapi_document() -> Response:
    """The OpenAPI document; no auth, so tools and people can read it before holding a token."""
    return jsonify(SPEC)
