"""Redis side of Idempotency-Key claims: one hash per caller and key.

Layout (under the store's prefix ``{p}``; see gateway/store/redis.py for the rest):

* ``{p}idem:{caller}:{key}`` hash: one claim (``IdempotencyClaim`` fields: ``fingerprint``,
  ``state`` pending/lost/done, ``holder``, ``lease_until``, ``started_at``, ``expires_at``,
  ``failed_at``, ``task_id``, ``upstream_key``; absent when ``None``). Caller names cannot
  hold a ``:``, so the first one after ``idem:`` ends the caller. The hash expires with the
  claim (``EXPIRE`` when it is written): nothing needs sweeping.

Taking a key, renewing or noting it, and letting it go are one Lua script each (in
gateway/store/redis_lua.py), so replicas sharing the Redis cannot both take a key.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis
from redis.commands.core import AsyncScript

from gateway.store.followups import ClaimEnd, IdempotencyClaim

_FIELDS = ("fingerprint", "state", "holder", "lease_until", "started_at", "expires_at",
           "failed_at", "task_id", "upstream_key")
_FLOATS = frozenset({"lease_until", "started_at", "expires_at", "failed_at"})


class RedisIdempotency:
    """Mixed into RedisTaskStore: `prefix`, `_scripts`, `_conn` and `_task_key` come from it."""

    prefix: str
    _scripts: dict[str, AsyncScript]

    @property
    def _conn(self) -> Redis:
        raise NotImplementedError

    def _task_key(self, task_id: str) -> str:
        raise NotImplementedError

    def _claim_key(self, caller: str, key: str) -> str:
        return f"{self.prefix}idem:{caller}:{key}"

    async def claim_idempotency(
        self, caller: str, key: str, *, fingerprint: str, holder: str, now: float,
        lease_until: float, expires_at: float,
    ) -> tuple[IdempotencyClaim | None, bool]:
        ttl = max(math.ceil(expires_at - now), 1)
        reply = await self._scripts["claim_idempotency"](
            [self._claim_key(caller, key)],
            [fingerprint, holder, repr(now), repr(lease_until), repr(expires_at), ttl])
        if len(reply) == 1:
            return None, True
        return _claim(reply[1:]), reply[0] == 1

    async def read_idempotency(self, caller: str, key: str) -> IdempotencyClaim | None:
        values = await self._conn.hmget(self._claim_key(caller, key), _FIELDS)
        return _claim(values) if values[0] is not None else None

    async def hold_idempotency(self, caller: str, key: str, holder: str, *,
                               lease_until: float | None = None, task_id: str | None = None,
                               upstream_key: str | None = None) -> bool:
        held = await self._scripts["hold_idempotency"](
            [self._claim_key(caller, key)],
            [holder, "" if lease_until is None else repr(lease_until), task_id or "",
             upstream_key or ""])
        return bool(held)

    async def end_idempotency(self, caller: str, key: str, holder: str, end: ClaimEnd, *,
                              now: float) -> bool:
        ended = await self._scripts["end_idempotency"](
            [self._claim_key(caller, key)], [holder, end, repr(now)])
        return bool(ended)

    async def task_recorded(self, task_id: str) -> bool:
        return bool(await self._conn.exists(self._task_key(task_id)))


def _claim(values: Sequence[Any]) -> IdempotencyClaim:
    fields: dict[str, Any] = {}
    for name, value in zip(_FIELDS, values, strict=True):
        if value is None:
            continue
        text = value.decode() if isinstance(value, bytes) else str(value)
        fields[name] = float(text) if name in _FLOATS else text
    return IdempotencyClaim(**fields)
