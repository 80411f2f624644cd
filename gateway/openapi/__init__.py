"""GET /openapi.json: an OpenAPI 3.1 document of every route the gateway serves.

Built as Python data, one module per area; each path is kept only if the app serves it (an
optional route such as /metrics, turned off in the config, is not described), and the
document is encoded once per app and served as bytes. Reading it needs no key.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from gateway import __version__
from gateway.openapi import admin, common, me, models, native, operations, videos

PATH = "/openapi.json"
AREAS = (native, videos, models, me, admin, operations)
TAGS = [
    {"name": "native", "description": "Ark's own API (/api/v3), errors in Ark's envelope."},
    {"name": "videos", "description": "OpenAI's /v1/videos, served by Seedance."},
    {"name": "models", "description": "OpenAI's /v1/models: what a key may use."},
    {"name": "me", "description": "A client key's own limits and usage."},
    {"name": "admin", "description": "Keys, usage and tasks, for admin keys."},
    {"name": "operations", "description": "Health, metrics, files, callbacks."},
]
# The request bodies naming a model of the catalogue.
CREATE_BODIES = ("NativeCreateTask", "CreateVideoJson", "CreateVideoMultipart")
_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def document(served: Iterable[tuple[str, Iterable[str]]] | None = None,
             models: Sequence[str] | None = None) -> dict[str, Any]:
    """The document; with `served` ((path, methods) pairs), only the operations served; with
    `models` (the catalogue's names and aliases), the only `model` values a create accepts."""
    paths: dict[str, Any] = {}
    schemas: dict[str, Any] = dict(common.COMPONENT_SCHEMAS)
    for area in AREAS:
        paths.update(area.PATHS)
        schemas.update(area.SCHEMAS)
    if served is not None:
        paths = _only_served(paths, served)
    if models:
        for name in CREATE_BODIES:
            schemas[name] = _with_models(schemas[name], models)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "seedance-gateway",
            "version": __version__,
            "description": "A self-hosted gateway for ByteDance Seedance video models: Ark's "
                           "native API and OpenAI's /v1/videos, with keys, limits and usage.",
            "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
        },
        "tags": TAGS,
        "security": common.CLIENT,
        "paths": paths,
        "components": {"schemas": schemas, "securitySchemes": common.SECURITY_SCHEMES},
    }


def _with_models(schema: dict[str, Any], models: Sequence[str]) -> dict[str, Any]:
    """A copy: the area modules' data stays the same for every app."""
    model = {**schema["properties"]["model"], "enum": list(models)}
    return {**schema, "properties": {**schema["properties"], "model": model}}


def _only_served(paths: dict[str, Any],
                 served: Iterable[tuple[str, Iterable[str]]]) -> dict[str, Any]:
    methods: dict[str, set[str]] = {}
    for path, verbs in served:
        methods.setdefault(path, set()).update(v.lower() for v in verbs)
    kept: dict[str, Any] = {}
    for path, item in paths.items():
        verbs = methods.get(path, set())
        item = {k: v for k, v in item.items() if k not in _METHODS or k in verbs}
        if any(k in _METHODS for k in item):
            kept[path] = item
    return kept


def openapi_routes(served: Iterable[BaseRoute], *, models: Sequence[str]) -> list[Route]:
    pairs = [(r.path, r.methods or ()) for r in served if isinstance(r, Route)]
    body = orjson.dumps(document([*pairs, (PATH, ("GET",))], models))

    async def openapi(request: Request) -> Response:
        return Response(body, media_type="application/json")

    return [Route(PATH, openapi, methods=["GET"])]
