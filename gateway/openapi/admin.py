"""The admin API in the document: /admin/keys, usage, tasks, stats, failed webhooks (admin
keys only; OpenAI's error envelope). A key's secret appears only in the answers that create or
rotate it."""

from __future__ import annotations

from gateway.openapi.common import (
    ADMIN,
    Schema,
    errors,
    json_body,
    nullable,
    path_param,
    query_param,
    ref,
)

PREFIX = "/admin"
TAG = "admin"
READ_ERRORS = (400, 401, 404, 405, 500)
WRITE_ERRORS = (*READ_ERRORS, 408, 409, 413)
_INT = nullable({"type": "integer"})
_COST = nullable({"type": "number"})
_DAY = {"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}$"}

_POLICY: Schema = {
    "models": nullable({"type": "array", "items": {"type": "string"},
                        "description": "Model ids or aliases, or [\"*\"] (null: all)."}),
    "rpm": _INT, "max_in_flight": _INT, "daily_tokens": _INT, "monthly_tokens": _INT,
    "daily_cost": _COST, "monthly_cost": _COST,
    "expires_at": nullable({"type": ["integer", "string"],
                            "description": "Unix seconds or an ISO 8601 time."}),
    "disabled": nullable({"type": "boolean"}),
    "webhook_url": nullable({"type": "string"}),
}
SCHEMAS: dict[str, Schema] = {
    "Key": {
        "type": "object",
        "required": ["name", "source", "prefix", "models", "rpm", "max_in_flight",
                     "daily_tokens", "monthly_tokens", "expires_at", "disabled", "revoked",
                     "created_at", "updated_at", "webhook_url"],
        "properties": {
            "name": {"type": "string"},
            "source": {"type": "string", "enum": ["config", "store"]},
            "prefix": nullable({"type": "string"}),
            "models": {"type": "array", "items": {"type": "string"}},
            "rpm": _INT, "max_in_flight": _INT, "daily_tokens": _INT, "monthly_tokens": _INT,
            "daily_cost": _COST, "monthly_cost": _COST,
            "expires_at": _INT,
            "disabled": {"type": "boolean"},
            "revoked": {"type": "boolean"},
            "created_at": _INT,
            "updated_at": _INT,
            "webhook_url": nullable({"type": "string"}),
            "key": {"type": "string", "description": "The secret: only when created or "
                                                     "rotated, shown this once."},
            "webhook_secret": {"type": "string"},
        },
    },
    "KeyList": {"type": "object", "required": ["object", "data"],
                "properties": {"object": {"const": "list"},
                               "data": {"type": "array", "items": ref("Key")}}},
    "NewKey": {"type": "object", "required": ["name"], "additionalProperties": False,
               "properties": {"name": {"type": "string",
                                       "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"},
                              **_POLICY}},
    "KeyChanges": {"type": "object", "additionalProperties": False, "properties": _POLICY},
    "WebhookSecret": {"type": "object", "required": ["name", "webhook_secret"],
                      "properties": {"name": {"type": "string"},
                                     "webhook_secret": nullable({"type": "string"})}},
    "Usage": {
        "type": "object", "required": ["object", "from", "to", "data", "totals"],
        "properties": {
            "object": {"const": "usage"}, "from": {"type": "string"}, "to": {"type": "string"},
            "currency": nullable({"type": "string"}),
            "data": {"type": "array", "items": {
                "type": "object", "required": ["key", "model", "day", "tasks", "tokens"],
                "properties": {"key": {"type": "string"}, "model": {"type": "string"},
                               "day": {"type": "string"}, "tasks": {"type": "integer"},
                               "tokens": {"type": "integer"}, "cost": _COST}}},
            "totals": {"type": "array", "items": {
                "type": "object", "required": ["key", "tasks", "tokens"],
                "properties": {"key": {"type": "string"}, "tasks": {"type": "integer"},
                               "tokens": {"type": "integer"}, "cost": _COST}}},
        },
    },
    "AdminTask": {
        "type": "object",
        "required": ["id", "owner", "model", "status", "created_at", "updated_at"],
        "properties": {
            "id": {"type": "string"}, "owner": {"type": "string"},
            "model": {"type": "string"}, "status": {"type": "string"},
            "created_at": {"type": "integer"}, "updated_at": {"type": "integer"},
            "prompt": nullable({"type": "string"}), "tokens": _INT, "cost": _COST,
            "currency": nullable({"type": "string"}),
            "video_url": nullable({"type": "string"}),
            "thumbnail_url": nullable({"type": "string"}),
        },
    },
    "AdminTaskList": {"type": "object", "required": ["object", "data", "has_more"],
                      "properties": {"object": {"const": "list"},
                                     "data": {"type": "array", "items": ref("AdminTask")},
                                     "has_more": {"type": "boolean"}}},
    "Stats": {
        "type": "object", "required": ["object", "day", "in_flight", "keys", "today"],
        "properties": {"object": {"const": "gateway.stats"}, "day": {"type": "string"},
                       "in_flight": {"type": "integer", "minimum": 0},
                       "keys": {"type": "integer", "minimum": 0},
                       "today": {"type": "object", "required": ["tasks", "tokens"],
                                 "properties": {"tasks": {"type": "integer"},
                                                "tokens": {"type": "integer"}}}},
    },
    "FailedWebhookList": {
        "type": "object", "required": ["object", "data"],
        "properties": {"object": {"const": "list"}, "data": {"type": "array", "items": {
            "type": "object",
            "required": ["id", "kind", "key", "task_id", "url", "attempts", "last_error",
                         "created_at", "failed_at"],
            "properties": {"id": {"type": "string"}, "kind": {"type": "string"},
                           "key": {"type": "string"}, "task_id": nullable({"type": "string"}),
                           "url": {"type": "string"}, "attempts": {"type": "integer"},
                           "last_error": nullable({"type": "string"}),
                           "created_at": {"type": "integer"},
                           "failed_at": {"type": "integer"}}}}},
    },
}


