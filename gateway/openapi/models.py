"""GET /v1/models in the document: OpenAI's model list, the models a key may use."""

from __future__ import annotations

from gateway.openapi.common import CLIENT, Schema, errors, json_body, path_param, ref

PREFIX = "/v1/models"
TAG = "models"

SCHEMAS: dict[str, Schema] = {
    "Model": {
        "type": "object", "required": ["id", "object", "created", "owned_by"],
        "properties": {"id": {"type": "string"}, "object": {"const": "model"},
                       "created": {"type": "integer", "minimum": 0},
                       "owned_by": {"type": "string"}},
    },
    "ModelList": {
        "type": "object", "required": ["object", "data"],
        "properties": {"object": {"const": "list"},
                       "data": {"type": "array", "items": ref("Model")}},
    },
}

PATHS: dict[str, Schema] = {
    PREFIX: {"get": {
        "operationId": "listModels", "tags": [TAG], "security": CLIENT,
        "summary": "The models and aliases this key may use.",
        "responses": {"200": json_body(ref("ModelList"), "The models."),
                      **errors("OpenAIError", 401, 403, 405, 500)},
    }},
    PREFIX + "/{model}": {
        "parameters": [path_param("model", "A model id or alias.")],
        "get": {
            "operationId": "retrieveModel", "tags": [TAG], "security": CLIENT,
            "summary": "One model this key may use; 404 model_not_found otherwise.",
            "responses": {"200": json_body(ref("Model"), "The model."),
                          **errors("OpenAIError", 401, 403, 404, 405, 500)},
        },
    },
}
