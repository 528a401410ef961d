"""GET /api/v1/openapi.json: the OpenAPI 3.1 description of /webhook and /api/v1 (no auth)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify

from receiver.http.openapi_schemas import (
    ADMIN_ERRORS,
    ALERT_SCHEMA,
    AUDIT_REQUEST_SCHEMA,
    CHECK_SCHEMA,
    ERROR_RESPONSES,
    JSON,
    LIMIT,
    MANUAL_ANSWER_SCHEMA,
    MANUAL_REQUEST_SCHEMA,
    MESSAGE_SCHEMA,
    OUTCOME_SCHEMA,
    RECORD_SCHEMA,
    ROLLBACK_ID,
    SERVICE_STATUS_SCHEMA,
    STAGE_SCHEMA,
    TRIGGER_KIND_SCHEMA,
    errors,
    json_body,
    op,
    ref,
    with_links,
)
from receiver.version import __version__

bp = Blueprint("openapi", __name__)

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
                    "content": {JSON: {"schema": ref("AlertmanagerMessage")}},
                },
                "responses": {
                    "200": json_body(
                        {
                            "type": "object",
                            "required": ["alerts"],
                            "properties": {"alerts": {"type": "array", "items": ref("Outcome")}},
                        },
                        "accepted, duplicate or suppressed by policy",
                    ),
                    **errors(400, 401, 413, 415, 503),
                },
            }
        },
        "/api/v1/rollbacks": {
            "get": op(
                "listRollbacks",
                "History, newest first",
                {
                    "200": json_body(
                        {
                            "type": "object",
                            "required": ["rollbacks"],
                            "properties": {
                                "rollbacks": {"type": "array", "items": ref("Record")},
                                "next_cursor": {
                                    "type": ["string", "null"],
                                    "description": "pass as `cursor` for the next page; "
                                    "null at the end",
                                },
                            },
                        },
                        "a page of records",
                    ),
                    **errors(400, *ADMIN_ERRORS),
                },
                parameters=[
                    {"name": "service", "in": "query", "schema": {"type": "string"}},
                    {"name": "state", "in": "query", "schema": {"type": "string"}},
                    LIMIT,
                    {
                        "name": "cursor",
                        "in": "query",
                        "schema": {"type": "string"},
                        "description": "`next_cursor` of the previous page",
                    },
                ],
            ),
            "post": op(
                "startManualRollback",
                "Manual rollback (a human's decision: blackout and approval do not apply)",
                {
                    "202": with_links(json_body(MANUAL_ANSWER_SCHEMA, "started; it runs on")),
                    "200": with_links(
                        json_body(MANUAL_ANSWER_SCHEMA, "dry run or skipped: nothing changed")
                    ),
                    **errors(400, 409, 413, *ADMIN_ERRORS),
                },
                requestBody={
                    "required": True,
                    "content": {JSON: {"schema": ref("ManualRollbackRequest")}},
                },
            ),
        },
        "/api/v1/rollbacks/{rollback_id}": {
            "get": op(
                "getRollback",
                "One record with every stage and timestamp",
                {"200": json_body(ref("Record"), "the record"), **errors(404, *ADMIN_ERRORS)},
                parameters=[ROLLBACK_ID],
            )
        },
        "/api/v1/rollbacks/{rollback_id}/approve": {
            "post": op(
                "approveRollback",
                "Approve a pending rollback (the safety checks run again)",
                {
                    "200": json_body(ref("Record"), "approved: the record"),
                    **errors(404, 409, *ADMIN_ERRORS),
                },
                parameters=[ROLLBACK_ID],
            )
        },
        "/api/v1/rollbacks/{rollback_id}/reject": {
            "post": op(
                "rejectRollback",
                "Reject a pending rollback",
                {
                    "200": json_body(ref("Record"), "rejected: the record"),
                    **errors(404, 409, *ADMIN_ERRORS),
                },
                parameters=[ROLLBACK_ID],
            )
        },
        "/api/v1/status": {
            "get": op(
                "getStatus",
                "Safety state per service",
                {
                    "200": json_body(
                        {
                            "type": "object",
                            "required": ["services"],
                            "properties": {
                                "services": {"type": "array", "items": ref("ServiceStatus")},
                                "next_cursor": {
                                    "type": ["string", "null"],
                                    "description": "pass as `cursor` for the next page (by "
                                    "service name); null at the end",
                                },
                            },
                        },
                        "one entry per service, by name (a page of `limit`, default 1000)",
                    ),
                    **errors(400, *ADMIN_ERRORS),
                },
                parameters=[
                    {"name": "service", "in": "query", "schema": {"type": "string"}},
                    {**LIMIT, "schema": {**LIMIT["schema"], "default": 1000}},  # type: ignore[dict-item]
                    {
                        "name": "cursor",
                        "in": "query",
                        "schema": {"type": "string"},
                        "description": "`next_cursor` of the previous page",
                    },
                ],
            )
        },
        "/api/v1/triggers": {
            "get": op(
                "listTriggerKinds",
                "The trigger kinds acted on (shipped + ROLLBACK_CONFIG triggers:), as matchers",
                {
                    "200": json_body(
                        {
                            "type": "object",
                            "required": ["kinds"],
                            "properties": {"kinds": {"type": "array", "items": ref("TriggerKind")}},
                        },
                        "the shipped kind first, then one per triggers: entry",
                    ),
                    **errors(*ADMIN_ERRORS),
                },
            )
        },
        "/api/v1/explain": {
            "post": op(
                "explainDelivery",
                "Every check of every alert of a delivery; acts on nothing, records nothing",
                {
                    "200": json_body(
                        {
                            "type": "object",
                            "required": ["alerts"],
                            "properties": {
                                "alerts": {
                                    "type": "array",
                                    "items": {
                                        "allOf": [
                                            ref("Outcome"),
                                            {
                                                "type": "object",
                                                "required": ["checks"],
                                                "properties": {
                                                    "checks": {
                                                        "type": "array",
                                                        "items": ref("Check"),
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
                    **errors(400, 413, *ADMIN_ERRORS),
                },
                requestBody={
                    "required": True,
                    "content": {JSON: {"schema": ref("AlertmanagerMessage")}},
                },
            )
        },
        "/api/v1/audit": {
            "get": op(
                "listAudit",
                "Operator actions, newest first",
                {
                    "200": json_body(
                        {
                            "type": "object",
                            "required": ["audit"],
                            "properties": {"audit": {"type": "array", "items": {"type": "object"}}},
                        },
                        "the audit trail",
                    ),
                    **errors(400, *ADMIN_ERRORS),
                },
                parameters=[LIMIT],
            ),
            "post": op(
                "recordAudit",
                "Record a CLI action done outside the receiver (blackout silences)",
                {
                    "201": json_body(
                        {
                            "type": "object",
                            "required": ["recorded"],
                            "properties": {"recorded": {"type": "string"}},
                        },
                        "recorded",
                    ),
                    **errors(400, 413, *ADMIN_ERRORS),
                },
                requestBody={
                    "required": True,
                    "content": {JSON: {"schema": ref("AuditRequest")}},
                },
            ),
        },
        "/api/v1/openapi.json": {
            "get": {
                "operationId": "getOpenAPIDocument",
                "summary": "This document",
                "security": [{}],
                "responses": {"200": json_body({"type": "object"}, "the OpenAPI 3.1 description")},
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
            "Alert": ALERT_SCHEMA,
            "AlertmanagerMessage": MESSAGE_SCHEMA,
            "Outcome": OUTCOME_SCHEMA,
            "Check": CHECK_SCHEMA,
            "Stage": STAGE_SCHEMA,
            "Record": RECORD_SCHEMA,
            "ManualRollbackRequest": MANUAL_REQUEST_SCHEMA,
            "ServiceStatus": SERVICE_STATUS_SCHEMA,
            "AuditRequest": AUDIT_REQUEST_SCHEMA,
            "TriggerKind": TRIGGER_KIND_SCHEMA,
        },
        "responses": {
            name: json_body(ref("Error"), description)
            for name, description in ERROR_RESPONSES.values()
        },
    },
}


@bp.get("/api/v1/openapi.json")
def openapi_document() -> Response:
    """The OpenAPI document; no auth, so tools and people can read it before holding a token."""
    return jsonify(SPEC)
