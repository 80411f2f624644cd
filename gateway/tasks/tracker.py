"""The background tracker: follows every task the gateway created until it ends.

Usage, budgets and task metrics must not depend on clients polling. Each replica runs one
tracker; a task is polled by whichever replica holds its lease (so by exactly one at a time),
and a replica that dies lets its leases run out for another to take over. Polls of one
upstream key are paced (Ark allows ~20 task GETs per second per account) and spread with
jitter so a burst of creates does not become a burst of polls.

The tracker's poll of a task is a poll like a client's (gateway/tasks/polls.py): a task
fetched less than a poll window ago, by any replica, costs no upstream call. When one key has
more tasks of one service tier due than its GET pace (`per_key_rate`) covers in one list
interval (`1 / list_rate`), they are refreshed in batches of up to 100 through Ark's list
instead (gateway/tasks/batches.py), paced by `list_rate` per key (Ark allows 1 list call per
second per account); what a list did not return gets a GET. Fewer due tasks go out as GETs:
as quick, and they leave the list budget for when it pays.
"""

from __future__ import annotations

import asyncio
import os
import random
import socket
from collections.abc import Sequence

from gateway.config import TrackerConfig
from gateway.errors import GatewayError
from gateway.observability.logs import get_logger
from gateway.services import Services
from gateway.store.base import TaskRecord
from gateway.tasks import polls
from gateway.tasks.batches import LIST_IDS, LISTABLE_TIERS, fetch_listed
from gateway.tasks.freshness import is_fresh

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
        self._next_list: dict[tuple[str, str], float] = {}  # the same, for list calls

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
        due = await self._services.store.due_tasks(self._services.clock(), self._config.batch)
        groups: dict[tuple[str, str, str], list[TaskRecord]] = {}
        for record in due:  # oldest due first, within each group too
            groups.setdefault((record.upstream, record.upstream_key, record.service_tier),
                              []).append(record)
        polled = 0
        for (_, _, tier), records in groups.items():
            if self._lists(tier, len(records)):
                for start in range(0, len(records), LIST_IDS):
                    polled += await self._follow_listed(records[start:start + LIST_IDS])
            else:
                for record in records:
                    polled += await self._follow(record)
        return polled

    def _lists(self, tier: str, due: int) -> bool:
        rate = self._config.list_rate
        return (rate > 0 and tier in LISTABLE_TIERS and due >= 2
                and due > self._config.per_key_rate / rate)

    async def _claim(self, record: TaskRecord) -> bool:
        # A fresh clock per claim: a long tick must not hand out leases already expired, and a
        # task another replica polled meanwhile is no longer due.
        now = self._services.clock()
        return await self._services.store.claim(record.task_id, self.holder,
                                                now + self._config.lease, now)

    async def _follow(self, record: TaskRecord) -> int:
        """One task, one poll: the record answers when fresh, else a GET."""
        if not await self._claim(record):
            return 0  # another replica has it, or has just polled it
        window = self._services.config.tracker.poll_window  # the window polls.poll applies
        if not is_fresh(record, now=self._services.clock(), window=window):
            await self._pace(self._next_slot, record, self._config.per_key_rate)
        try:
            await polls.poll(self._services, record, request_id=None, surface="tracker")
        except GatewayError as error:
            log.warning("tracker_poll_failed", task_id=record.task_id, code=error.code)
        await self._schedule(record)
        return 1

    async def _follow_listed(self, records: Sequence[TaskRecord]) -> int:
        """Up to LIST_IDS tasks of one key and tier: one list call for those not fresh, a GET
        for each the list did not return."""
        services = self._services
        store, clock = services.store, services.clock
        held = [record for record in records if await self._claim(record)]
        window, now = services.config.tracker.poll_window, clock()
        asking = []
        for record in held:
            if services.fetches.flying(record.task_id):
                services.metrics.polled("tracker", "shared")  # a client's GET brings it
            elif is_fresh(record, now=now, window=window) or not await store.claim_fetch(
                    record.task_id, now=now, fresh_after=now - window):
                services.metrics.polled("tracker", "record")  # fetched lately, here or not
            else:
                record.fetched_at = now
                asking.append(record)
        answered: set[str] = set()
        if asking:
            await self._pace(self._next_list, asking[0], self._config.list_rate)
            try:
                answered = await fetch_listed(services, asking)
            except GatewayError as error:
                log.warning("tracker_list_failed", upstream=asking[0].upstream,
                            tasks=len(asking), code=error.code)
        for record in asking:
            if record.task_id in answered:
                continue
            await self._pace(self._next_slot, record, self._config.per_key_rate)
            if not await self._claim(record):  # renewed: a long tail of GETs outlasts a lease
                continue
            try:  # already stamped as fetched: a GET whatever the record says
                await polls.refresh(services, record, request_id=None, surface="tracker")
            except GatewayError as error:
                log.warning("tracker_poll_failed", task_id=record.task_id, code=error.code)
        for record in held:
            await self._schedule(record)
        return len(held)

    async def _schedule(self, record: TaskRecord) -> None:
        spread = self._config.interval * random.uniform(0.8, 1.2)
        await self._services.store.schedule(record.task_id, self.holder,
                                            self._services.clock() + spread)

    async def _pace(self, slots: dict[tuple[str, str], float], record: TaskRecord,
                    rate: float) -> None:
        """Wait for the next of `rate` slots per second of the record's upstream key."""
        slot_key = (record.upstream, record.upstream_key)
        now = self._services.clock()
        slot = max(now, slots.get(slot_key, now))
        slots[slot_key] = slot + 1.0 / rate
        if slot > now:
            await asyncio.sleep(slot - now)
