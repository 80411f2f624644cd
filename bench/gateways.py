"""Running this project: the simulator, and a gateway from a given source tree with its config."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import time
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from payloads import (
    CREATE_BODY,
    OPENAI_ALIAS,
    OPENAI_ALIAS_TARGET,
    OPENAI_BODY,
    OPENAI_CONTENT_TYPE,
    OPENAI_PATH,
    SDK_HEADERS,
    TASKS_PATH,
)
from procfs import rss_mb
from servers import HOST, ROOT, Server, free_port, http_call
from sides import Context, Side

# Long enough that every seeded task stays "queued" for the whole run, so each GET through the
# gateway is really proxied upstream (a terminal task could be answered from the store later).
SIM_DELAY_S = 3600.0
UPSTREAM_METRIC = "seedance_gateway_upstream_requests_total"
# The simulator keeps its last 1000 /api/v3 requests (gateway.simulator.state.REQUEST_LOG_SIZE).
SIM_LOG_SIZE = 1000


def start_simulator(ctx: Context) -> Server:
    """The working tree's simulator; every side talks to this one."""
    port = free_port()
    command = [sys.executable, "-m", "gateway", "simulate", "--host", HOST, "--port", str(port),
               "--upstream-key", ctx.upstream_key, "--delay", str(SIM_DELAY_S)]
    sim = Server("simulator", command, port=port, env=ctx.env, workdir=ctx.workdir)
    sim.wait_ready("/_sim/faults")
    return sim


def write_config(ctx: Context, name: str, sim_port: int) -> Path:
    """One file per gateway side, the same but for the SQLite file. Only keys that every version
    of the config knows, so a baseline from an older ref reads it too."""
    path = ctx.workdir / f"{name}.yaml"
    path.write_text(
        f"server: {{host: {HOST}, port: 8080}}\n"
        "upstreams:\n"
        "  - name: ark\n"
        "    preset: volcengine\n"
        f"    base_url: http://{HOST}:{sim_port}/api/v3\n"
        '    keys: [{name: main, secret: "${BENCH_UPSTREAM_KEY}"}]\n'
        "client_keys:\n"
        '  - {name: bench, secret: "${BENCH_CLIENT_KEY}"}\n'
        f"models: {{aliases: {{{OPENAI_ALIAS}: {OPENAI_ALIAS_TARGET}}}}}\n"
        f'store: {{url: "sqlite:///{ctx.workdir}/{name}.db"}}\n'
    )
    return path


@dataclass(frozen=True)
class GatewayLaunch:
    """How to start one gateway side: ``python -m gateway serve`` with ``tree``'s package."""

    name: str
    tree: Path
    config: Path
    env: dict[str, str]

    @classmethod
    def of(cls, ctx: Context, name: str, tree: Path, config: Path) -> GatewayLaunch:
        # cwd and PYTHONPATH both point at the tree: they come before the venv's editable
        # install of the working tree (a meta path finder appended after the path finder).
        pythonpath = os.pathsep.join(filter(None, [str(tree), ctx.env.get("PYTHONPATH")]))
        return cls(name, tree, config, {**ctx.env, "PYTHONPATH": pythonpath})

    def spawn(self, workdir: Path, *, workers: int, label: str | None = None) -> Server:
        port = free_port()
        command = [sys.executable, "-m", "gateway", "serve", "--config", str(self.config),
                   "--host", HOST, "--port", str(port), "--workers", str(workers)]
        return Server(label or self.name, command, port=port, env=self.env, workdir=workdir,
                      cwd=self.tree)

    def imported_from(self) -> Path:
        """Where this launch's ``import gateway`` resolves (same interpreter, cwd and env);
        raises unless it is inside the tree."""
        out = subprocess.run([sys.executable, "-c", "import gateway; print(gateway.__file__)"],
                             cwd=self.tree, env=self.env, capture_output=True, text=True,
                             timeout=60, check=False)
        if out.returncode != 0:
            raise RuntimeError(f"{self.name}: `import gateway` failed in {self.tree}:\n"
                               f"{out.stderr[-2000:]}")
        where = Path(out.stdout.strip()).resolve()
        if not where.is_relative_to(self.tree.resolve()):
            raise RuntimeError(f"{self.name}: imports gateway from {where}, not from {self.tree}")
        return where


def working_tree_launch(ctx: Context, config: Path) -> GatewayLaunch:
    return GatewayLaunch.of(ctx, "gateway", ROOT, config)


def measure_cold_start(launches: list[GatewayLaunch], workdir: Path, *, starts: int,
                       workers: int) -> dict[str, list[float]]:
    """Spawn to first 200 from /healthz, each start a fresh process on a fresh port; the sides
    take turns, so drift hits them alike."""
    times: dict[str, list[float]] = {launch.name: [] for launch in launches}
    for n in range(starts):
        for launch in launches:
            server = launch.spawn(workdir, workers=workers, label=f"coldstart-{launch.name}-{n}")
            try:
                times[launch.name].append(server.wait_ready("/healthz"))
            finally:
                server.stop()
    return times


