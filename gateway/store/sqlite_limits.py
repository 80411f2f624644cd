"""SQLite side of the limit counters: request counts, token and cost reservations, usage.

Each check-and-hold runs in one `BEGIN IMMEDIATE` transaction, so worker processes sharing
the file cannot both take the last slot. Reservations double as the usage ledger: one row per
create, its estimate replaced by the real token count (and its cost, at the row's price) when
the task ends. Cost is in millionths of the currency, NULL for an unpriced model.
"""

from __future__ import annotations

import sqlite3

from gateway.store.base import MAX_COUNT, LimitRefusal, Limits, Reservation, UsageRow

LIMITS_SCHEMA = """
CREATE TABLE IF NOT EXISTS request_counts (
    key TEXT NOT NULL, window INTEGER NOT NULL, n INTEGER NOT NULL, PRIMARY KEY (key, window)
);
CREATE TABLE IF NOT EXISTS reservations (
    ref TEXT PRIMARY KEY,
    key TEXT NOT NULL,
    model TEXT NOT NULL,
    day TEXT NOT NULL,
    month TEXT NOT NULL,
    tokens INTEGER NOT NULL,
    open INTEGER NOT NULL,
    price REAL,
    cost INTEGER
);
CREATE INDEX IF NOT EXISTS reservations_by_key ON reservations (key, open, day);
"""
COST_COLUMNS = (("price", "REAL"), ("cost", "INTEGER"))  # added by schema version 6
_INSERT = ("INSERT INTO reservations (ref, key, model, day, month, tokens, open, price, cost) "
           "VALUES (?, ?, ?, ?, ?, ?, 1, ?, ?)")
# gateway.keys.prices.cost_micros in SQL: tokens × price rounded half up, capped.
_COST = f"MIN(CAST(? * price + 0.5 AS INTEGER), {MAX_COUNT})"


class SQLiteLimits:
    """Mixed into SQLiteTaskStore; `_conn` is its open connection."""

    @property
    def _conn(self) -> sqlite3.Connection:
        raise NotImplementedError

    async def count_request(self, key: str, window: int) -> int:
        (count,) = self._conn.execute(
            "INSERT INTO request_counts VALUES (?, ?, 1) ON CONFLICT (key, window) "
            "DO UPDATE SET n = n + 1 RETURNING n", (key, window)).fetchone()
        if count == 1:  # first request of a new minute: forget the old ones
            self._conn.execute("DELETE FROM request_counts WHERE key = ? AND window < ?",
                               (key, window - 1))
        return int(count)

    async def reserve(self, reservation: Reservation, limits: Limits) -> LimitRefusal | None:
        db = self._conn
        r = reservation
        db.execute("BEGIN IMMEDIATE")
        try:
            refusal = self._refusal(r, limits)
            if refusal is None:
                db.execute(_INSERT, (r.ref, r.key, r.model, r.day, r.month, r.tokens,
                                     r.price, r.cost))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return refusal

    def _refusal(self, r: Reservation, limits: Limits) -> LimitRefusal | None:
        db = self._conn
        if limits.max_in_flight is not None:
            (held,) = db.execute("SELECT COUNT(*) FROM reservations WHERE key = ? AND open = 1",
                                 (r.key,)).fetchone()
            if held >= limits.max_in_flight:
                return LimitRefusal("max_in_flight", limits.max_in_flight, held)
        for limit, column, period in (("daily_tokens", "day", r.day),
                                      ("monthly_tokens", "month", r.month)):
            allowed = getattr(limits, limit)
            if allowed is None:
                continue
            (used,) = db.execute(
                f"SELECT COALESCE(SUM(tokens), 0) FROM reservations WHERE key = ? AND {column} = ?",
                (r.key, period)).fetchone()
            if used + r.tokens > allowed:
                return LimitRefusal(limit, allowed, used)
        for limit, column, period in (("daily_cost", "day", r.day),
                                      ("monthly_cost", "month", r.month)):
            allowed = getattr(limits, limit)
            if allowed is None:
                continue
            (used,) = db.execute(
                f"SELECT COALESCE(SUM(cost), 0) FROM reservations WHERE key = ? AND {column} = ?",
                (r.key, period)).fetchone()
            if used + (r.cost or 0) > allowed:
                return LimitRefusal(limit, allowed, used)
        return None

    def _record_usage(self, usage: Reservation, task_id: str) -> None:
        """Inside the task's insert: a held reservation takes the task id, else it is written."""
        if usage.held:
            self._conn.execute("UPDATE reservations SET ref = ? WHERE ref = ?",
                               (task_id, usage.ref))
        else:
            self._conn.execute(_INSERT, (task_id, usage.key, usage.model, usage.day,
                                         usage.month, usage.tokens, usage.price, usage.cost))

    async def settle(self, ref: str, tokens: int) -> int | None:
        row = self._conn.execute(
            f"UPDATE reservations SET tokens = ?, cost = CASE WHEN price IS NULL THEN NULL "
            f"ELSE {_COST} END, open = 0 WHERE ref = ? AND open = 1 RETURNING cost",
            (tokens, tokens, ref)).fetchone()
        return None if row is None or row[0] is None else int(row[0])

    async def in_flight(self, key: str) -> int:
        (count,) = self._conn.execute(
            "SELECT COUNT(*) FROM reservations WHERE key = ? AND open = 1", (key,)).fetchone()
        return int(count)

    async def release(self, ref: str) -> None:
        self._conn.execute("DELETE FROM reservations WHERE ref = ?", (ref,))

    async def usage(self, *, since_day: str, until_day: str,
                    key: str | None = None) -> list[UsageRow]:
        query = ("SELECT key, model, day, COUNT(*), SUM(tokens), SUM(cost) FROM reservations "
                 "WHERE day >= ? AND day <= ?")
        args: list[str] = [since_day, until_day]
        if key is not None:
            query += " AND key = ?"
            args.append(key)
        query += " GROUP BY key, model, day ORDER BY day, key, model"
        return [UsageRow(*row) for row in self._conn.execute(query, args).fetchall()]
