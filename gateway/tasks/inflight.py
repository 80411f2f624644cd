"""The upstream fetch of each task in flight on this replica, which every poll needing it shares.

A fetch runs as a task of its own: a poll that starts it and the polls that come while it runs
all wait on it through `asyncio.shield`, so a waiter that goes away (its client left) cancels
only its own wait, never the fetch the others are waiting for; all of them get the fetch's
result, or its error. One registry per app (Services.fetches), used from its event loop only.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from dataclasses import dataclass
from functools import partial
from typing import Any

from gateway.upstream import UpstreamReply


@dataclass(frozen=True, slots=True)
class Fetched:
    """What one fetch of a task brought back: the task body to answer with, and the upstream's
    reply when the fetch asked the upstream (None: another replica had just asked, and the
    record it wrote answers)."""

    body: bytes
    reply: UpstreamReply | None


class Fetches:
    """Task id → the fetch in flight for it."""

    def __init__(self) -> None:
        self._flying: dict[str, asyncio.Task[Fetched]] = {}

    def flying(self, task_id: str) -> asyncio.Task[Fetched] | None:
        return self._flying.get(task_id)

    def start(self, task_id: str, fetch: Coroutine[Any, Any, Fetched]) -> asyncio.Task[Fetched]:
        """Run `fetch` as the task's fetch in flight (replacing the one registered, if any: a
        forced fetch is newer than it)."""
        flight = asyncio.get_running_loop().create_task(fetch)
        self._flying[task_id] = flight
        flight.add_done_callback(partial(self._landed, task_id))
        return flight

    def _landed(self, task_id: str, flight: asyncio.Task[Fetched]) -> None:
        if self._flying.get(task_id) is flight:
            del self._flying[task_id]
        if not flight.cancelled():
            # Retrieved here, so an error whose waiters all left is not reported as lost.
            flight.exception()


async def share(flight: asyncio.Task[Fetched]) -> Fetched:
    """Wait for a fetch without letting this waiter's cancellation cancel it."""
    return await asyncio.shield(flight)
