"""The four Ark content-generation task endpoints, as ``/api/v3/contents/generations/tasks``."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, cast

import anyio
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.simulator.ark_errors import ArkError, json_response, task_not_found
from gateway.simulator.files import LAST_FRAME_FILE, VIDEO_FILE, signed_url
from gateway.simulator.listing import ListQuery
from gateway.simulator.state import SimulatorState, simulator_of
from gateway.simulator.submission import read_submission
from gateway.simulator.tasks import TERMINAL_STATUSES, Phase, TaskRecord

TASKS_PATH = "/api/v3/contents/generations/tasks"
LOST_ANSWER_HOLD = 60.0  # the longest a lost create answer is held back (lose_create_answers)


def _ark(request: Request, error: ArkError) -> Response:
    return error.response(cast(str, request.state.request_id))


async def create_task(request: Request) -> Response:
    sim = simulator_of(request)
    try:
        submission = read_submission(await request.body(), sim.models, sim.rng)
    except ArkError as error:
        return _ark(request, error)
    now = sim.clock()
    task = TaskRecord(
        id=sim.new_task_id(now),
        owner_key=request.state.upstream_key,
        created_at=now,
        delay=sim.faults.delay,
        submission=submission,
    )
    sim.tasks[task.id] = task
    if sim.faults.lose_create_answers > 0:
        sim.faults.lose_create_answers -= 1
        with anyio.move_on_after(LOST_ANSWER_HOLD):
            await _hung_up(request)
    return json_response({"id": task.id})


async def _hung_up(request: Request) -> None:
    """Returns once the caller has closed the connection."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def get_task(request: Request) -> Response:
    sim = simulator_of(request)
    task_id = request.path_params["task_id"]
    task = sim.visible_task(task_id, request.state.upstream_key)
    if task is None or sim.answers_lost(task_id):
        return _ark(request, task_not_found(task_id))
    return json_response(_task_body(request, sim, task, task.phase(sim.clock())))


async def list_tasks(request: Request) -> Response:
    sim = simulator_of(request)
    try:
        query = ListQuery.read(request.query_params)
    except ArkError as error:
        return _ark(request, error)
    now = sim.clock()
    key = request.state.upstream_key
    matches = [
        (task, phase)
        for task in reversed(sim.tasks.values())  # insertion order is creation order
        if not task.deleted and task.owner_key == key
        and query.admits(task, phase := task.phase(now))
    ]
    return json_response({
        "items": [_task_body(request, sim, task, phase) for task, phase in query.page(matches)],
        "total": len(matches),
    })


async def delete_task(request: Request) -> Response:
    # Ark's "cancel or delete" (seedance-native.md §1.2); the SDK's `{}` body is ignored.
    sim = simulator_of(request)
    task_id = request.path_params["task_id"]
    task = sim.visible_task(task_id, request.state.upstream_key)
    if task is None or sim.answers_lost(task_id):
        return _ark(request, task_not_found(task_id))
    now = sim.clock()
    status = task.phase(now).status
    if status == "queued":
        task.cancelled_at = now
    elif status in TERMINAL_STATUSES:
        task.deleted = True
    else:
        return _ark(request, ArkError(400, "InvalidAction.TaskStatusNotAllowed", _REFUSALS[status]))
    return json_response({})


# Ark documents these refusals but not their wording or code (seedance-native.md §1.2).
_REFUSALS: Mapping[str, str] = MappingProxyType({
    "running": "The task is running and cannot be cancelled; delete it once it has finished.",
    "cancelled": "The task is cancelled and cannot be deleted; cancelled tasks are removed "
                 "automatically after 24 hours.",
})


def _task_body(request: Request, sim: SimulatorState, task: TaskRecord, phase: Phase
               ) -> dict[str, Any]:
    content: dict[str, str] = {}
    if phase.status == "succeeded":
        # Re-signed on every read, like Ark: each GET starts a fresh validity window.
        # root_path, not base_url: mounted under a prefix (the demo), links must keep it.
        base = f"{request.url.scheme}://{request.url.netloc}{request.scope.get('root_path', '')}"
        content["video_url"] = signed_url(sim, base, task.id, VIDEO_FILE)
        if task.submission.return_last_frame:
            content["last_frame_url"] = signed_url(sim, base, task.id, LAST_FRAME_FILE)
    return task.body(phase, content)


def api_routes() -> list[Route]:
    return [
        Route(TASKS_PATH, create_task, methods=["POST"]),
        Route(TASKS_PATH, list_tasks, methods=["GET"]),
        Route(TASKS_PATH + "/{task_id}", get_task, methods=["GET"]),
        Route(TASKS_PATH + "/{task_id}", delete_task, methods=["DELETE"]),
    ]
