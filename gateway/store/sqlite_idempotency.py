"""SQLite side of Idempotency-Key claims: one row per caller and key.

A claim is read and changed in one `BEGIN IMMEDIATE` transaction, so two worker processes
sharing the file cannot both take a key. Rows past their `expires_at` are swept when a new
claim is written (the index keeps that cheap); until then a claim read past it counts as
none.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from gateway.store.followups import ClaimEnd, IdempotencyClaim

IDEMPOTENCY_SCHEMA = """
CREATE TABLE IF NOT EXISTS idempotency_claims (
    caller TEXT NOT NULL,
    key TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    state TEXT NOT NULL,
    holder TEXT,
    lease_until REAL NOT NULL,
    started_at REAL NOT NULL,
    expires_at REAL NOT NULL,
    failed_at REAL,
    task_id TEXT,
    upstream_key TEXT,
    PRIMARY KEY (caller, key)
);
CREATE INDEX IF NOT EXISTS idempotency_claims_by_expiry ON idempotency_claims (expires_at);
"""

_FIELDS = ("fingerprint", "state", "holder", "lease_until", "started_at", "expires_at",
           "failed_at", "task_id", "upstream_key")
_SELECT = f"SELECT {', '.join(_FIELDS)} FROM idempotency_claims WHERE caller = ? AND key = ?"
_HELD = "caller = ? AND key = ? AND holder = ? AND state = 'pending'"


class SQLiteIdempotency:
    """Mixed into SQLiteTaskStore; `_conn` is its open connection."""

    @property
    def _conn(self) -> sqlite3.Connection:
        raise NotImplementedError

    async def claim_idempotency(
        self, caller: str, key: str, *, fingerprint: str, holder: str, now: float,
        lease_until: float, expires_at: float,
    ) -> tuple[IdempotencyClaim | None, bool]:
        db = self._conn
        db.execute("BEGIN IMMEDIATE")
        try:
            row = db.execute(_SELECT, (caller, key)).fetchone()
            before = _claim(row) if row is not None else None
            taken = True
            if before is None or before.expires_at <= now:
                db.execute("DELETE FROM idempotency_claims WHERE expires_at <= ?", (now,))
                db.execute(
                    "INSERT INTO idempotency_claims (caller, key, fingerprint, state, holder, "
                    "lease_until, started_at, expires_at) VALUES (?, ?, ?, 'pending', ?, ?, ?, ?)",
                    (caller, key, fingerprint, holder, lease_until, now, expires_at))
                before = None
            elif before.fingerprint == fingerprint and (
                    before.state == "lost"
                    or (before.state == "pending" and before.lease_until <= now)):
                # A lapsed lease is an attempt that may have reached the upstream.
                db.execute(
                    "UPDATE idempotency_claims SET state = 'pending', holder = ?, "
                    "lease_until = ?, failed_at = COALESCE(failed_at, ?) "
                    "WHERE caller = ? AND key = ?",
                    (holder, lease_until, before.lease_until, caller, key))
            else:
                taken = False
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return before, taken

    async def read_idempotency(self, caller: str, key: str) -> IdempotencyClaim | None:
        row = self._conn.execute(_SELECT, (caller, key)).fetchone()
        return _claim(row) if row is not None else None

    async def hold_idempotency(self, caller: str, key: str, holder: str, *,
                               lease_until: float | None = None, task_id: str | None = None,
                               upstream_key: str | None = None) -> bool:
        cursor = self._conn.execute(
            "UPDATE idempotency_claims SET lease_until = COALESCE(?, lease_until), "
            "task_id = COALESCE(?, task_id), upstream_key = COALESCE(?, upstream_key) "
            f"WHERE {_HELD}", (lease_until, task_id, upstream_key, caller, key, holder))
        return cursor.rowcount == 1

    async def end_idempotency(self, caller: str, key: str, holder: str, end: ClaimEnd, *,
                              now: float) -> bool:
        db = self._conn
        args: tuple[Any, ...] = (caller, key, holder)
        if end == "done":
            cursor = db.execute("UPDATE idempotency_claims SET state = 'done', holder = NULL "
                                f"WHERE {_HELD} AND task_id IS NOT NULL", args)
        elif end == "lost":
            cursor = db.execute("UPDATE idempotency_claims SET state = 'lost', holder = NULL, "
                                f"failed_at = ? WHERE {_HELD}", (now, *args))
        else:
            db.execute("BEGIN IMMEDIATE")
            try:
                cursor = db.execute(
                    f"DELETE FROM idempotency_claims WHERE {_HELD} "
                    "AND failed_at IS NULL AND task_id IS NULL", args)
                if cursor.rowcount == 0:  # an earlier attempt was lost: it stays so
                    cursor = db.execute(
                        "UPDATE idempotency_claims SET state = 'lost', holder = NULL, "
                        f"failed_at = COALESCE(failed_at, ?) WHERE {_HELD}", (now, *args))
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        return cursor.rowcount == 1

    async def task_recorded(self, task_id: str) -> bool:
        row = self._conn.execute("SELECT 1 FROM tasks WHERE task_id = ?", (task_id,)).fetchone()
        return row is not None


def _claim(row: tuple[Any, ...]) -> IdempotencyClaim:
    return IdempotencyClaim(**dict(zip(_FIELDS, row, strict=True)))
