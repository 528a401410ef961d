"""The OpenAPI 3.1 building blocks: shared schemas (the record included) and helpers."""

from __future__ import annotations

from typing import Any

JSON = "application/json"


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def nullable(kind: str) -> dict[str, Any]:
    return {"type": [kind, "null"]}


def json_body(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": schema}}}


def errors(*codes: int) -> dict[str, Any]:
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

STRING_MAP_SCHEMA = {"type": "object", "additionalProperties": {"type": "string"}}

ALERT_SCHEMA = {
    "type": "object",
    "description": "One Alertmanager alert (webhook payload version 4).",
    "required": ["status", "labels", "fingerprint"],
    "properties": {
        "status": {"type": "string", "enum": ["firing", "resolved"]},
        "labels": STRING_MAP_SCHEMA,
        "annotations": STRING_MAP_SCHEMA,
        "startsAt": {"type": "string", "format": "date-time"},
        "endsAt": {"type": "string", "format": "date-time"},
        "generatorURL": {"type": "string"},
        "fingerprint": {"type": "string", "minLength": 1},
    },
}

MESSAGE_SCHEMA = {
    "type": "object",
    "description": "An Alertmanager webhook delivery (payload version 4).",
    "required": ["alerts"],
    "properties": {
        "version": {"type": "string"},
        "groupKey": {"type": "string"},
        "truncatedAlerts": {"type": "integer", "minimum": 0},
        "status": {"type": "string", "enum": ["firing", "resolved"]},
        "receiver": {"type": "string"},
        "groupLabels": STRING_MAP_SCHEMA,
        "commonLabels": STRING_MAP_SCHEMA,
        "commonAnnotations": STRING_MAP_SCHEMA,
        "externalURL": {"type": "string"},
        "alerts": {"type": "array", "items": ref("Alert")},
    },
}

DECISION_SCHEMA = {"type": "string", "enum": ["rollback", "pending_approval", "ignored", "skipped"]}

OUTCOME_SCHEMA = {
    "type": "object",
    "description": "One alert's decision; `rollback_id` names its history record.",
    "required": ["fingerprint", "alertname", "service", "decision", "reason", "rollback_id"],
    "properties": {
        "fingerprint": {"type": "string"},
        "alertname": {"type": "string"},
        "service": {"type": "string"},
        "decision": DECISION_SCHEMA,
        "reason": {"type": "string"},
        "rollback_id": nullable("string"),
    },
}

CHECK_SCHEMA = {
    "type": "object",
    "description": "One safety check and its result at decision time.",
    "required": ["check", "passed"],
    "properties": {
        "check": {"type": "string"},
        "passed": {"type": ["boolean", "null"]},
        "detail": {"type": "string"},
    },
}

STAGE_SCHEMA = {
    "type": "object",
    "required": ["name", "started_at"],
    "properties": {
        "name": {"type": "string"},
        "started_at": {"type": "string"},
        "finished_at": nullable("string"),
        "ok": nullable("boolean"),
        "error": nullable("string"),
    },
}

RECORD_SCHEMA = {
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
        "decision": DECISION_SCHEMA,
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
        "finished_at": nullable("string"),
        "actor": {"type": "string"},
        "mode": {"type": "string"},
        "automatic": {"type": "boolean"},
        "dry_run": {"type": "boolean"},
        "episode": nullable("string"),
        "rolled_back_from": {"type": "object"},
        "target": {
            "type": "object",
            "description": "commit, revision, revert_commit, pull_request",
        },
        "stages": {"type": "array", "items": ref("Stage")},
        "checks": {"type": "array", "items": ref("Check")},
        "error": nullable("string"),
        "failed_stage": nullable("string"),
        "not_effective": {"type": "boolean"},
        "validated": nullable("boolean"),
        "audit": {"type": "array", "items": {"type": "object"}},
        "expires_at": nullable("string"),
        "veto_at": nullable("string"),
        "repeats": {"type": "integer", "minimum": 0},
        "last_seen_at": nullable("string"),
        "details": {"type": "object"},
    },
}

