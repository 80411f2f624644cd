"""The background tracker: follows every task the gateway created until it ends.

Usage, budgets and task metrics must not depend on clients polling. Each replica runs one
tracker; a task is polled by whichever replica holds its lease (so by exactly one at a time),
and a replica that dies lets its leases run out for another to take over. Polls of one
upstream key are paced (Ark allows ~20 task GETs per second per account) and spread with
jitter so a burst of creates does not become a burst of polls.
"""

from __future__ import annotations

import asyncio
import os
import random
import socket

from gateway.config import TrackerConfig
from gateway.errors import GatewayError
from gateway.observability.logs import get_logger
from gateway.services import Services
from gateway.store.base import TaskRecord
from gateway.tasks import pipeline as tasks

log = get_logger("gateway.tracker")


def holder_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{random.getrandbits(32):08x}"


class TaskTracker:
    def __init__(self, services: Services, config: TrackerConfig, *,
                 holder: str | None = None) -> None:
        self._services = services
        self._config = config
        self.holder = holder or holder_id()
        self._next_slot: dict[tuple[str, str], float] = {}  # (upstream, key) → next free time

    async def run(self) -> None:
        """Tick until cancelled; an error in one tick is logged, never fatal."""
        while True:
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("tracker_tick_failed")
            await asyncio.sleep(self._config.tick)

    async def tick(self) -> int:
        """Poll every due task this replica can lease; how many were polled."""
        store, clock = self._services.store, self._services.clock
        polled = 0
        for record in await store.due_tasks(clock(), self._config.batch):
            # A fresh clock per claim: a long tick must not hand out leases already expired,
            # and a task another replica polled meanwhile is no longer due.
            now = clock()
            if not await store.claim(record.task_id, self.holder, now + self._config.lease, now):
                continue  # another replica has it, or has just polled it
            await self._pace(record)
            try:
                await tasks.refresh(self._services, record, request_id=None)
            except GatewayError as error:
                log.warning("tracker_poll_failed", task_id=record.task_id, code=error.code)
            polled += 1
            spread = self._config.interval * random.uniform(0.8, 1.2)
            await store.schedule(record.task_id, self.holder, clock() + spread)
        return polled

    async def _pace(self, record: TaskRecord) -> None:
        slot_key = (record.upstream, record.upstream_key)
        now = self._services.clock()
        slot = max(now, self._next_slot.get(slot_key, now))
        self._next_slot[slot_key] = slot + 1.0 / self._config.per_key_rate
        if slot > now:
            await asyncio.sleep(slot - now)
