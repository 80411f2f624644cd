"""`/_sim` control routes: out-of-process tests turn fault knobs and read the request log."""

from __future__ import annotations

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.simulator.ark_errors import json_response
from gateway.simulator.state import simulator_of


async def read_faults(request: Request) -> Response:
    return json_response(simulator_of(request).faults.as_json())


async def change_faults(request: Request) -> Response:
    """Body: any of latency, error_rate, rate_limit_rate, delay, video_bytes, url_ttl."""
    faults = simulator_of(request).faults
    try:
        changes = orjson.loads(await request.body())
        if not isinstance(changes, dict):
            raise ValueError("the body must be a JSON object")
        faults.apply(changes)
    except ValueError as error:  # orjson.JSONDecodeError is a ValueError
        return json_response({"error": str(error)}, status=400)
    return json_response(faults.as_json())


async def lose_task(request: Request) -> Response:
    """Body ``{"requests": N}``: the next N GET or DELETE requests of the task answer 404."""
    try:
        requests = orjson.loads(await request.body()).get("requests")
    except (ValueError, AttributeError):
        requests = None
    if isinstance(requests, bool) or not isinstance(requests, int) or requests < 0:
        return json_response({"error": "requests must be a non-negative integer"}, status=400)
    lost = simulator_of(request).lost
    task_id = request.path_params["task_id"]
    lost.pop(task_id, None)
    if requests:
        lost[task_id] = requests
    return json_response({"task_id": task_id, "requests": requests})


async def recorded_requests(request: Request) -> Response:
    return json_response([seen.as_json() for seen in simulator_of(request).requests])


async def forget_requests(request: Request) -> Response:
    simulator_of(request).requests.clear()
    return json_response({})


def control_routes() -> list[Route]:
    return [
        Route("/_sim/faults", read_faults, methods=["GET"]),
        Route("/_sim/faults", change_faults, methods=["POST"]),
        Route("/_sim/tasks/{task_id}/lose", lose_task, methods=["POST"]),
        Route("/_sim/requests", recorded_requests, methods=["GET"]),
        Route("/_sim/requests", forget_requests, methods=["DELETE"]),
    ]
