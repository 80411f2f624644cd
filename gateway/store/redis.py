"""Redis store: task records, client keys, limits and tracker leases shared by gateway replicas.

Data layout (every key starts with the prefix, ``seedance-gateway:`` unless the URL's
``?prefix=`` names another; values are bytes, ``None`` fields are left out of hashes):

* ``{p}schema`` string: the layout version (``SCHEMA_VERSION``); written when absent, a newer
  one is refused, an older one is migrated by ``MIGRATIONS`` (none yet).
* ``{p}seq`` string: a global ``INCR`` counter giving every task its insertion sequence.
* ``{p}t:{task_id}`` hash: the ``TaskRecord`` fields plus ``seq`` (and the tracker's
  ``next_poll_at``, ``lease_holder``, ``lease_until``); ``deleted`` is ``0``/``1`` and
  ``task_json`` the upstream body as-is. Never removed: a deleted task keeps its hash. A status
  write never takes a finished task back to ``queued``/``running`` (an older poll answer that
  lands last is dropped). ``gone_suspected_at``, when the upstream first answered 404, is
  absent otherwise (so hashes written before it need no migration); a status write removes
  it. ``fetched_at``, when a replica last asked the upstream for the task, is absent until one
  did (no migration either); ``claim_fetch`` sets it, one replica per poll window.
* ``{p}o:{owner}`` sorted set: the owner's live (not deleted) tasks, score ``created_at``,
  member ``{seq:016d}:{task_id}``, so equal scores sort by insertion order. A list is one Lua
  script: it walks the set, filters (``HMGET`` per task, in Redis), pages and returns the page.
* ``{p}k:{name}`` hash: a ``KeyRecord`` (``models`` as a JSON list); ``{p}kd:{digest}``
  string: key name by secret digest; ``{p}keys`` set: every key name.
* Limits (request counts, reservations, token figures, usage): gateway/store/redis_limits.py.
* The tracker's due set and leases: gateway/store/redis_tracker.py.
* Idempotency-Key claims: gateway/store/redis_idempotency.py.
* The webhook outbox and native callback URLs: gateway/store/redis_webhooks.py.

Writes that must be atomic are Lua scripts or MULTI transactions. The list script also reads
task hashes named in the set (not passed as KEYS): fine on a standalone Redis, not Cluster.
There is no record cache: every ``get`` is one ``HMGET``, so a status or a delete written by
another replica is seen at once.
"""

from __future__ import annotations

import builtins
import dataclasses
from collections.abc import Awaitable, Callable, Sequence
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import orjson
from redis.asyncio import BlockingConnectionPool, Redis
from redis.commands.core import AsyncScript
from redis.exceptions import RedisError

from gateway.store.base import (
    KeyExists,
    KeyRecord,
    ListQuery,
    Reservation,
    StoreError,
    TaskRecord,
    upstream_404_verdict,
)
from gateway.store.redis_idempotency import RedisIdempotency
from gateway.store.redis_limits import RedisLimits
from gateway.store.redis_lua import SCRIPTS
from gateway.store.redis_tracker import RedisTracker
from gateway.store.redis_webhooks import RedisWebhooks

SCHEMA_VERSION = 1
DEFAULT_PREFIX = "seedance-gateway:"
# Version n -> n + 1, run in order on open when the stored version is older.
MIGRATIONS: dict[int, Callable[[Redis, str], Awaitable[None]]] = {}

# Records are read with HMGET in field order: half the reply of HGETALL, and fields a newer
# minor version might add are ignored.
_TASK_FIELDS = tuple(f.name for f in dataclasses.fields(TaskRecord))
_KEY_FIELDS = tuple(f.name for f in dataclasses.fields(KeyRecord))
_OWNER, _DELETED = _TASK_FIELDS.index("owner"), _TASK_FIELDS.index("deleted")
_INTS = frozenset({"created_at", "updated_at", "usage_tokens", "rpm", "max_in_flight",
                   "daily_tokens", "monthly_tokens", "expires_at"})
