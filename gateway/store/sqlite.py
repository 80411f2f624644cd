"""SQLite task store: the embedded default, one file, survives restarts.

Queries run synchronously on the event loop: each is an indexed lookup that takes tens of
microseconds, less than a hop to a worker thread would cost. WAL mode with `synchronous=NORMAL`
keeps commits off fsync, and lets several worker processes share the file.
"""

from __future__ import annotations

import builtins
import sqlite3
from pathlib import Path
from typing import Any

import orjson

from gateway.seedance import FINISHED_STATUSES, UNFINISHED_STATUSES, sql_list
from gateway.store.base import (
    KeyExists,
    KeyRecord,
    ListQuery,
    Reservation,
    StoreError,
    TaskRecord,
    upstream_404_verdict,
)
from gateway.store.sqlite_idempotency import IDEMPOTENCY_SCHEMA, SQLiteIdempotency
from gateway.store.sqlite_limits import COST_COLUMNS, LIMITS_SCHEMA, SQLiteLimits
from gateway.store.sqlite_tracker import TRACKER_COLUMNS, TRACKER_INDEX, SQLiteTracker
from gateway.store.sqlite_webhooks import WEBHOOKS_SCHEMA, SQLiteWebhooks

# gateway.seedance.regresses, in SQL: a finished task never goes back to queued/running.
_FINISHED, _UNFINISHED = sql_list(FINISHED_STATUSES), sql_list(UNFINISHED_STATUSES)
# 2: tracker columns (next_poll_at, lease_holder, lease_until); 3: gone_suspected_at;
# 4: fetched_at; 5: client_keys.webhook_url, webhook_secret; 6: cost (reservations.price,
# cost; client_keys.daily_cost, monthly_cost)
SCHEMA_VERSION = 6
GONE_COLUMN = ("gone_suspected_at", "REAL")  # when the upstream first answered 404, or NULL
FETCHED_COLUMN = ("fetched_at", "REAL")  # when a replica last asked the upstream, or NULL
WEBHOOK_KEY_COLUMNS = (("webhook_url", "TEXT"), ("webhook_secret", "TEXT"))
COST_KEY_COLUMNS = (("daily_cost", "REAL"), ("monthly_cost", "REAL"))

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tasks (
    task_id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    upstream TEXT NOT NULL,
    upstream_key TEXT NOT NULL,
    model TEXT NOT NULL,
    upstream_model TEXT NOT NULL,
    surface TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    status TEXT NOT NULL,
    prompt TEXT,
    requested_size TEXT,
    requested_seconds TEXT,
    service_tier TEXT NOT NULL,
    usage_tokens INTEGER,
    task_json BLOB,
    deleted INTEGER NOT NULL DEFAULT 0,
    next_poll_at REAL NOT NULL DEFAULT 0,
    lease_holder TEXT,
    lease_until REAL NOT NULL DEFAULT 0,
    gone_suspected_at REAL,
    fetched_at REAL
);
CREATE INDEX IF NOT EXISTS tasks_by_owner ON tasks (owner, deleted, created_at);
CREATE TABLE IF NOT EXISTS client_keys (
    name TEXT PRIMARY KEY,
    digest TEXT NOT NULL UNIQUE,
    prefix TEXT NOT NULL,
    models TEXT NOT NULL,
    rpm INTEGER,
    max_in_flight INTEGER,
    daily_tokens INTEGER,
    monthly_tokens INTEGER,
    expires_at INTEGER,
    disabled INTEGER NOT NULL,
    revoked INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    webhook_url TEXT,
    webhook_secret TEXT,
    daily_cost REAL,
    monthly_cost REAL
);
"""

_COLUMNS = (
    "task_id", "owner", "upstream", "upstream_key", "model", "upstream_model", "surface",
    "created_at", "updated_at", "status", "prompt", "requested_size", "requested_seconds",
    "service_tier", "usage_tokens", "task_json", "deleted", "gone_suspected_at", "fetched_at",
)
_SELECT = f"SELECT {', '.join(_COLUMNS)} FROM tasks"


# Records read by get() are kept in memory (they are small and every poll reads one); writes
# go to the file and update the cached record too. Owner, upstream and key never change, so
# a record cached by one worker process is safe to authorise with; a status another process
# wrote is corrected by the next upstream answer.
RECORD_CACHE_SIZE = 10_000


class SQLiteTaskStore(SQLiteLimits, SQLiteTracker, SQLiteIdempotency, SQLiteWebhooks):
    def __init__(self, path: str) -> None:
        self._path = path
        self._db: sqlite3.Connection | None = None
        self._cache: dict[str, TaskRecord] = {}

    @classmethod
    def from_url(cls, url: str) -> SQLiteTaskStore:
        """`sqlite:///relative.db`, `sqlite:////abs/path.db` or `sqlite://:memory:`."""
        rest = url.removeprefix("sqlite://")
        path = rest[1:] if rest.startswith("/") else rest
        return cls(path or ":memory:")

    async def open(self) -> None:
        if self._path != ":memory:":
            Path(self._path).parent.mkdir(parents=True, exist_ok=True)
        try:
            db = sqlite3.connect(self._path, check_same_thread=False, isolation_level=None)
            db.execute("PRAGMA busy_timeout = 5000")
            db.execute("PRAGMA journal_mode = WAL")
            db.execute("PRAGMA synchronous = NORMAL")
            db.executescript(_SCHEMA + LIMITS_SCHEMA + IDEMPOTENCY_SCHEMA + WEBHOOKS_SCHEMA)
            # One opener at a time: worker processes starting together migrate once.
            db.execute("BEGIN IMMEDIATE")
            try:
                _check_version(db, self._path)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute(TRACKER_INDEX)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open task store {self._path}: {exc}") from None
        self._db = db

    async def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    @property
    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise StoreError("task store is not open")
        return self._db

    async def ping(self) -> bool:
        try:
            self._conn.execute("SELECT 1").fetchone()
        except (sqlite3.Error, StoreError):
            return False
        return True

    async def add(self, record: TaskRecord, *, next_poll_at: float = 0.0,
                  usage: Reservation | None = None) -> None:
        values = tuple(getattr(record, c) for c in _COLUMNS)
        db = self._conn
        db.execute("BEGIN")  # one commit for the task and its usage entry
        try:
            db.execute(f"INSERT INTO tasks ({', '.join(_COLUMNS)}, next_poll_at) "
                       f"VALUES ({', '.join('?' * len(_COLUMNS))}, ?)", (*values, next_poll_at))
            if usage is not None:
                self._record_usage(usage, record.task_id)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def _records(self, where: str, args: tuple[object, ...]) -> builtins.list[TaskRecord]:
        return [_record(r) for r in self._conn.execute(f"{_SELECT} WHERE {where}", args)]

    async def get(self, task_id: str, owner: str) -> TaskRecord | None:
        record = self._cache.get(task_id)
        if record is None:
            row = self._conn.execute(
                f"{_SELECT} WHERE task_id = ? AND deleted = 0", (task_id,)
            ).fetchone()
            if row is None:
                return None
            record = self._remember(_record(row))
        return record if record.owner == owner and not record.deleted else None

    def _remember(self, record: TaskRecord) -> TaskRecord:
        if len(self._cache) >= RECORD_CACHE_SIZE:
            self._cache.pop(next(iter(self._cache)))  # oldest first: dicts keep insertion order
        self._cache[record.task_id] = record
        return record

    async def update_status(
        self, task_id: str, *, status: str, updated_at: int, usage_tokens: int | None,
        task_json: bytes,
    ) -> None:
        # A finished task never goes back to queued/running: with several pollers, an older
        # answer may land after a newer one.
        cursor = self._conn.execute(
            "UPDATE tasks SET status = ?, updated_at = ?, gone_suspected_at = NULL, "
            "usage_tokens = COALESCE(?, usage_tokens), task_json = ? WHERE task_id = ? "
            f"AND NOT (status IN {_FINISHED} AND ? IN {_UNFINISHED})",
            (status, updated_at, usage_tokens, task_json, task_id, status),
        )
        cached = self._cache.get(task_id)
        if cached is not None and cursor.rowcount == 1:
            cached.status, cached.updated_at, cached.task_json = status, updated_at, task_json
            cached.gone_suspected_at = None
            if usage_tokens is not None:
                cached.usage_tokens = usage_tokens

    async def mark_deleted(self, task_id: str) -> None:
        self._conn.execute("UPDATE tasks SET deleted = 1 WHERE task_id = ?", (task_id,))
        self._cache.pop(task_id, None)

    async def note_upstream_404(self, task_id: str, *, now: float,
                                deleting: bool = False) -> bool:
        db = self._conn
        db.execute("BEGIN IMMEDIATE")  # read, decide and write before any other process
        try:
            row = db.execute("SELECT status, created_at, gone_suspected_at, deleted FROM tasks "
                             "WHERE task_id = ?", (task_id,)).fetchone()
            verdict = "keep" if row is None or row[3] else upstream_404_verdict(
                status=row[0], created_at=row[1], suspected_at=row[2], now=now,
                deleting=deleting)
            if verdict == "gone":
                db.execute("UPDATE tasks SET deleted = 1 WHERE task_id = ?", (task_id,))
                # The estimate stays as the figure: what Ark billed, if anything, is unknown.
                db.execute("UPDATE reservations SET open = 0 WHERE ref = ? AND open = 1",
                           (task_id,))
            elif verdict == "suspect":
                db.execute("UPDATE tasks SET gone_suspected_at = ? WHERE task_id = ?",
                           (now, task_id))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        if verdict == "gone":
            self._cache.pop(task_id, None)
        elif verdict == "suspect" and (cached := self._cache.get(task_id)) is not None:
            cached.gone_suspected_at = now
        return verdict == "gone" or (row is not None and bool(row[3]))

    async def clear_upstream_404(self, task_id: str) -> None:
        self._conn.execute("UPDATE tasks SET gone_suspected_at = NULL WHERE task_id = ? "
                           "AND gone_suspected_at IS NOT NULL", (task_id,))
        cached = self._cache.get(task_id)
        if cached is not None:
            cached.gone_suspected_at = None

    async def claim_fetch(self, task_id: str, *, now: float, fresh_after: float) -> bool:
        cursor = self._conn.execute(
            "UPDATE tasks SET fetched_at = ? WHERE task_id = ? AND deleted = 0 "
            "AND (fetched_at IS NULL OR fetched_at <= ?)", (now, task_id, fresh_after))
        if cursor.rowcount == 1:
            if (cached := self._cache.get(task_id)) is not None:
                cached.fetched_at = now
            return True
        # Another worker process asked (this one's cache has not seen its writes): the next
        # get() reads the row it wrote.
        self._cache.pop(task_id, None)
        return False

    async def list(self, query: ListQuery) -> tuple[list[TaskRecord], int]:
        where = ["owner = ?", "deleted = 0"]
        args: list[Any] = [query.owner]
        if query.statuses:
            where.append(f"status IN ({', '.join('?' * len(query.statuses))})")
            args.extend(query.statuses)
        if query.task_ids:
            where.append(f"task_id IN ({', '.join('?' * len(query.task_ids))})")
            args.extend(query.task_ids)
        if query.model is not None:
            where.append("(model = ? OR upstream_model = ?)")
            args.extend((query.model, query.model))
        if query.service_tier is not None:
            where.append("service_tier = ?")
            args.append(query.service_tier)
        if query.surface is not None:
            where.append("surface = ?")
            args.append(query.surface)
        if query.created_after is not None:
            where.append("created_at >= ?")
            args.append(query.created_after)
        clause = " AND ".join(where)
        (total,) = self._conn.execute(f"SELECT COUNT(*) FROM tasks WHERE {clause}", args).fetchone()
        order = "DESC" if query.newest_first else "ASC"
        page_where, page_args = clause, list(args)
        if query.after_id is not None:
            # Ties within one second are broken by insertion order (rowid), not by id.
            anchor = self._conn.execute(
                "SELECT created_at, rowid FROM tasks WHERE task_id = ? AND owner = ?",
                (query.after_id, query.owner),
            ).fetchone()
            if anchor is None:
                return [], total
            page_where += f" AND (created_at, rowid) {'<' if query.newest_first else '>'} (?, ?)"
            page_args.extend(anchor)
        rows = self._conn.execute(
            f"{_SELECT} WHERE {page_where} ORDER BY created_at {order}, rowid {order} "
            "LIMIT ? OFFSET ?",
            [*page_args, query.limit, query.offset],
        ).fetchall()
        return [_record(r) for r in rows], total

    async def add_key(self, record: KeyRecord) -> None:
        try:
            self._conn.execute(
                f"INSERT INTO client_keys ({', '.join(_KEY_COLUMNS)}) "
                f"VALUES ({', '.join('?' * len(_KEY_COLUMNS))})", _key_row(record))
        except sqlite3.IntegrityError:
            raise KeyExists(record.name) from None

    async def get_key(self, name: str) -> KeyRecord | None:
        row = self._conn.execute(f"{_SELECT_KEY} WHERE name = ?", (name,)).fetchone()
        return _key(row) if row is not None else None

    async def key_by_digest(self, digest: str) -> KeyRecord | None:
        row = self._conn.execute(f"{_SELECT_KEY} WHERE digest = ?", (digest,)).fetchone()
        return _key(row) if row is not None else None

    async def list_keys(self) -> builtins.list[KeyRecord]:
        return [_key(r) for r in self._conn.execute(f"{_SELECT_KEY} ORDER BY name").fetchall()]

    async def put_key(self, record: KeyRecord, *, old_digest: str | None = None) -> None:
        columns = ", ".join(f"{c} = ?" for c in _KEY_COLUMNS[1:])
        self._conn.execute(f"UPDATE client_keys SET {columns} WHERE name = ?",
                           (*_key_row(record)[1:], record.name))


_KEY_COLUMNS = (
    "name", "digest", "prefix", "models", "rpm", "max_in_flight", "daily_tokens",
    "monthly_tokens", "expires_at", "disabled", "revoked", "created_at", "updated_at",
    "webhook_url", "webhook_secret", "daily_cost", "monthly_cost",
)
_SELECT_KEY = f"SELECT {', '.join(_KEY_COLUMNS)} FROM client_keys"


def _check_version(db: sqlite3.Connection, path: str) -> None:
    """Write the version into a new store, migrate an older one, refuse a newer one."""
    row = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    if row is None:
        db.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)",
                   (str(SCHEMA_VERSION),))
    elif int(row[0]) > SCHEMA_VERSION:
        raise StoreError(f"{path} has schema version {row[0]}, newer than this gateway's "
                         f"{SCHEMA_VERSION}; upgrade the gateway")
    elif int(row[0]) < SCHEMA_VERSION:
        _migrate(db, int(row[0]))


def _migrate(db: sqlite3.Connection, version: int) -> None:
    """Bring an older store up to SCHEMA_VERSION in place; nothing stored is lost."""
    have = {row[1] for row in db.execute("PRAGMA table_info(tasks)")}
    added = [*(TRACKER_COLUMNS if version < 2 else ()), *([GONE_COLUMN] if version < 3 else ()),
             *([FETCHED_COLUMN] if version < 4 else ())]
    for name, kind in added:
        if name not in have:
            db.execute(f"ALTER TABLE tasks ADD COLUMN {name} {kind}")
    have_keys = {row[1] for row in db.execute("PRAGMA table_info(client_keys)")}
    for name, kind in WEBHOOK_KEY_COLUMNS if version < 5 else ():
        if name not in have_keys:
            db.execute(f"ALTER TABLE client_keys ADD COLUMN {name} {kind}")
    for name, kind in COST_KEY_COLUMNS if version < 6 else ():
        if name not in have_keys:
            db.execute(f"ALTER TABLE client_keys ADD COLUMN {name} {kind}")
    have_reservations = {row[1] for row in db.execute("PRAGMA table_info(reservations)")}
    for name, kind in COST_COLUMNS if version < 6 else ():
        if name not in have_reservations:
            db.execute(f"ALTER TABLE reservations ADD COLUMN {name} {kind}")
    db.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION),))


def _key_row(record: KeyRecord) -> tuple[Any, ...]:
    values = {c: getattr(record, c) for c in _KEY_COLUMNS}
    values["models"] = orjson.dumps(list(record.models)).decode()
    return tuple(values[c] for c in _KEY_COLUMNS)


def _key(row: tuple[Any, ...]) -> KeyRecord:
    fields = dict(zip(_KEY_COLUMNS, row, strict=True))
    fields["models"] = tuple(orjson.loads(fields["models"]))
    fields["disabled"], fields["revoked"] = bool(fields["disabled"]), bool(fields["revoked"])
    return KeyRecord(**fields)


def _record(row: tuple[Any, ...]) -> TaskRecord:
    fields = dict(zip(_COLUMNS, row, strict=True))
    fields["deleted"] = bool(fields["deleted"])
    return TaskRecord(**fields)
