"""The admin API: /admin/keys (key lifecycle), authenticated by an admin key from config."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.config import Config
from gateway.errors import GatewayError
from gateway.keys.lifecycle import KeyLifecycle, usage_report
from gateway.services import services_of
from gateway.surfaces import admin_tasks
from gateway.surfaces.http import json_response, parse_json, read_body, with_errors

PREFIX = "/admin"
MAX_ADMIN_BODY = 64 * 1024
AdminHandler = Callable[[Request, KeyLifecycle, str], Awaitable[Response]]


class AdminKeys:
    """Admin keys from config, as digests; `actor` is the matching key's name."""

    def __init__(self, config: Config) -> None:
        self._keys = [(k.name, hashlib.sha256(k.secret.get_secret_value().encode()).digest())
                      for k in config.admin.keys]

    def actor(self, authorization: str | None) -> str:
        scheme, _, token = (authorization or "").partition(" ")
        digest = hashlib.sha256(token.strip().encode()).digest()
        found = None
        for name, known in self._keys:
            if hmac.compare_digest(known, digest):
                found = name
        if scheme.lower() != "bearer" or not token.strip() or found is None:
            raise GatewayError(401, "invalid_admin_key",
                               "This endpoint needs an admin key (admin.keys in the config).")
        return found


def _admin(handler: AdminHandler) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        services = services_of(request)
        admin_keys: AdminKeys = request.app.state.admin_keys
        actor = admin_keys.actor(request.headers.get("authorization"))
        lifecycle = KeyLifecycle(services.store, services.config.client_keys, services.clock,
                                 catalogue=services.catalogue,
                                 allow_private=services.config.webhooks.allow_private)
        response = await handler(request, lifecycle, actor)
        if request.method != "GET":
            services.client_keys.forget_stored()  # this replica sees the change at once
        return response

    return with_errors("openai", endpoint)


async def _body(request: Request) -> Any:
    raw = await read_body(request, MAX_ADMIN_BODY,
                          timeout=services_of(request).config.server.body_timeout)
    data = parse_json(raw) if raw.strip() else {}
    if not isinstance(data, dict):
        raise GatewayError(400, "invalid_json", "The request body must be a JSON object.")
    return data


async def create_key(request: Request, keys: KeyLifecycle, actor: str) -> Response:
    return json_response(await keys.create(await _body(request), actor=actor), 201)


async def list_keys(request: Request, keys: KeyLifecycle, actor: str) -> Response:
    return json_response({"object": "list", "data": await keys.list()})


async def get_key(request: Request, keys: KeyLifecycle, actor: str) -> Response:
    return json_response(await keys.get(request.path_params["name"]))


async def update_key(request: Request, keys: KeyLifecycle, actor: str) -> Response:
    name = request.path_params["name"]
    return json_response(await keys.update(name, await _body(request), actor=actor))


async def revoke_key(request: Request, keys: KeyLifecycle, actor: str) -> Response:
    return json_response(await keys.revoke(request.path_params["name"], actor=actor))


async def rotate_key(request: Request, keys: KeyLifecycle, actor: str) -> Response:
    return json_response(await keys.rotate(request.path_params["name"], actor=actor))


async def rotate_webhook_secret(request: Request, keys: KeyLifecycle, actor: str) -> Response:
    return json_response(await keys.rotate_webhook_secret(request.path_params["name"],
                                                          actor=actor))


async def webhook_secret(request: Request, keys: KeyLifecycle, actor: str) -> Response:
    return json_response(await keys.webhook_secret(request.path_params["name"], actor=actor))


async def failed_webhooks(request: Request, keys: KeyLifecycle, actor: str) -> Response:
    """Webhook messages that gave up after every retry (never their bodies' secrets: none)."""
    failed = await services_of(request).store.failed_webhooks(100)
    return json_response({"object": "list", "data": [
        {"id": d.message_id, "kind": d.kind, "key": d.owner, "task_id": d.task_id,
         "url": d.url, "attempts": d.attempts, "last_error": d.last_error,
         "created_at": int(d.created_at), "failed_at": int(d.next_at)} for d in failed]})


async def usage(request: Request, keys: KeyLifecycle, actor: str) -> Response:
    services = services_of(request)
    params = request.query_params
    report = await usage_report(services.store, since=params.get("from"),
                                until=params.get("to"), key=params.get("key") or None,
                                now=services.clock(), currency=services.config.prices.currency)
    return json_response(report)


def routes() -> list[Route]:
    keys = PREFIX + "/keys"
    return [
        Route(PREFIX + "/usage", _admin(usage), methods=["GET"]),
        Route(PREFIX + "/tasks", _admin(admin_tasks.recent_tasks), methods=["GET"]),
        Route(PREFIX + "/stats", _admin(admin_tasks.stats), methods=["GET"]),
        Route(keys, _admin(create_key), methods=["POST"]),
        Route(keys, _admin(list_keys), methods=["GET"]),
        Route(keys + "/{name}", _admin(get_key), methods=["GET"]),
        Route(keys + "/{name}", _admin(update_key), methods=["PATCH"]),
        Route(keys + "/{name}", _admin(revoke_key), methods=["DELETE"]),
        Route(keys + "/{name}/rotate", _admin(rotate_key), methods=["POST"]),
        Route(keys + "/{name}/rotate-webhook-secret", _admin(rotate_webhook_secret),
              methods=["POST"]),
        Route(keys + "/{name}/webhook-secret", _admin(webhook_secret), methods=["GET"]),
        Route(PREFIX + "/webhooks/failed", _admin(failed_webhooks), methods=["GET"]),
    ]

