"""GET /v1/models and /v1/models/{id}: the models (aliases included) the calling key may use.

OpenAI's list shape, so `client.models.list()` works unchanged. A model outside the key's
allow-list is a 404 like an unknown one: a key learns nothing about what it may not use.
`created` is the release day in the upstream model id (`…-260128` is 2026-01-28, UTC), 0 for
an id without one (a custom endpoint): stable across restarts and replicas.
"""

from __future__ import annotations

import re
from calendar import timegm
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.catalog import Catalogue
from gateway.errors import GatewayError
from gateway.keys.auth import ClientIdentity
from gateway.services import caller_of, services_of
from gateway.surfaces.http import json_response, with_errors

PREFIX = "/v1/models"
OWNER = "seedance-gateway"
_RELEASE_DAY = re.compile(r"-(\d{2})(\d{2})(\d{2})$")


def usable_models(catalogue: Catalogue, identity: ClientIdentity) -> list[str]:
    """Catalogue names and aliases the key may use, sorted (an empty allow-list: all)."""
    return [n for n in catalogue.names() if not identity.models or n in identity.models]


def model_object(catalogue: Catalogue, name: str) -> dict[str, Any]:
    spec = catalogue.resolve(name)
    return {"id": name, "object": "model",
            "created": _release_time(spec.upstream_model if spec is not None else name),
            "owned_by": OWNER}


def _release_time(upstream_model: str) -> int:
    found = _RELEASE_DAY.search(upstream_model)
    if found is None:
        return 0
    year, month, day = (int(part) for part in found.groups())
    if not (1 <= month <= 12 and 1 <= day <= 31):
        return 0
    return timegm((2000 + year, month, day, 0, 0, 0))


def model_not_found(model: str) -> GatewayError:
    return GatewayError(404, "model_not_found",
                        f"The model '{model[:200]}' does not exist or you do not have access "
                        "to it.", param="model")


async def list_models(request: Request) -> Response:
    services = services_of(request)
    identity = await caller_of(request, services)
    catalogue = services.catalogue
    return json_response({"object": "list", "data": [
        model_object(catalogue, name) for name in usable_models(catalogue, identity)]})


async def retrieve_model(request: Request) -> Response:
    services = services_of(request)
    identity = await caller_of(request, services)
    name = request.path_params["model"]
    if name not in usable_models(services.catalogue, identity):
        raise model_not_found(name)
    return json_response(model_object(services.catalogue, name))


def routes() -> list[Route]:
    return [
        Route(PREFIX, with_errors("openai", list_models), methods=["GET"]),
        Route(PREFIX + "/{model}", with_errors("openai", retrieve_model), methods=["GET"]),
    ]
