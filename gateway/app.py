"""create_app: builds services, routes, middleware and lifespan from one Config."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.catalog import build_catalogue
from gateway.config import Config
from gateway.errors import GatewayError, Surface
from gateway.keys.auth import ClientKeys
from gateway.keys.policy import Policy
from gateway.observability.logs import flush_logs
from gateway.observability.metrics import Metrics
from gateway.observability.middleware import ObservabilityMiddleware
from gateway.openapi import openapi_routes
from gateway.results import serving as results_serving
from gateway.results.archiver import Archiver
from gateway.results.stores import open_results
from gateway.services import Services
from gateway.store import open_store
from gateway.store.base import GatewayStore
from gateway.surfaces import admin, console, downloads, me, models, native, videos
from gateway.surfaces.http import error_response, json_response
from gateway.tasks.tracker import TaskTracker
from gateway.upstream import Upstream
from gateway.webhooks import ark_callbacks
from gateway.webhooks.deliverer import Deliverer


def create_app(
    config: Config,
    *,
    store: GatewayStore | None = None,
    clock: Callable[[], float] = time.time,
    registry: CollectorRegistry | None = None,
) -> Starlette:
    """The gateway as an ASGI app.

    Args:
        store: a task store to use instead of the one named in ``config.store``.
        registry: the Prometheus registry (a fresh one per app by default).
    """
    catalogue = build_catalogue(config)
    store_ = store if store is not None else open_store(config.store.url.get_secret_value())
    metrics = Metrics(catalogue.names(), registry)
    metrics.price_series((k.name for k in config.client_keys), config.prices.currency)
    services = Services(
        config=config,
        catalogue=catalogue,
        client_keys=ClientKeys(config.client_keys, store=store_),
        upstreams={u.name: Upstream(u, metrics=metrics) for u in config.upstreams},
        store=store_,
        metrics=metrics,
        policy=Policy(store_, clock),
        clock=clock,
        archive=(Archiver(config.results,
                          open_results(config.results, config.store.url.get_secret_value()),
                          clock) if config.results.archive else None),
    )

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await services.store.open()
        for upstream in services.upstreams.values():
            await upstream.open()
        if services.archive is not None:
            await services.archive.start(services)
        # Quarantined upstream keys come back when a probe passes (gateway/upstream/keypool.py).
        watchers = [asyncio.create_task(u.watch_keys()) for u in services.upstreams.values()]
        follower = None
        if config.tracker.enabled:
            follower = asyncio.create_task(TaskTracker(services, config.tracker).run())
        # The webhook outbox is sent from every replica (leases keep each message to one).
        deliverer = (asyncio.create_task(Deliverer(services).run())
                     if config.webhooks.enabled else None)
        try:
            yield
        finally:
            if deliverer is not None:
                deliverer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await deliverer
            if follower is not None:
                follower.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await follower
            for watcher in watchers:
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher
            if services.archive is not None:  # before the upstreams its copies read from
                await services.archive.stop()
            for upstream in services.upstreams.values():
                await upstream.aclose()
            await services.store.close()
            flush_logs()

    served = [*native.routes(), *downloads.routes(), *videos.routes(), *models.routes(),
              *me.routes(),
              *admin.routes(), *results_serving.routes(), *ark_callbacks.routes(),
              *_operations_routes(config)]
    app = Starlette(
        # The console is HTML for people, not an API: outside the OpenAPI document.
        routes=[*served, *openapi_routes(served, models=catalogue.names()), *console.routes()],
        exception_handlers={HTTPException: _http_exception},
        lifespan=lifespan,
    )
    # Starlette answers `/v1/videos/` with a redirect to the Host header's origin, which a
    # caller controls; an unknown path is a 404 in the surface's envelope instead.
    app.router.redirect_slashes = False
    app.state.services = services
    app.state.admin_keys = admin.AdminKeys(config)
    app.add_middleware(ObservabilityMiddleware, metrics=metrics)
    return app


def _operations_routes(config: Config) -> list[Route]:
    async def healthz(request: Request) -> Response:
        """Liveness: the process answers."""
        return json_response({"status": "ok"})

    async def readyz(request: Request) -> Response:
        """Readiness: the config is loaded (it is, or the app would not exist) and the store
        answers."""
        services: Services = request.app.state.services
        checks = {"config": True, "store": await services.store.ping()}
        ready = all(checks.values())
        return json_response({"status": "ready" if ready else "unavailable", "checks": checks},
                             200 if ready else 503)

    routes = [Route("/healthz", healthz), Route("/readyz", readyz)]
    if config.metrics.enabled:
        token = config.metrics.bearer
        expected = (b"Bearer " + token.get_secret_value().encode()) if token else None

        async def metrics(request: Request) -> Response:
            if expected is not None:
                sent = request.headers.get("authorization", "").encode()
                if not hmac.compare_digest(sent, expected):
                    return Response(b"unauthorized\n", 401, media_type="text/plain")
            services: Services = request.app.state.services
            return Response(services.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

        routes.append(Route("/metrics", metrics))
    return routes


async def _http_exception(request: Request, exc: Exception) -> Response:
    """Unknown paths and wrong methods, in the envelope of the surface they were aimed at."""
    assert isinstance(exc, HTTPException)
    # /admin answers in OpenAI's envelope, like its handlers.
    path = request.url.path
    surface: Surface = ("openai" if path.startswith(("/v1/", "/admin/")) or path == me.PATH
                        else "native")
    if exc.status_code == 405:
        error = GatewayError(405, "MethodNotAllowed",
                             f"{request.method} is not supported on {request.url.path}.")
    else:
        error = GatewayError(exc.status_code, "NotFound" if exc.status_code == 404 else "Error",
                             f"No route for {request.method} {request.url.path}.")
    return error_response(error, surface)