def seed_tasks(ctx: Context, side: Side, count: int, *, body: bytes = CREATE_BODY) -> list[str]:
    """Tasks created through a gateway side by the bench key, so that side will proxy their GETs
    (each gateway has its own store, so each needs its own)."""
    headers = {"Authorization": f"Bearer {ctx.client_key}", "Content-Type": "application/json"}
    ids = []
    for _ in range(count):
        status, answer = http_call(side.port, "POST", TASKS_PATH, headers=headers, body=body)
        if status != 200:
            raise RuntimeError(f"seeding a task through {side.name} failed: HTTP {status}: "
                               f"{answer[:300]!r}")
        ids.append(str(json.loads(answer)["id"]))
    return ids


def touch_tasks(ctx: Context, side: Side, count: int = 10) -> None:
    headers = {"Authorization": f"Bearer {ctx.client_key}"}
    for task_id in side.task_ids[:count]:
        http_call(side.port, "GET", f"{TASKS_PATH}/{task_id}", headers=headers)


def idle_rss(ctx: Context, sides: list[Side], idle_s: float) -> dict[str, float]:
    """RSS of each gateway side after start, seeding and a few GETs, then ``idle_s`` of quiet."""
    for side in sides:
        touch_tasks(ctx, side)
    time.sleep(idle_s)
    return {side.name: rss_mb(side.server.pid) for side in sides}


def openai_create_once(ctx: Context, side: Side) -> dict[str, Any]:
    """One SDK-shaped create through a gateway side (setup work); returns the OpenAI Video."""
    headers = {**dict(SDK_HEADERS), "Authorization": f"Bearer {ctx.client_key}",
               "Content-Type": OPENAI_CONTENT_TYPE}
    status, body = http_call(side.port, "POST", OPENAI_PATH, headers=headers, body=OPENAI_BODY)
    if status != 200:
        raise RuntimeError(f"OpenAI create through {side.name} failed: HTTP {status}: "
                           f"{body[:300]!r}")
    video: dict[str, Any] = json.loads(body)
    return video


def upstream_calls(side: Side) -> float | None:
    """The side's ``seedance_gateway_upstream_requests_total``, summed over its labels (all
    workers with --workers N); None when /metrics does not have it."""
    try:
        status, body = http_call(side.port, "GET", "/metrics")
    except (OSError, http.client.HTTPException):
        return None
    if status != 200:
        return None
    text = body.decode(errors="replace")
    if f"# TYPE {UPSTREAM_METRIC.removesuffix('_total')}" not in text:
        return None
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith((UPSTREAM_METRIC + "{", UPSTREAM_METRIC + " ")))


def check_upstream_counter(ctx: Context, side: Side, gets: int = 10) -> str | None:
    """A few GETs through the side, counted by its /metrics and by the simulator's request log
    (exact, but only 1000 entries long, too short for a measured phase). Returns a warning when
    they disagree, so a counter the gateway stopped keeping cannot pass for 0 upstream calls."""
    assert ctx.sim is not None
    http_call(ctx.sim.port, "DELETE", "/_sim/requests")
    before = upstream_calls(side)
    touch_tasks(ctx, side, gets)
    after = upstream_calls(side)
    _, log = http_call(ctx.sim.port, "GET", "/_sim/requests")
    seen = len(json.loads(log))  # the simulator logs /api/v3 requests only
    if before is None or after is None:
        return (f"{side.name}: /metrics has no {UPSTREAM_METRIC}, so its rows show no up/req")
    if abs((after - before) - seen) > 1:  # 1: a tracker poll may land between the two reads
        return (f"{side.name}: /metrics counted {after - before:.0f} upstream calls for {gets} "
                f"GETs, the simulator received {seen}: its up/req column is not to be trusted")
    return None


def sim_log_reset(ctx: Context) -> None:
    """Empty the simulator's request log (``DELETE /_sim/requests``)."""
    assert ctx.sim is not None
    http_call(ctx.sim.port, "DELETE", "/_sim/requests")


def sim_log_gets(ctx: Context, task_ids: Collection[str]) -> int | None:
    """GETs of these tasks in the simulator's request log since :func:`sim_log_reset`, whoever
    sent them (client polls passed on, the gateway's tracker). None when the log is full: it keeps
    only the last SIM_LOG_SIZE requests, so a full log may have dropped some."""
    assert ctx.sim is not None
    status, body = http_call(ctx.sim.port, "GET", "/_sim/requests")
    if status != 200:
        raise RuntimeError(f"GET /_sim/requests: HTTP {status}: {body[:300]!r}")
    log = json.loads(body)
    if len(log) >= SIM_LOG_SIZE:
        return None
    wanted = set(task_ids)
    return sum(1 for seen in log if seen["method"] == "GET"
               and seen["path"].rstrip("/").rsplit("/", 1)[-1] in wanted)
