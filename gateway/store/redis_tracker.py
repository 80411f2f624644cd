"""Redis side of the tracker: which unfinished tasks are due, and leases on them.

Layout (under the store's prefix ``{p}``; see gateway/store/redis.py for the task hashes):

* ``{p}due`` sorted set: member ``task_id``, score ``next_poll_at`` (ties in id order).
  Unfinished tasks enter it on ``add``; a finished or deleted one leaves it (in update_status
  and mark_deleted, and lazily in due_tasks); ``schedule`` moves it. due_tasks walks it in
  score order from the oldest, skipping tasks under a live lease (a lease lasts one poll, or
  until a dead holder's runs out), as SQLite's query does.
* On the task hash ``{p}t:{task_id}``: ``next_poll_at``, ``lease_holder`` and ``lease_until``
  (absent = 0, no holder), the same fields as SQLite's columns.

A claim and a schedule are one script each, so two replicas never hold one task at once; a
holder that dies simply lets its leases run out. The due script reads task hashes named in
the set (not passed as KEYS): fine on a standalone Redis, not on Cluster. The scripts are in
gateway/store/redis_lua.py.
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from typing import Any

from redis.commands.core import AsyncScript

from gateway.store.base import TaskRecord


class RedisTracker:
    """Mixed into RedisTaskStore: `prefix`, `_scripts`, `_task_key`, `_task_fields` and
    `_tasks` come from it."""

    prefix: str
    _scripts: dict[str, AsyncScript]
    _task_fields: tuple[str, ...]

    def _task_key(self, task_id: str) -> str:
        raise NotImplementedError

    def _tasks(self, rows: Sequence[Sequence[Any]]) -> builtins.list[TaskRecord]:
        raise NotImplementedError

    @property
    def _due_key(self) -> str:
        return self.prefix + "due"

    async def due_tasks(self, now: float, limit: int) -> builtins.list[TaskRecord]:
        if limit <= 0:
            return []
        rows = await self._scripts["due"]([self._due_key],
                                          [self.prefix, repr(now), limit, *self._task_fields])
        return self._tasks(rows)

    async def claim(self, task_id: str, holder: str, until: float, now: float) -> bool:
        return bool(await self._scripts["claim"](
            [self._task_key(task_id)], [holder, repr(until), repr(now)]))

    async def schedule(self, task_id: str, holder: str, next_poll: float) -> None:
        await self._scripts["schedule"]([self._task_key(task_id), self._due_key],
                                        [task_id, holder, repr(next_poll)])
