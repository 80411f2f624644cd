"""Routes for operators and machines in the document: health, metrics, signed result files,
Ark's callbacks, the document itself."""

from __future__ import annotations

from gateway.openapi.common import JSON, Schema, errors, json_body, path_param, query_param

TAG = "operations"
_FILE = {"content": {t: {"schema": {"type": "string", "format": "binary"}}
                     for t in ("video/mp4", "image/png")}}

SCHEMAS: dict[str, Schema] = {
    "Health": {"type": "object", "required": ["status"],
               "properties": {"status": {"const": "ok"}}},
    "Readiness": {"type": "object", "required": ["status", "checks"],
                  "properties": {"status": {"type": "string", "enum": ["ready", "unavailable"]},
                                 "checks": {"type": "object",
                                            "additionalProperties": {"type": "boolean"}}}},
}

PATHS: dict[str, Schema] = {
    "/healthz": {"get": {
        "operationId": "healthz", "tags": [TAG], "security": [],
        "summary": "Liveness: the process answers.",
        "responses": {"200": json_body({"$ref": "#/components/schemas/Health"}, "Alive.")},
    }},
    "/readyz": {"get": {
        "operationId": "readyz", "tags": [TAG], "security": [],
        "summary": "Readiness: the config is loaded and the store answers.",
        "responses": {
            "200": json_body({"$ref": "#/components/schemas/Readiness"}, "Ready."),
            "503": json_body({"$ref": "#/components/schemas/Readiness"}, "Not ready."),
        },
    }},
    "/metrics": {"get": {
        "operationId": "metrics", "tags": [TAG], "security": [{}, {"MetricsToken": []}],
        "summary": "Prometheus metrics (a bearer token when metrics.bearer is set).",
        "responses": {
            "200": {"description": "The Prometheus text exposition format.",
                    "content": {"text/plain": {"schema": {"type": "string"}}}},
            "401": {"description": "metrics.bearer is set and was not sent.",
                    "content": {"text/plain": {"schema": {"type": "string"}}}},
        },
    }},
    "/files/{task_id}/{name}": {
        "parameters": [path_param("task_id", "The task id."),
                       path_param("name", "The file.")],
        "get": {
            "operationId": "signedFile", "tags": [TAG], "security": [],
            "summary": "An archived result file, by a signed link from a task answer.",
            "parameters": [
                query_param("expires", "Unix seconds, from the signed link.",
                            {"type": "string"}),
                query_param("sig", "The link's signature.", {"type": "string"}),
                {"name": "Range", "in": "header", "required": False,
                 "schema": {"type": "string"}},
            ],
            "responses": {"200": {"description": "The whole file.", **_FILE},
                          "206": {"description": "The requested range.", **_FILE},
                          **errors("ArkError", 403, 404, 405, 416, 500)},
        },
    },
    "/ark/callbacks/{owner}": {
        "parameters": [path_param("owner", "The key the task belongs to.")],
        "post": {
            "operationId": "arkCallback", "tags": [TAG], "security": [],
            "summary": "Ark's task callbacks (webhooks.ark_callbacks): a hint to poll the "
                       "task now; the body is never trusted.",
            "requestBody": {"required": False, "content": {JSON: {"schema": {}}}},
            "responses": {"200": json_body({"type": "object"}, "Always {}.")},
        },
    },
    "/openapi.json": {"get": {
        "operationId": "openapi", "tags": [TAG], "security": [],
        "summary": "This document.",
        "responses": {"200": json_body({"type": "object"}, "OpenAPI 3.1.")},
    }},
}
