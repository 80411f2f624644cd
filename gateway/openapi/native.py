"""The native Ark surface in the document: /api/v3/contents/generations/tasks.

Task bodies are Ark's, relayed as the upstream sent them (seedance-native.md), so only the
fields every task carries are required; upstream errors reach the caller verbatim, in Ark's
envelope, with Ark's status.
"""

from __future__ import annotations

from gateway.openapi.common import (
    CLIENT,
    CLIENT_ERRORS,
    UPSTREAM_ERRORS,
    Schema,
    errors,
    json_body,
    nullable,
    path_param,
    query_param,
    ref,
)

PREFIX = "/api/v3/contents/generations/tasks"
TAG = "native"
STATUSES = ["queued", "running", "cancelled", "succeeded", "failed", "expired"]
# Forwarded from Ark as well as the gateway's own refusals.
ERRORS = (*CLIENT_ERRORS, 408, 409, 413, 422, *UPSTREAM_ERRORS)

_MEDIA_URL: Schema = {"type": "object", "required": ["url"],
                      "properties": {"url": {"type": "string"}}}
SCHEMAS: dict[str, Schema] = {
    "NativeContentItem": {
        "type": "object",
        "required": ["type"],
        "description": "One input: text, or an image, video or audio (URL, data: URL or "
                       "asset:// id), or a draft task.",
        "properties": {
            "type": {"type": "string",
                     "enum": ["text", "image_url", "video_url", "audio_url", "draft_task"]},
            "text": {"type": "string"},
            "image_url": _MEDIA_URL,
            "video_url": _MEDIA_URL,
            "audio_url": _MEDIA_URL,
            "draft_task": {"type": "object", "properties": {"id": {"type": "string"}}},
            "role": {"type": "string"},
        },
    },
    "NativeCreateTask": {
        "type": "object",
        "required": ["model", "content"],
        "properties": {
            "model": {"type": "string", "description": "A model id or alias (GET /v1/models)."},
            "content": {"type": "array", "items": ref("NativeContentItem")},
            "callback_url": {"type": "string",
                             "description": "Signed task events go there (sent by the "
                                            "gateway, never by Ark)."},
            "return_last_frame": {"type": "boolean"},
            "service_tier": {"type": "string", "enum": ["default", "flex"]},
            "execution_expires_after": {"type": "integer"},
            "generate_audio": {"type": "boolean"},
            "draft": {"type": "boolean"},
            "resolution": {"type": "string"},
            "ratio": {"type": "string"},
            "duration": {"type": "integer"},
            "frames": {"type": "integer"},
            "seed": {"type": "integer"},
            "camera_fixed": {"type": "boolean"},
            "watermark": {"type": "boolean"},
        },
    },
    "NativeCreated": {"type": "object", "required": ["id"],
                      "properties": {"id": {"type": "string"}}},
    "NativeTask": {
        "type": "object",
        "required": ["id", "status"],
        "properties": {
            "id": {"type": "string"},
            "model": {"type": "string"},
            "status": {"type": "string", "enum": STATUSES},
            "error": nullable({"type": "object", "properties": {
                "code": {"type": "string"}, "message": {"type": "string"}}}),
            "content": {"type": "object", "properties": {
                "video_url": {"type": "string"}, "last_frame_url": {"type": "string"}}},
            "usage": {"type": "object", "properties": {
                "completion_tokens": {"type": "integer"}, "total_tokens": {"type": "integer"}}},
            "created_at": {"type": "integer"},
            "updated_at": {"type": "integer"},
            "service_tier": {"type": "string"},
        },
    },
    "NativeTaskList": {
        "type": "object",
        "required": ["items", "total"],
        "properties": {"items": {"type": "array", "items": ref("NativeTask")},
                       "total": {"type": "integer", "minimum": 0}},
    },
}

_TASK_ID = path_param("task_id", "The task id a create returned.")
_IDEMPOTENCY = {"name": "Idempotency-Key", "in": "header", "required": False,
                "description": "A retry with the same key and body answers the same task.",
                "schema": {"type": "string"}}
_COMMA_LIST = {"type": "string", "description": "Comma-separated."}

PATHS: dict[str, Schema] = {
    PREFIX: {
        "post": {
            "operationId": "createTask", "tags": [TAG], "security": CLIENT,
            "summary": "Create a video generation task (Ark's request format).",
            "parameters": [_IDEMPOTENCY],
            "requestBody": {"required": True, "content": {
                "application/json": {"schema": ref("NativeCreateTask")}}},
            "responses": {"200": json_body(ref("NativeCreated"), "The task was created."),
                          **errors("ArkError", *ERRORS)},
        },
        "get": {
            "operationId": "listTasks", "tags": [TAG], "security": CLIENT,
            "summary": "The key's tasks of the last 7 days, newest first.",
            "parameters": [
                query_param("page_num", "From 1.", {"type": "integer", "minimum": 1,
                                                    "maximum": 500}),
                query_param("page_size", "From 1 to 500.",
                            {"type": "integer", "minimum": 1, "maximum": 500}),
                query_param("filter.status", "One task status.",
                            {"type": "string", "enum": STATUSES}),
                query_param("filter.task_ids", "Task ids.", _COMMA_LIST),
                query_param("filter.model", "An upstream model id.", {"type": "string"}),
                query_param("filter.service_tier", "default or flex.",
                            {"type": "string", "enum": ["default", "flex"]}),
            ],
            "responses": {"200": json_body(ref("NativeTaskList"), "A page of tasks."),
                          **errors("ArkError", *CLIENT_ERRORS)},
        },
    },
    PREFIX + "/{task_id}": {
        "parameters": [_TASK_ID],
        "get": {
            "operationId": "getTask", "tags": [TAG], "security": CLIENT,
            "summary": "A task, as the upstream last reported it.",
            "responses": {"200": json_body(ref("NativeTask"), "The task."),
                          **errors("ArkError", *ERRORS)},
        },
        "delete": {
            "operationId": "deleteTask", "tags": [TAG], "security": CLIENT,
            "summary": "Cancel a queued task, or delete a finished one.",
            "responses": {"200": json_body({"type": "object"}, "Done (Ark answers {})."),
                          **errors("ArkError", *ERRORS)},
        },
    },
}