_BOOLS = frozenset({"deleted", "disabled", "revoked"})
_FLOATS = frozenset({"gone_suspected_at", "fetched_at", "daily_cost", "monthly_cost"})
# A verdict on an upstream 404 is decided in Python on one read and applied only if the
# record is still as read; a writer in between makes it read and decide again.
_VERDICT_ATTEMPTS = 10


class RedisTaskStore(RedisLimits, RedisTracker, RedisIdempotency, RedisWebhooks):
    """A ``GatewayStore`` (tasks, keys, limits, leases) over one ``redis.asyncio`` pool."""

    _task_fields = _TASK_FIELDS

    def __init__(self, url: str, *, prefix: str = DEFAULT_PREFIX) -> None:
        self._url = url
        self.prefix = prefix
        self._client: Redis | None = None
        self._scripts: dict[str, AsyncScript] = {}

    @classmethod
    def from_url(cls, url: str) -> RedisTaskStore:
        """`redis://[:password@]host[:port][/db][?prefix=sgw:&…]`, or `rediss://` for TLS."""
        parts = urlsplit(url)
        query = parse_qsl(parts.query, keep_blank_values=True)
        prefix = next((v for k, v in query if k == "prefix"), DEFAULT_PREFIX)
        rest = urlencode([(k, v) for k, v in query if k != "prefix"])
        return cls(urlunsplit(parts._replace(query=rest)), prefix=prefix)

    @property
    def where(self) -> str:
        """The URL without credentials, for messages."""
        parts = urlsplit(self._url)
        return f"{parts.scheme}://{parts.hostname}:{parts.port or 6379}{parts.path or '/0'}"

    async def open(self) -> None:
        # Blocking: a burst beyond max_connections waits for a free connection instead of
        # failing with "Too many connections". The URL's query may override these.
        pool = BlockingConnectionPool.from_url(self._url, max_connections=64, timeout=5,
                                               socket_timeout=5, socket_connect_timeout=5)
        client = Redis.from_pool(pool)
        try:
            await self._migrate(client, await self._schema(client))
        except RedisError as exc:
            await client.aclose()
            raise StoreError(f"cannot open task store {self.where}: {exc}") from None
        except BaseException:
            await client.aclose()
            raise
        self._client = client
        self._scripts = {name: client.register_script(source)
                         for name, source in SCRIPTS.items()}

    async def _schema(self, client: Redis) -> int:
        key = self.prefix + "schema"
        async with client.pipeline(transaction=True) as pipe:
            pipe.set(key, SCHEMA_VERSION, nx=True)
            pipe.get(key)
            _, stored = await pipe.execute()
        try:
            version = int(stored)
        except (TypeError, ValueError):
            raise StoreError(f"{self.where} {key} is {stored!r}, not a schema version") from None
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"{self.where} (prefix {self.prefix!r}) has schema version {version}, newer "
                f"than this gateway's {SCHEMA_VERSION}; upgrade the gateway")
        return version

    async def _migrate(self, client: Redis, version: int) -> None:
        """The hook for a future layout: MIGRATIONS[n] moves data from version n to n + 1."""
        for step in range(version, SCHEMA_VERSION):
            if step not in MIGRATIONS:
                raise StoreError(f"{self.where}: no migration from schema version {step}")
            await MIGRATIONS[step](client, self.prefix)
            await client.set(self.prefix + "schema", step + 1)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    @property
    def _conn(self) -> Redis:
        if self._client is None:
            raise StoreError("task store is not open")
        return self._client

    async def ping(self) -> bool:
        try:
            return bool(await self._conn.ping())
        except (RedisError, OSError, StoreError):
            return False

    # Tasks

    def _task_key(self, task_id: str) -> str:
        return f"{self.prefix}t:{task_id}"

    def _owner_key(self, owner: str) -> str:
        return f"{self.prefix}o:{owner}"

    async def add(self, record: TaskRecord, *, next_poll_at: float = 0.0,
                  usage: Reservation | None = None) -> None:
        """One script: the record, its due entry, and its usage entry (see redis_limits.py)."""
        keys = [self._task_key(record.task_id), self._owner_key(record.owner),
                self.prefix + "seq", self._due_key]
        pairs = _pairs(record)
        due = "" if record.terminal or record.deleted else repr(next_poll_at)
        args = [record.created_at, record.task_id, due, len(pairs), *pairs]
        if usage is None:
            args += ["", ""]
        else:
            keys += [f"{self.prefix}r:{usage.ref}", *self._entry_keys(usage, record.task_id)]
            args += ["held" if usage.held else "new", usage.ref,
                     *self._entry_args(usage, record.task_id)]
        added = await self._scripts["add_task"](keys, args)
        if added != 1:  # 0: the task, -1: a usage entry with its id
            raise StoreError(f"task {record.task_id} is already stored")

    async def get(self, task_id: str, owner: str) -> TaskRecord | None:
        values = await self._conn.hmget(self._task_key(task_id), _TASK_FIELDS)
        if values[_OWNER] != owner.encode() or values[_DELETED] == b"1":
            return None
        return _task(values)

    def _tasks(self, rows: Sequence[Sequence[Any]]) -> builtins.list[TaskRecord]:
        return [_task(values) for values in rows]

    async def update_status(
        self, task_id: str, *, status: str, updated_at: int, usage_tokens: int | None,
        task_json: bytes,
    ) -> None:
        tokens = "" if usage_tokens is None else usage_tokens
        await self._scripts["update_status"](
            [self._task_key(task_id), self._due_key],
            [status, updated_at, task_json, tokens, task_id])

    async def mark_deleted(self, task_id: str) -> None:
        # Owner and seq never change, so reading them first cannot race with another writer.
        key = self._task_key(task_id)
        owner, seq = await self._conn.hmget(key, ["owner", "seq"])
        if owner is None or seq is None:
            return
        async with self._conn.pipeline(transaction=True) as pipe:
            pipe.hset(key, "deleted", 1)
            pipe.zrem(self._owner_key(_text(owner)), f"{int(seq):016d}:{task_id}")
            pipe.zrem(self._due_key, task_id)
            await pipe.execute()

    async def note_upstream_404(self, task_id: str, *, now: float,
                                deleting: bool = False) -> bool:
        key = self._task_key(task_id)
        for _ in range(_VERDICT_ATTEMPTS):
            status, created_at, suspected, deleted = await self._conn.hmget(
                key, ["status", "created_at", "gone_suspected_at", "deleted"])
            if status is None or created_at is None or deleted == b"1":
                return deleted == b"1"
            verdict = upstream_404_verdict(
                status=_text(status), created_at=int(created_at),
                suspected_at=None if suspected is None else float(suspected), now=now,
                deleting=deleting)
            if verdict == "keep":
                return False
            applied = await self._scripts["upstream_404"](
                [key, self._due_key, f"{self.prefix}r:{task_id}"],
                [self.prefix, task_id, verdict, status, suspected or b"", repr(now)])
            if applied != -1:
                return verdict == "gone"
        raise StoreError(f"task {task_id} kept changing while an upstream 404 was recorded")

    async def clear_upstream_404(self, task_id: str) -> None:
        await self._conn.hdel(self._task_key(task_id), "gone_suspected_at")

    async def claim_fetch(self, task_id: str, *, now: float, fresh_after: float) -> bool:
        return bool(await self._scripts["claim_fetch"](
            [self._task_key(task_id)], [repr(now), repr(fresh_after)]))

    async def list(self, query: ListQuery) -> tuple[list[TaskRecord], int]:
        """One script: the owner's set in order, filtered and paged in Redis (one snapshot)."""
        spec: dict[str, Any] = {
            "newest": query.newest_first, "offset": max(query.offset, 0),
            "limit": max(query.limit, 0), "after": query.after_id,
            "low": "-inf" if query.created_after is None else str(query.created_after),
            "statuses": list(query.statuses) or None, "task_ids": list(query.task_ids) or None,
            "model": query.model, "service_tier": query.service_tier, "surface": query.surface,
            "fields": _TASK_FIELDS,
        }
        spec = {k: v for k, v in spec.items() if v is not None}
        total, *page = await self._scripts["list"](
            [self._owner_key(query.owner)], [self.prefix, query.owner, orjson.dumps(spec)])
        return [_task(values) for values in page], total

    # Client keys

    def _key_keys(self, record: KeyRecord, old_digest: str | None) -> builtins.list[str]:
        keys = [f"{self.prefix}k:{record.name}", f"{self.prefix}kd:{record.digest}",
                self.prefix + "keys"]
        return keys + ([f"{self.prefix}kd:{old_digest}"] if old_digest else [])

    async def add_key(self, record: KeyRecord) -> None:
        keys = self._key_keys(record, None)
        done = await self._scripts["put_key"](keys, ["add", record.name, *_pairs(record)])
        if done != 1:
            raise KeyExists(record.name if done == 0 else "a key with that secret")

    async def get_key(self, name: str) -> KeyRecord | None:
        values = await self._conn.hmget(f"{self.prefix}k:{name}", _KEY_FIELDS)
        return _key(values) if values[0] is not None else None

    async def key_by_digest(self, digest: str) -> KeyRecord | None:
        name = await self._conn.get(f"{self.prefix}kd:{digest}")
        if name is None:
            return None
        record = await self.get_key(_text(name))
        return record if record is not None and record.digest == digest else None

    async def list_keys(self) -> builtins.list[KeyRecord]:
        names = sorted(_text(n) for n in await self._conn.smembers(self.prefix + "keys"))
        async with self._conn.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.hmget(f"{self.prefix}k:{name}", _KEY_FIELDS)
            found = await pipe.execute()
        return [_key(values) for values in found if values[0] is not None]

    async def put_key(self, record: KeyRecord, *, old_digest: str | None = None) -> None:
        """Replaces a stored key (an unknown name is left alone, as SQLite's UPDATE does)."""
        keys = self._key_keys(record, old_digest)
        if await self._scripts["put_key"](keys, ["put", record.name, *_pairs(record)]) == -1:
            raise KeyExists("a key with that secret")


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _pairs(record: TaskRecord | KeyRecord) -> list[Any]:
    """Field/value pairs for HSET: None left out, booleans as 0/1, tuples as JSON."""
    pairs: list[Any] = []
    for field in dataclasses.fields(record):
        value = getattr(record, field.name)
        if value is None:
            continue
        if isinstance(value, bool):
            value = int(value)
        elif isinstance(value, tuple):
            value = orjson.dumps(value)
        pairs += (field.name, value)
    return pairs


def _decode(names: tuple[str, ...], values: Sequence[Any]) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for name, value in zip(names, values, strict=True):
        if value is None:
            continue  # not stored: the dataclass default
        if name in _INTS:
            fields[name] = int(value)
        elif name in _FLOATS:
            fields[name] = float(value)
        elif name in _BOOLS:
            fields[name] = value == b"1"
        elif name == "task_json":
            fields[name] = bytes(value)
        elif name == "models":
            fields[name] = tuple(orjson.loads(value))
        else:
            fields[name] = value.decode()
    return fields


def _task(values: Sequence[Any]) -> TaskRecord:
    return TaskRecord(**_decode(_TASK_FIELDS, values))


def _key(values: Sequence[Any]) -> KeyRecord:
    return KeyRecord(**_decode(_KEY_FIELDS, values))