MANUAL_REQUEST_SCHEMA = {
    "type": "object",
    "required": ["service"],
    "properties": {
        "service": {"type": "string", "minLength": 1},
        "mode": {"type": ["string", "null"], "enum": ["gitops", "argocd", "both", None]},
        "target_commit": nullable("string"),
        "target_revision": nullable("string"),
        "reason": nullable("string"),
        "dry_run": {"type": "boolean"},
        "force": {"type": "boolean"},
    },
}

MANUAL_ANSWER_SCHEMA = {
    "allOf": [
        ref("Outcome"),
        {"type": "object", "required": ["record"], "properties": {"record": ref("Record")}},
    ]
}

SERVICE_STATUS_SCHEMA = {
    "type": "object",
    "description": "Safety state of one service: lock, cooldown, rate limits, blackout, last.",
    "required": ["service"],
    "properties": {
        "service": {"type": "string"},
        "enabled": {"type": "boolean"},
        "locked_by": nullable("string"),
        "cooldown_seconds_left": {"type": "number", "minimum": 0},
        "rollbacks_last_hour": {"type": "integer", "minimum": 0},
        "rollbacks_last_day": {"type": "integer", "minimum": 0},
        "limits": {"type": "object"},
        "blackout": {"type": "object"},
        "last_rollback": {"anyOf": [ref("Record"), {"type": "null"}]},
        "last_skip": {"anyOf": [ref("Record"), {"type": "null"}]},
        "argocd_autosync_disabled": {
            "description": "The service's Argo CD app while the receiver left auto-sync off.",
            "anyOf": [
                {
                    "type": "object",
                    "required": ["app"],
                    "properties": {
                        "app": {"type": "string"},
                        "since": nullable("string"),
                        "rollback_id": nullable("string"),
                    },
                },
                {"type": "null"},
            ],
        },
    },
}

AUDIT_REQUEST_SCHEMA = {
    "type": "object",
    "required": ["action", "silence_id"],
    "properties": {
        "action": {"type": "string", "enum": ["blackout_created", "blackout_ended"]},
        "silence_id": {"type": "string", "minLength": 1},
        "service": nullable("string"),
        "comment": nullable("string"),
        "until": nullable("string"),
    },
}

TRIGGER_KIND_SCHEMA = {
    "type": "object",
    "description": "one kind of alert the receiver acts on; `blackout create` silences each",
    "required": ["name", "tier", "service_label", "matchers"],
    "properties": {
        "name": {"type": "string", "description": "shipped, or triggers[<index>]"},
        "tier": {"type": "string", "description": "critical, emergency or critical|emergency"},
        "service_label": {"type": "string", "description": "the label naming the service"},
        "matchers": {
            "type": "array",
            "description": "Alertmanager silence matchers (API v2 form)",
            "items": {
                "type": "object",
                "required": ["name", "value", "isRegex", "isEqual"],
                "properties": {
                    "name": {"type": "string"},
                    "value": {"type": "string"},
                    "isRegex": {"type": "boolean"},
                    "isEqual": {"type": "boolean"},
                },
            },
        },
    },
}

ROLLBACK_ID = {
    "name": "rollback_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string"},
    "description": "the record's id, e.g. rb-20260101T000000Z-0123abcd",
}
LIMIT = {
    "name": "limit",
    "in": "query",
    "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 50},
}
ADMIN: list[dict[str, list[str]]] = [{"adminToken": []}]
ADMIN_ERRORS = (401, 403, 503)


def op(operation_id: str, summary: str, responses: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "operationId": operation_id,
        "summary": summary,
        "security": ADMIN,
        "responses": responses,
        **extra,
    }


def record_links() -> dict[str, Any]:
    """Links from an answer carrying `rollback_id` to the operations on that record."""
    by_id = {"rollback_id": "$response.body#/rollback_id"}
    return {
        "GetRollback": {"operationId": "getRollback", "parameters": by_id},
        "ApproveRollback": {"operationId": "approveRollback", "parameters": by_id},
        "RejectRollback": {"operationId": "rejectRollback", "parameters": by_id},
    }


def with_links(response: dict[str, Any]) -> dict[str, Any]:
    return {**response, "links": record_links()}
