"""Redis side of the webhook outbox.

Layout (under the store's prefix ``{p}``):

* ``{p}wh:{message_id}`` hash: a ``WebhookDelivery`` (``None`` fields left out). A delivered
  message's hash expires after ``KEEP_SECONDS`` (it only guards against a second enqueue of
  the same event until then); a failed one stays, listed by ``{p}wh:failed``.
* ``{p}wh:due`` sorted set: pending message ids, score ``next_at``. A claim moves the score to
  the end of the claimer's lease (and names it ``holder`` in the hash), so no other replica
  takes the message before then; a dead claimer's messages come due again.
* ``{p}wh:failed`` sorted set: messages that gave up, score when.
* ``{p}cb:{task_id}`` string: a native create's ``callback_url``.

Enqueue, claim and settle are one Lua script each.
"""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis
from redis.commands.core import AsyncScript

from gateway.store.followups import KEEP_SECONDS, WebhookDelivery, WebhookState

_FIELDS = ("message_id", "owner", "task_id", "kind", "url", "body", "created_at", "next_at",
           "attempts", "state", "last_error", "holder")
_FLOATS = frozenset({"created_at", "next_at"})

_ENQUEUE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
redis.call('ZADD', KEYS[2], ARGV[1], ARGV[3])
return 1
"""
# KEYS: due set; ARGV: now, lease_until, holder, limit, hash key prefix
_CLAIM = """
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[4])
for _, id in ipairs(ids) do
  redis.call('ZADD', KEYS[1], ARGV[2], id)
  redis.call('HSET', ARGV[5] .. id, 'holder', ARGV[3], 'next_at', ARGV[2])
end
return ids
"""
# KEYS: hash, due, failed; ARGV: id, holder, state, attempts, next_at, last_error, keep
_SETTLE = """
if redis.call('HGET', KEYS[1], 'holder') ~= ARGV[2]
   or redis.call('HGET', KEYS[1], 'state') ~= 'pending' then return 0 end
redis.call('HSET', KEYS[1], 'state', ARGV[3], 'attempts', ARGV[4], 'next_at', ARGV[5])
redis.call('HDEL', KEYS[1], 'holder')
if ARGV[6] ~= '' then redis.call('HSET', KEYS[1], 'last_error', ARGV[6]) end
if ARGV[3] == 'pending' then
  redis.call('ZADD', KEYS[2], ARGV[5], ARGV[1])
else
  redis.call('ZREM', KEYS[2], ARGV[1])
end
if ARGV[3] == 'failed' then redis.call('ZADD', KEYS[3], ARGV[5], ARGV[1]) end
if ARGV[3] == 'delivered' then redis.call('EXPIRE', KEYS[1], ARGV[7]) end
return 1
"""


class RedisWebhooks:
    """Mixed into RedisTaskStore: `prefix` and `_conn` come from it."""

    prefix: str

    @property
    def _conn(self) -> Redis:
        raise NotImplementedError

    def _webhook_script(self, name: str, source: str) -> AsyncScript:
        # Registered lazily on the live client: the store's own script table is not ours.
        cache: dict[str, AsyncScript] = self.__dict__.setdefault("_webhook_scripts", {})
        if name not in cache or cache[name].registered_client is not self._conn:
            cache[name] = self._conn.register_script(source)
        return cache[name]

    def _message_key(self, message_id: str) -> str:
        return f"{self.prefix}wh:{message_id}"

    async def enqueue_webhook(self, delivery: WebhookDelivery) -> bool:
        pairs: list[Any] = []
        for name in _FIELDS:
            value = getattr(delivery, name)
            if value is not None:
                pairs += [name, repr(value) if name in _FLOATS else value]
        stored = await self._webhook_script("enqueue", _ENQUEUE)(
            [self._message_key(delivery.message_id), self.prefix + "wh:due"],
            [repr(delivery.next_at), *pairs])
        return bool(stored)

    async def claim_webhooks(self, now: float, holder: str, lease_until: float,
                             limit: int) -> list[WebhookDelivery]:
        ids = await self._webhook_script("claim", _CLAIM)(
            [self.prefix + "wh:due"],
            [repr(now), repr(lease_until), holder, limit, self.prefix + "wh:"])
        return await self._messages([_text(i) for i in ids])

    async def _messages(self, ids: list[str]) -> list[WebhookDelivery]:
        found = []
        for message_id in ids:
            values = await self._conn.hmget(self._message_key(message_id), _FIELDS)
            if values[0] is not None:
                found.append(_delivery(values))
        return found

    async def settle_webhook(self, message_id: str, holder: str, *, state: WebhookState,
                             attempts: int, next_at: float, last_error: str | None) -> bool:
        settled = await self._webhook_script("settle", _SETTLE)(
            [self._message_key(message_id), self.prefix + "wh:due", self.prefix + "wh:failed"],
            [message_id, holder, state, attempts, repr(next_at), last_error or "",
             KEEP_SECONDS])
        return bool(settled)

    async def failed_webhooks(self, limit: int) -> list[WebhookDelivery]:
        ids = await self._conn.zrevrange(self.prefix + "wh:failed", 0, limit - 1)
        return await self._messages([_text(i) for i in ids])

    async def prune_webhooks(self, before: float) -> int:
        return 0  # a delivered message's hash expires KEEP_SECONDS after delivery

    async def set_task_callback(self, task_id: str, url: str) -> None:
        await self._conn.set(f"{self.prefix}cb:{task_id}", url)

    async def task_callback(self, task_id: str) -> str | None:
        url = await self._conn.get(f"{self.prefix}cb:{task_id}")
        return _text(url) if url is not None else None


def _delivery(values: list[Any]) -> WebhookDelivery:
    fields: dict[str, Any] = {}
    for name, value in zip(_FIELDS, values, strict=True):
        if value is None:
            continue
        if name == "body":
            fields[name] = bytes(value)
        elif name in _FLOATS:
            fields[name] = float(value)
        elif name == "attempts":
            fields[name] = int(value)
        else:
            fields[name] = value.decode()
    return WebhookDelivery(**fields)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
