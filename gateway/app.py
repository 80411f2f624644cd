"""create_app: builds services, routes, middleware and lifespan from one Config."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from gateway import downloads, native, videos
from gateway.auth import ClientKeys
from gateway.config import Config, build_catalogue
from gateway.errors import GatewayError
from gateway.http import Shape, error_response, json_response
from gateway.middleware import RequestIdMiddleware
from gateway.services import Services
from gateway.store import open_store
from gateway.store.base import TaskStore
from gateway.upstream import Upstream


def create_app(
    config: Config,
    *,
    store: TaskStore | None = None,
    clock: Callable[[], float] = time.time,
    extra_routes: Sequence[BaseRoute] = (),
) -> Starlette:
    """The gateway as an ASGI app.

    Args:
        store: a task store to use instead of the one named in ``config.store``.
        extra_routes: mounted before the gateway's own (the demo mounts its simulator here).
    """
    services = Services(
        config=config,
        catalogue=build_catalogue(config),
        client_keys=ClientKeys(config.client_keys),
        upstreams={u.name: Upstream(u) for u in config.upstreams},
        store=store if store is not None else open_store(config.store.url),
        clock=clock,
    )

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await services.store.open()
        try:
            yield
        finally:
            for upstream in services.upstreams.values():
                await upstream.aclose()
            await services.store.close()

    app = Starlette(
        routes=[*extra_routes, *native.routes(), *downloads.routes(), *videos.routes(),
                *_health_routes()],
        exception_handlers={HTTPException: _http_exception},
        lifespan=lifespan,
    )
    app.state.services = services
    app.add_middleware(RequestIdMiddleware)
    return app


def _health_routes() -> list[Route]:
    async def healthz(request: Request) -> Response:
        return json_response({"status": "ok"})

    async def readyz(request: Request) -> Response:
        services: Services = request.app.state.services
        if await services.store.ping():
            return json_response({"status": "ready"})
        return json_response({"status": "unavailable", "reason": "task store"}, 503)

    return [Route("/healthz", healthz), Route("/readyz", readyz)]


async def _http_exception(request: Request, exc: Exception) -> Response:
    """Unknown paths and wrong methods, in the envelope of the surface they were aimed at."""
    assert isinstance(exc, HTTPException)
    shape: Shape = "openai" if request.url.path.startswith("/v1/") else "ark"
    if exc.status_code == 405:
        error = GatewayError(405, "MethodNotAllowed",
                             f"{request.method} is not supported on {request.url.path}.")
    else:
        error = GatewayError(exc.status_code, "NotFound" if exc.status_code == 404 else "Error",
                             f"No route for {request.method} {request.url.path}.")
    return error_response(error, shape)
