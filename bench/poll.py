"""The poll scenario: many clients polling a few running tasks, and what reaches the upstream.

Clients poll a task until it ends. A gateway can pass every poll on (one upstream GET each) or
coalesce them. The request points (``build_poll``) GET POLL_TASKS running tasks round robin at
each concurrency level, and their ``up/req`` counts the GETs of those tasks in the simulator's
request log. After the levels, ``run_poll_targets`` measures on each gateway side the two fixed
cases the targets are stated for: POLLERS pollers for ``plan.poll_s`` on one running task, and
FINISHED_POLLS polls of a finished task.
"""

from __future__ import annotations

import http.client
import json

from download import sim_faults
from gateways import seed_tasks, sim_log_gets, sim_log_reset, upstream_calls
from loadgen import Connections, RequestMaker, http_request, run_async
from payloads import CREATE_BODY, RUNNING_CREATE_BODY, TASKS_PATH
from points import Plan, Point, count_upstream, phase_point
from servers import http_call
from sides import DIRECT, GATEWAY, Context, Side

NAME = "poll"
POLL_TASKS = 4  # running tasks per gateway side, polled round robin by the request points
POLLERS = 40  # concurrent pollers in the fixed measurements
FINISHED_POLLS = 200
RUNNING, FINISHED = "poll_running", "poll_finished"  # Point.kind of the fixed measurements
UNTIL_TIME = 10**9  # a request count that the polling time always cuts short


def created_now(ctx: Context, side: Side, count: int, body: bytes) -> list[str]:
    """Tasks created through a gateway side while the simulator's delay is 0: with
    RUNNING_CREATE_BODY they are running at once and stay so, with CREATE_BODY they have already
    succeeded. The simulator fixes a task's delay at create, so no other task moves."""
    delay = sim_faults(ctx)["delay"]
    sim_faults(ctx, delay=0)
    try:
        return seed_tasks(ctx, side, count, body=body)
    finally:
        sim_faults(ctx, delay=delay)


def upstream_status(ctx: Context, task_id: str) -> str:
    """The task's status as the simulator has it (one native GET, straight to it)."""
    direct = ctx.side(DIRECT)
    status, body = http_call(direct.port, "GET", f"{TASKS_PATH}/{task_id}",
                             headers={"Authorization": f"Bearer {direct.token}"})
    if status != 200:
        raise RuntimeError(f"GET task {task_id} from the simulator: HTTP {status} {body[:300]!r}")
    return str(json.loads(body)["status"])


def tasks_in(ctx: Context, side: Side, count: int, body: bytes, status: str) -> list[str]:
    ids = created_now(ctx, side, count, body)
    for task_id in ids:
        seen = upstream_status(ctx, task_id)
        if seen != status:
            raise RuntimeError(f"poll task {task_id} is {seen!r} upstream, not {status!r}")
    return ids


def build_poll(ctx: Context, side: Side) -> RequestMaker:
    """Gateway sides poll their own running tasks through the gateway's native GET; direct and
    nginx poll the working-tree gateway's through the simulator's native GET."""
    owner = side if side.is_gateway else ctx.side(GATEWAY)
    if not owner.running_task_ids:
        owner.running_task_ids = tasks_in(ctx, owner, POLL_TASKS, RUNNING_CREATE_BODY, "running")
    requests = [http_request("GET", side.port, f"{TASKS_PATH}/{task_id}", side.token)
                for task_id in owner.running_task_ids]
    return lambda i: requests[i % len(requests)]


def polled_tasks(side: Side) -> list[str]:
    """The tasks whose upstream GETs a poll point counts (a gateway side's own)."""
    return side.running_task_ids


async def poll_one_task(ctx: Context, side: Side, task_id: str, kind: str, count: int,
                        seconds: float) -> Point:
    """POLLERS keep-alive pollers GET one task until ``count`` polls or ``seconds`` run out.
    No warm-up: the first poll of the task counts, as it would for a real client."""
    request = http_request("GET", side.port, f"{TASKS_PATH}/{task_id}", side.token)
    conns = Connections(side.port, POLLERS)
    await conns.open()
    try:
        sim_log_reset(ctx)
        calls_before = upstream_calls(side)
        before = ctx.cpu_snapshot()
        phase = await conns.phase(lambda i: request, count, seconds, 200)
        after = ctx.cpu_snapshot()
        calls_after = upstream_calls(side)
    finally:
        await conns.close()
    point = phase_point(NAME, side.name, POLLERS, phase, before, after)
    point.kind = kind
    point.planned_s = seconds if kind == RUNNING else None
    count_upstream(point, logged=sim_log_gets(ctx, [task_id]), before=calls_before,
                   after=calls_after, from_log=True)
    return point


def run_poll_targets(ctx: Context, plan: Plan) -> list[Point]:
    """Per gateway side: POLLERS pollers for ``plan.poll_s`` on one fresh running task, then
    FINISHED_POLLS polls (by POLLERS pollers) of a fresh task that has already succeeded."""
    points: list[Point] = []
    for side in [s for s in ctx.ordered() if s.is_gateway]:
        try:
            [running] = tasks_in(ctx, side, 1, RUNNING_CREATE_BODY, "running")
            point = run_async(poll_one_task(ctx, side, running, RUNNING, UNTIL_TIME,
                                            plan.poll_s))
            points.append(point)
            print(f"  {NAME:<13} {side.name:<8} {POLLERS} pollers x {plan.poll_s:.1f} s on 1 "
                  f"running task: {describe(point)}", flush=True)
            [finished] = tasks_in(ctx, side, 1, CREATE_BODY, "succeeded")
            point = run_async(poll_one_task(ctx, side, finished, FINISHED, FINISHED_POLLS,
                                            plan.budget_s))
            points.append(point)
            print(f"  {NAME:<13} {side.name:<8} {FINISHED_POLLS} polls by {POLLERS} pollers of "
                  f"a finished task: {describe(point)}", flush=True)
        except (RuntimeError, OSError, http.client.HTTPException) as exc:
            # A broken setup fails these measurements only; the rest of the run is reported.
            print(f"  {NAME:<13} {side.name:<8} ERROR {type(exc).__name__}: {exc}", flush=True)
    return points


def describe(point: Point) -> str:
    calls = f"{point.upstream_calls:.0f}" if point.upstream_calls is not None else "?"
    line = (f"{point.requests} polls, {calls} upstream GETs ({point.upstream_source}), "
            f"cpu {point.cpu_ms_per_req.get(point.side, 0.0):.3f} ms/poll")
    if point.errors:
        line += f"  ERRORS {point.errors}: {point.error_sample}"
    return line
