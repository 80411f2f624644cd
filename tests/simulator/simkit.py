"""Test helpers: an in-memory simulator client, a fake clock and an MP4 box walker."""

from __future__ import annotations

import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
from starlette.applications import Starlette

from gateway.simulator import SimulatorSettings, SimulatorState, create_simulator_app

KEY = "sim-upstream-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
TASKS = "/api/v3/contents/generations/tasks"
MODEL = "doubao-seedance-2-0-260128"
BASE_URL = "http://sim.test:8123"


class FakeClock:
    """Wall-clock seconds that only move when a test says so."""

    def __init__(self, now: float | None = None) -> None:
        self.now = time.time() if now is None else now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Sim:
    app: Starlette
    client: httpx.AsyncClient
    clock: FakeClock | None

    @property
    def state(self) -> SimulatorState:
        state: SimulatorState = self.app.state.simulator
        return state

    def tick(self, seconds: float) -> None:
        assert self.clock is not None, "this simulator runs on real time"
        self.clock.advance(seconds)

    async def create(self, prompt: str = "a red fox in snow", **fields: Any) -> str:
        body = {"model": MODEL, "content": [{"type": "text", "text": prompt}], **fields}
        response = await self.client.post(TASKS, json=body)
        assert response.status_code == 200, response.text
        task_id: str = response.json()["id"]
        return task_id

    async def task(self, task_id: str) -> dict[str, Any]:
        response = await self.client.get(f"{TASKS}/{task_id}")
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body


def open_sim(*, real_time: bool = False, **settings: Any) -> Sim:
    app = create_simulator_app(SimulatorSettings(**{"delay": 0.0, **settings}))
    clock = None if real_time else FakeClock()
    if clock is not None:
        app.state.simulator.clock = clock
    client = httpx.AsyncClient(
        transport=httpx.ASGITransport(app), base_url=BASE_URL, headers=AUTH)
    return Sim(app, client, clock)


def mp4_boxes(read: Callable[[int, int], bytes], size: int) -> list[tuple[str, int, int]]:
    """Top-level boxes as (type, offset, size), walked to the end; fails on a malformed layout."""
    boxes = []
    offset = 0
    while offset < size:
        box_size, kind = struct.unpack(">I4s", read(offset, 8))
        if box_size == 1:
            (box_size,) = struct.unpack(">Q", read(offset + 8, 8))
        elif box_size == 0:
            box_size = size - offset
        assert box_size >= 8, f"bad box size {box_size} at {offset}"
        boxes.append((kind.decode("ascii"), offset, box_size))
        offset += box_size
    assert offset == size, "the last box runs past the end of the file"
    return boxes
