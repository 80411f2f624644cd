"""Pieces every area of the OpenAPI document shares: error envelopes, security, helpers.

Response objects leave `additionalProperties` open: the gateway relays Ark's task bodies as
they come, and an upstream adding a field must not make the gateway's answers "wrong".
"""

from __future__ import annotations

from typing import Any

Schema = dict[str, Any]
JSON = "application/json"

# The envelope of the native surface (Ark's own) and of everything else (OpenAI's).
ARK_ERROR: Schema = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {
        "type": "object",
        "required": ["code", "message"],
        "properties": {
            "code": {"type": "string"},
            "message": {"type": "string"},
            "param": {"type": "string"},
            "type": {"type": "string"},
        },
    }},
}
OPENAI_ERROR: Schema = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {
        "type": "object",
        "required": ["message", "type", "param", "code"],
        "properties": {
            "message": {"type": "string"},
            "type": {"type": "string"},
            "param": {"type": ["string", "null"]},
            "code": {"type": ["string", "null"]},
        },
    }},
}
SECURITY_SCHEMES: Schema = {
    "ClientKey": {"type": "http", "scheme": "bearer",
                  "description": "A gateway client key (client_keys in the config, or one "
                                 "the admin API created)."},
    "AdminKey": {"type": "http", "scheme": "bearer",
                 "description": "An admin key (admin.keys in the config)."},
    "MetricsToken": {"type": "http", "scheme": "bearer",
                     "description": "metrics.bearer from the config, when it is set."},
}
CLIENT: list[Schema] = [{"ClientKey": []}]
ADMIN: list[Schema] = [{"AdminKey": []}]

ERROR_TEXT = {
    400: "The request is not valid.",
    401: "No valid key was sent.",
    403: "The key may not do this (disabled, expired, model not allowed, bad signature).",
    404: "Not found (or not this key's).",
    405: "The method is not served on this path.",
    408: "The request body stopped arriving.",
    409: "Conflicts with the current state.",
    413: "The request body is too large.",
    415: "The body's content type is not accepted.",
    416: "The requested range is outside the file.",
    422: "Refused by the upstream.",
    429: "A rate, concurrency or budget limit was reached; see Retry-After.",
    500: "The gateway hit an internal error.",
    502: "The upstream could not be reached or answered unusably.",
    503: "The upstream is unavailable.",
    504: "The upstream did not answer in time.",
}
# What any authenticated client route may answer besides its own successes and errors.
CLIENT_ERRORS = (400, 401, 403, 404, 405, 429, 500)
UPSTREAM_ERRORS = (502, 503, 504)


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def json_body(schema: Schema, description: str) -> Schema:
    return {"description": description, "content": {JSON: {"schema": schema}}}


def errors(envelope: str, *statuses: int) -> dict[str, Schema]:
    """Error responses in one envelope ("ArkError" or "OpenAIError")."""
    return {str(status): {"description": ERROR_TEXT[status],
                          "content": {JSON: {"schema": ref(envelope)}}}
            for status in sorted(set(statuses))}


def path_param(name: str, description: str, **schema: Any) -> Schema:
    return {"name": name, "in": "path", "required": True, "description": description,
            "schema": {"type": "string", "minLength": 1, **schema}}


def query_param(name: str, description: str, schema: Schema) -> Schema:
    return {"name": name, "in": "query", "required": False, "description": description,
            "schema": schema}


def nullable(schema: Schema) -> Schema:
    return {"anyOf": [schema, {"type": "null"}]}


COMPONENT_SCHEMAS: dict[str, Schema] = {"ArkError": ARK_ERROR, "OpenAIError": OPENAI_ERROR}
