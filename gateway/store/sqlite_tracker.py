"""SQLite side of the tracker: which unfinished tasks are due, and leases on them.

A lease is a (holder, until) pair on the task row, taken with one conditional UPDATE, so two
worker processes sharing the file never poll the same task at once; a holder that dies simply
lets its leases run out.
"""

from __future__ import annotations

import builtins
import sqlite3

from gateway.seedance import UNFINISHED_STATUSES, sql_list
from gateway.store.base import TaskRecord

_UNFINISHED = sql_list(UNFINISHED_STATUSES)

TRACKER_COLUMNS = (
    ("next_poll_at", "REAL NOT NULL DEFAULT 0"),
    ("lease_holder", "TEXT"),
    ("lease_until", "REAL NOT NULL DEFAULT 0"),
)
# Partial: only unfinished tasks are in it, so finished ones cost no index upkeep.
TRACKER_INDEX = ("CREATE INDEX IF NOT EXISTS tasks_due ON tasks (next_poll_at) "
                 f"WHERE deleted = 0 AND status IN {_UNFINISHED}")


class SQLiteTracker:
    """Mixed into SQLiteTaskStore; `_conn`, `_SELECT` and `_record` come from it."""

    @property
    def _conn(self) -> sqlite3.Connection:
        raise NotImplementedError

    def _records(self, where: str, args: tuple[object, ...]) -> builtins.list[TaskRecord]:
        raise NotImplementedError

    async def due_tasks(self, now: float, limit: int) -> builtins.list[TaskRecord]:
        return self._records(
            f"deleted = 0 AND status IN {_UNFINISHED} AND next_poll_at <= ? "
            "AND lease_until <= ? ORDER BY next_poll_at LIMIT ?", (now, now, limit))

    async def claim(self, task_id: str, holder: str, until: float, now: float) -> bool:
        cursor = self._conn.execute(
            "UPDATE tasks SET lease_holder = ?, lease_until = ? WHERE task_id = ? "
            # Not ours: free, and still due (another replica may have polled it since).
            "AND ((lease_until <= ? AND next_poll_at <= ?) OR lease_holder = ?)",
            (holder, until, task_id, now, now, holder))
        return cursor.rowcount == 1

    async def schedule(self, task_id: str, holder: str, next_poll: float) -> None:
        self._conn.execute(
            "UPDATE tasks SET next_poll_at = ?, lease_holder = NULL, lease_until = 0 "
            "WHERE task_id = ? AND lease_holder = ?", (next_poll, task_id, holder))
