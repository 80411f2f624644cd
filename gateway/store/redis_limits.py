"""Redis side of the limit counters: request counts, token reservations, usage.

Every check-and-hold is one Lua script, so replicas sharing the Redis cannot both take the last
slot. Layout (under the store's prefix ``{p}``; see gateway/store/redis.py for the rest):

* ``{p}rq:{key}:{window}`` string: requests of a key in one minute (``INCR``, expires after
  ``REQUEST_COUNT_TTL``: old minutes need no sweeping).
* ``{p}r:{ref}`` hash: one usage entry (``key``, ``model``, ``day``, ``month``, ``tokens``,
  ``open`` 1/0, ``price`` and ``cost``: empty for an unpriced model). A reservation held
  before the create is renamed to ``{p}r:{task_id}`` when the task is added. Like SQLite's
  rows they stay after settling (the ledger); a release deletes one.
* ``{p}inflight:{key}`` set: the refs of a key's open reservations (``SCARD`` = in flight).
* ``{p}tok:d:{key}:{day}`` / ``{p}tok:m:{key}:{month}`` strings: the tokens of a key's
  reservations that day / month, open and settled (what SQLite sums), kept up by every change;
  they expire a while after their period ends (nothing reads an old period's figure).
* ``{p}cost:d:{key}:{day}`` / ``{p}cost:m:{key}:{month}`` strings: the same for cost, in
  millionths of the currency (priced entries only).
* ``{p}u:{day}`` hash: usage of one UTC day, fields ``{key}\\t{model}\\tn`` (tasks) and
  ``{key}\\t{model}\\tt`` (tokens: settled plus estimates still held), ``…\\tc`` (cost, once a
  priced entry is written); a group whose last reservation was released is removed.
  ``{p}udays`` sorted set (all scores 0): the days that have usage, read in lexical ranges
  as SQLite compares its ``day`` strings.

A task's entry is written (or its held reservation renamed) by the script that adds the task
(`add(..., usage=)`), so a task and its usage entry are one change. Settle and release find
the key, day and month in the reservation hash, so those scripts build the other key names in
Lua (as the list script does): fine on a standalone Redis, not on Cluster. The scripts are in
gateway/store/redis_lua.py.
"""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis
from redis.commands.core import AsyncScript

from gateway.store.base import LimitRefusal, Limits, Reservation, UsageRow

REQUEST_COUNT_TTL = 120  # seconds: a minute's count outlives its minute, then goes
DAY_TOKENS_TTL = 3 * 86400  # refreshed by every write; a day's figure is read only that day
MONTH_TOKENS_TTL = 40 * 86400


class RedisLimits:
    """Mixed into RedisTaskStore: `prefix`, `_scripts` and `_conn` come from it."""

    prefix: str
    _scripts: dict[str, AsyncScript]

    @property
    def _conn(self) -> Redis:
        raise NotImplementedError

    async def count_request(self, key: str, window: int) -> int:
        # One EVALSHA: measured cheaper than a MULTI pipeline of INCR and EXPIRE in redis-py.
        count = await self._scripts["count_request"]([f"{self.prefix}rq:{key}:{window}"],
                                                     [REQUEST_COUNT_TTL])
        return int(count)

    def _entry_keys(self, r: Reservation, ref: str) -> list[str]:
        """The keys a usage entry touches, in the order the Lua `write_entry` takes them."""
        p = self.prefix
        return [f"{p}r:{ref}", f"{p}inflight:{r.key}", f"{p}tok:d:{r.key}:{r.day}",
                f"{p}tok:m:{r.key}:{r.month}", f"{p}u:{r.day}", f"{p}udays",
                f"{p}cost:d:{r.key}:{r.day}", f"{p}cost:m:{r.key}:{r.month}"]

    @staticmethod
    def _entry_args(r: Reservation, ref: str) -> list[Any]:
        priced = r.price is not None
        return [ref, r.key, r.model, r.day, r.month, r.tokens, DAY_TOKENS_TTL, MONTH_TOKENS_TTL,
                repr(r.price) if priced else "", (r.cost or 0) if priced else ""]

    async def reserve(self, reservation: Reservation, limits: Limits) -> LimitRefusal | None:
        r = reservation
        limit_args = ["" if v is None else v
                      for v in (limits.max_in_flight, limits.daily_tokens, limits.monthly_tokens,
                                limits.daily_cost, limits.monthly_cost)]
        refused = await self._scripts["reserve"](self._entry_keys(r, r.ref),
                                                 [*self._entry_args(r, r.ref), *limit_args])
        if not refused:
            return None
        limit, allowed, used = refused
        return LimitRefusal(_text(limit), int(allowed), int(used))

    async def settle(self, ref: str, tokens: int) -> int | None:
        settled, *cost = await self._scripts["settle"]([f"{self.prefix}r:{ref}"], [
            self.prefix, ref, tokens, DAY_TOKENS_TTL, MONTH_TOKENS_TTL])
        return int(cost[0]) if settled == 1 and cost and cost[0] not in (b"", "") else None

    async def in_flight(self, key: str) -> int:
        return int(await self._conn.scard(f"{self.prefix}inflight:{key}"))

    async def release(self, ref: str) -> None:
        await self._scripts["release"]([f"{self.prefix}r:{ref}"], [
            self.prefix, ref, "", DAY_TOKENS_TTL, MONTH_TOKENS_TTL])

    async def usage(self, *, since_day: str, until_day: str,
                    key: str | None = None) -> list[UsageRow]:
        reply = await self._scripts["usage"]([self.prefix + "udays"],
                                             [self.prefix, since_day, until_day])
        groups: dict[tuple[str, str, str], dict[str, int]] = {}
        for day, flat in zip(reply[::2], reply[1::2], strict=True):
            for field, value in zip(flat[::2], flat[1::2], strict=True):
                name, _, kind = _text(field).rpartition("\t")
                group_key, _, model = name.partition("\t")
                if key is not None and group_key != key:
                    continue
                groups.setdefault((_text(day), group_key, model), {})[kind] = int(value)
        return [UsageRow(k, model, day, counts.get("n", 0), counts.get("t", 0), counts.get("c"))
                for (day, k, model), counts in sorted(groups.items()) if counts.get("n", 0) > 0]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
