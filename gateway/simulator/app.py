"""Builds the simulator's Starlette app: Ark task API, pre-signed result files, control routes."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response

from gateway.simulator.api import api_routes
from gateway.simulator.ark_errors import ArkError
from gateway.simulator.control import control_routes
from gateway.simulator.files import file_routes
from gateway.simulator.frontdoor import ArkFrontDoor
from gateway.simulator.settings import SimulatorSettings
from gateway.simulator.state import SimulatorState


def create_simulator_app(settings: SimulatorSettings) -> Starlette:
    """A fresh simulated Ark upstream; its state is ``app.state.simulator``."""
    simulator = SimulatorState.from_settings(settings)
    app = Starlette(
        routes=[*api_routes(), *file_routes(), *control_routes()],
        middleware=[Middleware(ArkFrontDoor, simulator=simulator)],
        exception_handlers={HTTPException: _routing_error},
    )
    app.state.simulator = simulator
    return app


async def _routing_error(request: Request, exc: Exception) -> Response:
    # Unknown paths and wrong methods still answer in Ark's error envelope.
    assert isinstance(exc, HTTPException)
    code = {404: "NotFound", 405: "MethodNotAllowed"}.get(exc.status_code, "InvalidRequest")
    error = ArkError(exc.status_code, code, f"{exc.detail}.")
    response = error.response(request.state.request_id)
    response.headers.update(exc.headers or {})  # e.g. Allow on 405
    return response
