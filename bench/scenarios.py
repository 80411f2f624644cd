"""The request scenarios: what each side is sent, built once per side before any load."""

from __future__ import annotations

import json
from collections.abc import Callable, Collection
from dataclasses import dataclass

from archive import run_archive
from download import run_download
from gateways import openai_create_once
from loadgen import RequestMaker, http_request
from payloads import (
    CREATE_BODY,
    OPENAI_BODY,
    OPENAI_CONTENT_TYPE,
    OPENAI_PATH,
    SDK_HEADERS,
    TASKS_PATH,
)
from points import Plan, Point
from poll import build_poll, polled_tasks, run_poll_targets
from servers import http_call
from sides import GATEWAY, Context, Side


@dataclass(frozen=True)
class Scenario:
    """One kind of request, measured against each side at each concurrency.

    ``build(ctx, side)`` runs once per side before any load and returns the request maker; it may
    do setup of its own (seed tasks, upload a file). Direct and nginx speak the simulator's
    native API only, so a scenario gives them the native request that matches. ``scale``
    shrinks or grows the plan's request counts. A scenario that is not "many small requests"
    gives ``run(ctx, plan)`` instead of ``build``: it measures on its own and returns its points
    (see :func:`download.run_download`). ``counted_tasks(side)`` names the tasks whose upstream
    GETs a gateway point counts from the simulator's log instead of the gateway's /metrics, and
    ``after(ctx, plan)`` measures more once the levels are done (both: :mod:`poll`).
    """

    name: str
    title: str
    build: Callable[[Context, Side], RequestMaker] | None
    expect: int = 200
    scale: float = 1.0
    run: Callable[[Context, Plan], list[Point]] | None = None
    counted_tasks: Callable[[Side], Collection[str]] | None = None
    after: Callable[[Context, Plan], list[Point]] | None = None


def build_get(ctx: Context, side: Side) -> RequestMaker:
    """GET over the ~50 seeded tasks, so the gateway's store lookups are not all one row."""
    requests = [http_request("GET", side.port, f"{TASKS_PATH}/{task_id}", side.token)
                for task_id in side.task_ids]
    return lambda i: requests[i % len(requests)]


def build_create(ctx: Context, side: Side) -> RequestMaker:
    request = http_request("POST", side.port, TASKS_PATH, side.token, body=CREATE_BODY)
    return lambda i: request


def translated_create_body(ctx: Context) -> bytes:
    """The native body the working-tree gateway sends upstream for the SDK's create, read back
    from the simulator's request log, so direct and nginx create exactly the same task."""
    assert ctx.sim is not None
    if ctx.translated_create is None:
        http_call(ctx.sim.port, "DELETE", "/_sim/requests")
        openai_create_once(ctx, ctx.side(GATEWAY))
        _, log = http_call(ctx.sim.port, "GET", "/_sim/requests")
        for seen in json.loads(log):
            if seen["method"] == "POST" and seen["path"].rstrip("/").endswith(TASKS_PATH):
                ctx.translated_create = str(seen["body"]).encode()
                break
        else:
            raise RuntimeError("the gateway's upstream create is not in the simulator's log")
    return ctx.translated_create


def build_openai_create(ctx: Context, side: Side) -> RequestMaker:
    """Gateway sides: the SDK's multipart create on /v1/videos. Direct and nginx: the simulator
    has no /v1, so they get the native create the gateway translates it into."""
    if side.is_gateway:
        request = http_request("POST", side.port, OPENAI_PATH, side.token, body=OPENAI_BODY,
                               content_type=OPENAI_CONTENT_TYPE, headers=SDK_HEADERS)
    else:
        request = http_request("POST", side.port, TASKS_PATH, side.token,
                               body=translated_create_body(ctx))
    return lambda i: request


SCENARIOS: dict[str, Scenario] = {
    s.name: s for s in (
        Scenario("get", "GET task (native)", build_get),
        Scenario("poll", "many pollers GET a few running tasks (native)", build_poll,
                 counted_tasks=polled_tasks, after=run_poll_targets),
        Scenario("create", "create task (native POST)", build_create),
        Scenario("openai_create", "create video (OpenAI multipart POST /v1/videos)",
                 build_openai_create),
        Scenario("download", "200 MiB GET /v1/videos/{id}/content vs the signed URL", None,
                 run=run_download),
        Scenario("archive", "200 MiB archive copy into a file:// store vs a direct download",
                 None, run=run_archive),
    )
}
