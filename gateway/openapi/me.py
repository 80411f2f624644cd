"""GET /me in the document: a client key's own limits, usage and budget left (issue 11,
contract 2). Costs are numbers rounded to 6 decimals, in `currency`; null where no price or
no such limit is configured."""

from __future__ import annotations

from gateway.openapi.common import CLIENT, Schema, errors, json_body, nullable, ref

TAG = "me"
_INT = nullable({"type": "integer"})
_COST = nullable({"type": "number"})

SCHEMAS: dict[str, Schema] = {
    "Me": {
        "type": "object",
        "required": ["object", "name", "models", "limits", "usage", "remaining", "currency",
                     "in_flight", "webhook_url"],
        "properties": {
            "object": {"const": "gateway.key"},
            "name": {"type": "string"},
            "models": {"type": "array", "items": {"type": "string"}},
            "limits": {"type": "object", "properties": {
                "rpm": _INT, "max_in_flight": _INT, "daily_tokens": _INT,
                "monthly_tokens": _INT, "daily_cost": _COST, "monthly_cost": _COST}},
            "usage": {"type": "object", "required": ["today", "month"], "properties": {
                "today": {"type": "object", "properties": {
                    "day": {"type": "string"}, "tasks": {"type": "integer"},
                    "tokens": {"type": "integer"}, "cost": _COST}},
                "month": {"type": "object", "properties": {
                    "month": {"type": "string"}, "tasks": {"type": "integer"},
                    "tokens": {"type": "integer"}, "cost": _COST}}}},
            "remaining": {"type": "object", "properties": {
                "daily_tokens": _INT, "monthly_tokens": _INT,
                "daily_cost": _COST, "monthly_cost": _COST}},
            "currency": nullable({"type": "string"}),
            "in_flight": {"type": "integer", "minimum": 0},
            "webhook_url": nullable({"type": "string"}),
        },
    },
}

PATHS: dict[str, Schema] = {
    "/me": {"get": {
        "operationId": "getMe", "tags": [TAG], "security": CLIENT,
        "summary": "The calling key: its models, limits, usage today and this month, budget "
                   "left, tasks in flight.",
        "responses": {"200": json_body(ref("Me"), "The key."),
                      **errors("OpenAIError", 401, 403, 405, 429, 500)},
    }},
}