def _op(operation_id: str, summary: str, ok: Schema, *, status: str = "200",
        body: str | None = None, params: list[Schema] | None = None,
        write: bool = False) -> Schema:
    operation: Schema = {
        "operationId": operation_id, "tags": [TAG], "security": ADMIN, "summary": summary,
        "responses": {status: json_body(ok, summary),
                      **errors("OpenAIError", *(WRITE_ERRORS if write else READ_ERRORS))},
    }
    if body is not None:
        operation["requestBody"] = {"required": True, "content": {
            "application/json": {"schema": ref(body)}}}
    if params:
        operation["parameters"] = params
    return operation


_NAME = path_param("name", "The key's name.")
KEYS = PREFIX + "/keys"

PATHS: dict[str, Schema] = {
    KEYS: {
        "post": _op("createKey", "Create a client key (its secret is shown once).",
                    ref("Key"), status="201", body="NewKey", write=True),
        "get": _op("listKeys", "Every key, config-file keys included.", ref("KeyList")),
    },
    KEYS + "/{name}": {
        "parameters": [_NAME],
        "get": _op("getKey", "One key.", ref("Key")),
        "patch": _op("updateKey", "Change a stored key's limits.", ref("Key"),
                     body="KeyChanges", write=True),
        "delete": _op("revokeKey", "Revoke a stored key.", ref("Key"), write=True),
    },
    KEYS + "/{name}/rotate": {
        "parameters": [_NAME],
        "post": _op("rotateKey", "A new secret for the key (shown once).", ref("Key"),
                    write=True),
    },
    KEYS + "/{name}/rotate-webhook-secret": {
        "parameters": [_NAME],
        "post": _op("rotateWebhookSecret", "A new webhook signing secret.", ref("Key"),
                    write=True),
    },
    KEYS + "/{name}/webhook-secret": {
        "parameters": [_NAME],
        "get": _op("getWebhookSecret", "The secret signing the key's webhooks.",
                   ref("WebhookSecret"), write=True),
    },
    PREFIX + "/usage": {
        "get": _op("getUsage", "Tasks, tokens and cost by key, model and UTC day.",
                   ref("Usage"), params=[
                       query_param("from", "First day (default: 29 days ago).", _DAY),
                       query_param("to", "Last day, included (default: today).", _DAY),
                       query_param("key", "Only this key.", {"type": "string"})]),
    },
    PREFIX + "/tasks": {
        "get": _op("listAdminTasks", "Recent tasks of every key, newest first.",
                   ref("AdminTaskList"), params=[
                       query_param("limit", "1 to 200 (default 50).",
                                   {"type": "integer", "minimum": 1, "maximum": 200}),
                       query_param("owner", "Only this key's tasks.", {"type": "string"}),
                       query_param("after", "A task id: those older than it.",
                                   {"type": "string"})]),
    },
    PREFIX + "/stats": {
        "get": _op("getStats", "Tasks in flight now, and today's tasks and tokens (UTC).",
                   ref("Stats")),
    },
    PREFIX + "/webhooks/failed": {
        "get": _op("listFailedWebhooks", "Webhook messages that gave up after every retry.",
                   ref("FailedWebhookList")),
    },
}
