"""SQLite side of the webhook outbox: one row per message, one per native callback_url.

A claim is one `BEGIN IMMEDIATE` transaction that moves the due rows' `next_at` to the end of
the claimer's lease and names it `holder`, so worker processes sharing the file never send
one message at once; a dead claimer's rows come due again when its lease ends. Delivered rows
are deleted KEEP_SECONDS after delivery (the deliverer prunes now and then), as Redis expires
them; failed rows stay, listed for the admin.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from gateway.store.followups import WebhookDelivery, WebhookState

WEBHOOKS_SCHEMA = """
CREATE TABLE IF NOT EXISTS webhook_outbox (
    message_id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    task_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    url TEXT NOT NULL,
    body BLOB NOT NULL,
    created_at REAL NOT NULL,
    next_at REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    state TEXT NOT NULL,
    last_error TEXT,
    holder TEXT
);
CREATE INDEX IF NOT EXISTS webhook_outbox_due ON webhook_outbox (state, next_at);
CREATE TABLE IF NOT EXISTS task_callbacks (task_id TEXT PRIMARY KEY, url TEXT NOT NULL);
"""
_FIELDS = ("message_id", "owner", "task_id", "kind", "url", "body", "created_at", "next_at",
           "attempts", "state", "last_error", "holder")
_SELECT = f"SELECT {', '.join(_FIELDS)} FROM webhook_outbox"


class SQLiteWebhooks:
    """Mixed into SQLiteTaskStore: `_conn` comes from it."""

    @property
    def _conn(self) -> sqlite3.Connection:
        raise NotImplementedError

    async def enqueue_webhook(self, delivery: WebhookDelivery) -> bool:
        cursor = self._conn.execute(
            f"INSERT OR IGNORE INTO webhook_outbox ({', '.join(_FIELDS)}) "
            f"VALUES ({', '.join('?' * len(_FIELDS))})",
            tuple(getattr(delivery, f) for f in _FIELDS))
        return cursor.rowcount == 1

    async def claim_webhooks(self, now: float, holder: str, lease_until: float,
                             limit: int) -> list[WebhookDelivery]:
        db = self._conn
        db.execute("BEGIN IMMEDIATE")
        try:
            rows = db.execute(f"{_SELECT} WHERE state = 'pending' AND next_at <= ? "
                              "ORDER BY next_at LIMIT ?", (now, limit)).fetchall()
            db.executemany("UPDATE webhook_outbox SET next_at = ?, holder = ? "
                           "WHERE message_id = ?", [(lease_until, holder, r[0]) for r in rows])
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        claimed = [_delivery(r) for r in rows]
        for delivery in claimed:
            delivery.next_at, delivery.holder = lease_until, holder
        return claimed

    async def settle_webhook(self, message_id: str, holder: str, *, state: WebhookState,
                             attempts: int, next_at: float, last_error: str | None) -> bool:
        cursor = self._conn.execute(
            "UPDATE webhook_outbox SET state = ?, attempts = ?, next_at = ?, last_error = ?, "
            "holder = NULL WHERE message_id = ? AND holder = ? AND state = 'pending'",
            (state, attempts, next_at, last_error, message_id, holder))
        return cursor.rowcount == 1

    async def failed_webhooks(self, limit: int) -> list[WebhookDelivery]:
        rows = self._conn.execute(f"{_SELECT} WHERE state = 'failed' ORDER BY next_at DESC "
                                  "LIMIT ?", (limit,)).fetchall()
        return [_delivery(r) for r in rows]

    async def prune_webhooks(self, before: float) -> int:
        # A delivered row's next_at is when it was delivered; the (state, next_at) index
        # finds them without a scan.
        cursor = self._conn.execute("DELETE FROM webhook_outbox WHERE state = 'delivered' "
                                    "AND next_at < ?", (before,))
        return cursor.rowcount

    async def set_task_callback(self, task_id: str, url: str) -> None:
        self._conn.execute("INSERT OR REPLACE INTO task_callbacks VALUES (?, ?)", (task_id, url))

    async def task_callback(self, task_id: str) -> str | None:
        row = self._conn.execute("SELECT url FROM task_callbacks WHERE task_id = ?",
                                 (task_id,)).fetchone()
        return str(row[0]) if row is not None else None


def _delivery(row: tuple[Any, ...]) -> WebhookDelivery:
    fields = dict(zip(_FIELDS, row, strict=True))
    fields["body"] = bytes(fields["body"])
    return WebhookDelivery(**fields)
