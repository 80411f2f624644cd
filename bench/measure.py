"""Measuring a request scenario: every side at each concurrency level, back to back."""

from __future__ import annotations

from collections.abc import Callable

from gateways import sim_log_gets, sim_log_reset, upstream_calls
from loadgen import Connections, RequestMaker, run_async
from points import Plan, Point, count_upstream, phase_point, relate
from report import progress
from scenarios import Scenario
from sides import BASELINE, GATEWAY, Context, Side


async def measure_point(ctx: Context, scenario: Scenario, side: Side, make: RequestMaker,
                        concurrency: int, plan: Plan, *,
                        during: Callable[[], None] | None = None) -> Point:
    """Warm up on the same connections, then measure; CPU is read around the measured phase only.

    Gateway sides' upstream counters are read just outside the CPU readings: their /metrics
    and, for a scenario with ``counted_tasks``, the simulator's log of GETs of those tasks.
    ``during`` runs right before the measured phase (the profiler attaches there).
    """
    count = plan.count(concurrency, scenario.scale)
    conns = Connections(side.port, concurrency)
    await conns.open()
    try:
        await conns.phase(make, plan.warmup(concurrency, count), plan.budget_s, scenario.expect)
        if during is not None:
            during()
        by_log = scenario.counted_tasks is not None and side.is_gateway
        if by_log:
            sim_log_reset(ctx)
        calls_before = upstream_calls(side) if side.is_gateway else None
        before = ctx.cpu_snapshot()
        phase = await conns.phase(make, count, plan.budget_s, scenario.expect)
        after = ctx.cpu_snapshot()
        calls_after = upstream_calls(side) if side.is_gateway else None
    finally:
        await conns.close()
    point = phase_point(scenario.name, side.name, concurrency, phase, before, after)
    logged = None
    if by_log and scenario.counted_tasks is not None:
        logged = sim_log_gets(ctx, scenario.counted_tasks(side))
    count_upstream(point, logged=logged, before=calls_before, after=calls_after, from_log=by_log)
    return point


def run_order(ctx: Context, level: int) -> list[Side]:
    """Direct and nginx first; then baseline and gateway, which swap places from one level to
    the next, so neither is always the one that runs later."""
    sides = ctx.ordered()
    if level % 2:
        names = [s.name for s in sides]
        if BASELINE in names and GATEWAY in names:
            i, j = names.index(BASELINE), names.index(GATEWAY)
            sides[i], sides[j] = sides[j], sides[i]
    return sides


def run_scenario(ctx: Context, scenario: Scenario, plan: Plan) -> list[Point]:
    if scenario.run is not None:
        return scenario.run(ctx, plan)
    assert scenario.build is not None
    makers = {side.name: scenario.build(ctx, side) for side in ctx.ordered()}
    points: list[Point] = []
    for level, concurrency in enumerate(plan.concurrency):
        # All sides back to back at each level: they see the same background noise.
        by_side: dict[str, Point] = {}
        for side in run_order(ctx, level):
            point = run_async(measure_point(ctx, scenario, side, makers[side.name],
                                            concurrency, plan))
            by_side[side.name] = point
            print(progress(point), flush=True)
        level_points = [by_side[side.name] for side in ctx.ordered()]
        relate(level_points)
        points.extend(level_points)
    if scenario.after is not None:
        points.extend(scenario.after(ctx, plan))
    return points

