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
    """Body: any of latency, error_rate, rate_limit_rate, delay, video_bytes, url_ttl,
    lose_create_answers, file_bytes_per_second."""
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


async def set_key(request: Request) -> Response:
    """Body ``{"key": K, "revoked": bool, "retry_after": N | null}``: from now on requests
    with upstream key K answer 401 (revoked), or 429 with ``Retry-After: N``; both unset
    puts the key back. The key travels in the body, never in a URL that might be logged."""
    try:
        change = orjson.loads(await request.body())
    except ValueError:
        change = None
    key = change.get("key") if isinstance(change, dict) else None
    if not isinstance(change, dict) or not isinstance(key, str) or not key:
        return json_response({"error": "key must be a non-empty string"}, status=400)
    revoked, retry_after = change.get("revoked", False), change.get("retry_after")
    if not isinstance(revoked, bool):
        return json_response({"error": "revoked must be true or false"}, status=400)
    if retry_after is not None and (isinstance(retry_after, bool)
                                    or not isinstance(retry_after, int) or retry_after < 0):
        return json_response({"error": "retry_after must be a non-negative integer"},
                             status=400)
    simulator = simulator_of(request)
    if revoked:
        simulator.revoked_keys.add(key)
    else:
        simulator.revoked_keys.discard(key)
    if retry_after is None:
        simulator.limited_keys.pop(key, None)
    else:
        simulator.limited_keys[key] = retry_after
    return json_response({"revoked": revoked, "retry_after": retry_after})


async def recorded_requests(request: Request) -> Response:
    return json_response([seen.as_json() for seen in simulator_of(request).requests])


async def forget_requests(request: Request) -> Response:
    simulator_of(request).requests.clear()
    return json_response({})


async def stop(request: Request) -> Response:
    """Stops the demo's embedded simulator: from then on its port refuses connections, as an
    upstream that is down would, while the gateway keeps serving (its archive, say). A
    simulator run on its own (`seedance-gateway simulate`) is stopped like any process."""
    stop_server = getattr(request.app.state, "stop", None)
    if stop_server is None:
        return json_response({"error": "this simulator runs as its own process: stop that"},
                             status=409)
    stop_server()
    return json_response({"stopped": True})


def control_routes() -> list[Route]:
    return [
        Route("/_sim/faults", read_faults, methods=["GET"]),
        Route("/_sim/faults", change_faults, methods=["POST"]),
        Route("/_sim/tasks/{task_id}/lose", lose_task, methods=["POST"]),
        Route("/_sim/keys", set_key, methods=["POST"]),
        Route("/_sim/requests", recorded_requests, methods=["GET"]),
        Route("/_sim/requests", forget_requests, methods=["DELETE"]),
        Route("/_sim/stop", stop, methods=["POST"]),
    ]
