"""The four Ark content-generation task endpoints, as ``/api/v3/contents/generations/tasks``."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, cast

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.simulator.ark_errors import ArkError, invalid_parameter, json_response, task_not_found
from gateway.simulator.files import LAST_FRAME_FILE, VIDEO_FILE, signed_url
from gateway.simulator.state import SimulatorState, simulator_of
from gateway.simulator.submission import SERVICE_TIERS, read_submission
from gateway.simulator.tasks import TERMINAL_STATUSES, Phase, TaskRecord

TASKS_PATH = "/api/v3/contents/generations/tasks"
# `expired` cannot be filtered on, per the list API's enum.
LISTABLE_STATUSES: tuple[str, ...] = ("queued", "running", "cancelled", "succeeded", "failed")


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
    return json_response({"id": task.id})


async def get_task(request: Request) -> Response:
    sim = simulator_of(request)
    task_id = request.path_params["task_id"]
    task = sim.visible_task(task_id, request.state.upstream_key)
    if task is None:
        return _ark(request, task_not_found(task_id))
    return json_response(_task_body(request, sim, task, task.phase(sim.clock())))


async def list_tasks(request: Request) -> Response:
    sim = simulator_of(request)
    query = request.query_params
    try:
        page_num = _page_bound(query.get("page_num"), "page_num", 1)
        page_size = _page_bound(query.get("page_size"), "page_size", 20)
        status = _one_of(query.get("filter.status"), "filter.status", LISTABLE_STATUSES)
        tier = _one_of(query.get("filter.service_tier"), "filter.service_tier", SERVICE_TIERS)
    except ArkError as error:
        return _ark(request, error)
    task_ids = set(query.getlist("filter.task_ids"))
    model = query.get("filter.model")
    now = sim.clock()
    matches: list[tuple[TaskRecord, Phase]] = []
    for task in reversed(sim.tasks.values()):  # insertion order is creation order: newest first
        phase = task.phase(now)
        sub = task.submission
        if (task.deleted or task.owner_key != request.state.upstream_key
                or (task_ids and task.id not in task_ids)
                or (status is not None and phase.status != status)
                or sub.service_tier != (tier or "default")
                or (model and model not in (sub.requested_model, sub.model.reported_as))):
            continue
        matches.append((task, phase))
    page = matches[(page_num - 1) * page_size:page_num * page_size]
    return json_response({
        "items": [_task_body(request, sim, task, phase) for task, phase in page],
        "total": len(matches),
    })


async def delete_task(request: Request) -> Response:
    # Ark's "cancel or delete" (seedance-native.md §1.2); the SDK's `{}` body is ignored.
    sim = simulator_of(request)
    task_id = request.path_params["task_id"]
    task = sim.visible_task(task_id, request.state.upstream_key)
    if task is None:
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
        base = str(request.base_url)
        content["video_url"] = signed_url(sim, base, task.id, VIDEO_FILE)
        if task.submission.return_last_frame:
            content["last_frame_url"] = signed_url(sim, base, task.id, LAST_FRAME_FILE)
    return task.body(phase, content)


def _page_bound(raw: str | None, name: str, default: int) -> int:
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise invalid_parameter(name, f"`{name}` must be an integer") from None
    if not 1 <= value <= 500:
        raise invalid_parameter(name, f"`{name}` must be between 1 and 500")
    return value


def _one_of(raw: str | None, name: str, allowed: tuple[str, ...]) -> str | None:
    if raw is not None and raw not in allowed:
        raise invalid_parameter(name, f"`{name}` must be one of {', '.join(allowed)}")
    return raw


def api_routes() -> list[Route]:
    return [
        Route(TASKS_PATH, create_task, methods=["POST"]),
        Route(TASKS_PATH, list_tasks, methods=["GET"]),
        Route(TASKS_PATH + "/{task_id}", get_task, methods=["GET"]),
        Route(TASKS_PATH + "/{task_id}", delete_task, methods=["DELETE"]),
    ]
