"""The sides a request is measured against, and the run's shared context.

``direct`` is the simulator itself; ``nginx`` is nginx ``proxy_pass`` in front of it;
``gateway`` is the working tree's gateway, and ``baseline`` the gateway of another git ref.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from procfs import cpu_seconds
from servers import Server

DIRECT, NGINX, BASELINE, GATEWAY = "direct", "nginx", "baseline", "gateway"
ORDER = (DIRECT, NGINX, BASELINE, GATEWAY)  # row order in the tables
GATEWAYS = (BASELINE, GATEWAY)  # sides that run this project's gateway


@dataclass
class Side:
    """Where one row's requests go: a server and the bearer token it expects."""

    name: str
    server: Server
    token: str
    tree: Path | None = None  # gateway sides: the source tree their `gateway` package comes from
    config: Path | None = None  # gateway sides: their config file
    task_ids: list[str] = field(default_factory=list)  # tasks this side can GET
    # Gateway sides: tasks created through them that stay "running" (the poll scenario's).
    running_task_ids: list[str] = field(default_factory=list)
    # Gateway sides: VmHWM before the download scenario first reset it (see reset_peak_rss).
    hwm_floor_mb: float = 0.0

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def is_gateway(self) -> bool:
        return self.name in GATEWAYS

    @property
    def is_proxy(self) -> bool:
        """Anything between the client and the simulator: its own CPU is the row's ``px cpu``."""
        return self.name != DIRECT


@dataclass
class Context:
    """What scenarios need: the keys, the simulator and every side that is running."""

    workdir: Path
    env: dict[str, str]
    upstream_key: str
    client_key: str
    sim: Server | None = None
    sides: dict[str, Side] = field(default_factory=dict)
    # The native body the gateway translates the SDK's create into (read back once).
    translated_create: bytes | None = None

    def side(self, name: str) -> Side:
        return self.sides[name]

    def ordered(self) -> list[Side]:
        return [self.sides[name] for name in ORDER if name in self.sides]

    def add(self, side: Side) -> None:
        self.sides[side.name] = side
        self.sides = {name: self.sides[name] for name in ORDER if name in self.sides}

    def servers(self) -> Iterator[Server]:
        """Every running server, proxies first and the simulator last (the order to stop them)."""
        for side in reversed(self.ordered()):
            if side.is_proxy:
                yield side.server
        if self.sim is not None:
            yield self.sim

    def cpu_snapshot(self) -> dict[str, float]:
        """CPU seconds so far: the client's own, the simulator's and each proxy's process tree."""
        snap = {"client": time.process_time()}
        if self.sim is not None:
            snap["simulator"] = cpu_seconds(self.sim.pid)
        for side in self.ordered():
            if side.is_proxy:
                snap[side.name] = cpu_seconds(side.server.pid)
        return snap


def new_context(workdir: Path) -> Context:
    upstream_key = "bench-upstream-" + secrets.token_urlsafe(16)
    client_key = "bench-client-" + secrets.token_urlsafe(16)
    # The config names env variables only; the secrets travel in the subprocess environment.
    env = {**os.environ, "BENCH_UPSTREAM_KEY": upstream_key, "BENCH_CLIENT_KEY": client_key,
           "PYTHONUNBUFFERED": "1"}
    return Context(workdir=workdir, env=env, upstream_key=upstream_key, client_key=client_key)
