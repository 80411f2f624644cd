"""Redis side of the limit counters: request counts, token reservations, usage.

Every check-and-hold is one Lua script, so replicas sharing the Redis cannot both take the last
slot. Layout (under the store's prefix ``{p}``; see gateway/store/redis.py for the rest):

* ``{p}rq:{key}:{window}`` string: requests of a key in one minute (``INCR``, expires after
  ``REQUEST_COUNT_TTL``: old minutes need no sweeping).
* ``{p}r:{ref}`` hash: one usage entry (``key``, ``model``, ``day``, ``month``, ``tokens``,
  ``open`` 1/0). A reservation held before the create is renamed to ``{p}r:{task_id}`` when
  the task is added. Like SQLite's rows they stay after settling (the ledger); a release
  deletes one.
* ``{p}inflight:{key}`` set: the refs of a key's open reservations (``SCARD`` = in flight).
* ``{p}tok:d:{key}:{day}`` / ``{p}tok:m:{key}:{month}`` strings: the tokens of a key's
  reservations that day / month, open and settled (what SQLite sums), kept up by every change;
  they expire a while after their period ends (nothing reads an old period's figure).
* ``{p}u:{day}`` hash: usage of one UTC day, fields ``{key}\\t{model}\\tn`` (tasks) and
  ``{key}\\t{model}\\tt`` (tokens: settled plus estimates still held); a group whose last
  reservation was released is removed. ``{p}udays`` sorted set (all scores 0): the days that
  have usage, read in lexical ranges as SQLite compares its ``day`` strings.

A task's entry is written (or its held reservation renamed) by the script that adds the task
(`add(..., usage=)`), so a task and its usage entry are one change. Settle and release find
the key, day and month in the reservation hash, so those scripts build the other key names in
Lua (as the list script does): fine on a standalone Redis, not on Cluster. The scripts are in
gateway/store/redis_lua.py.
"""

from __future__ import annotations

from typing import Any

from redis.commands.core import AsyncScript

from gateway.store.base import LimitRefusal, Limits, Reservation, UsageRow

REQUEST_COUNT_TTL = 120  # seconds: a minute's count outlives its minute, then goes
DAY_TOKENS_TTL = 3 * 86400  # refreshed by every write; a day's figure is read only that day
MONTH_TOKENS_TTL = 40 * 86400


class RedisLimits:
    """Mixed into RedisTaskStore: `prefix` and `_scripts` come from it."""

    prefix: str
    _scripts: dict[str, AsyncScript]

    async def count_request(self, key: str, window: int) -> int:
        # One EVALSHA: measured cheaper than a MULTI pipeline of INCR and EXPIRE in redis-py.
        count = await self._scripts["count_request"]([f"{self.prefix}rq:{key}:{window}"],
                                                     [REQUEST_COUNT_TTL])
        return int(count)

    def _entry_keys(self, r: Reservation, ref: str) -> list[str]:
        """The keys a usage entry touches, in the order the Lua `write_entry` takes them."""
        p = self.prefix
        return [f"{p}r:{ref}", f"{p}inflight:{r.key}", f"{p}tok:d:{r.key}:{r.day}",
                f"{p}tok:m:{r.key}:{r.month}", f"{p}u:{r.day}", f"{p}udays"]

    @staticmethod
    def _entry_args(r: Reservation, ref: str) -> list[Any]:
        return [ref, r.key, r.model, r.day, r.month, r.tokens, DAY_TOKENS_TTL, MONTH_TOKENS_TTL]

    async def reserve(self, reservation: Reservation, limits: Limits) -> LimitRefusal | None:
        r = reservation
        limit_args = ["" if v is None else v
                      for v in (limits.max_in_flight, limits.daily_tokens, limits.monthly_tokens)]
        refused = await self._scripts["reserve"](self._entry_keys(r, r.ref),
                                                 [*self._entry_args(r, r.ref), *limit_args])
        if not refused:
            return None
        limit, allowed, used = refused
        return LimitRefusal(_text(limit), int(allowed), int(used))

    async def settle(self, ref: str, tokens: int) -> None:
        await self._scripts["settle"]([f"{self.prefix}r:{ref}"], [
            self.prefix, ref, tokens, DAY_TOKENS_TTL, MONTH_TOKENS_TTL])

    async def release(self, ref: str) -> None:
        await self._scripts["release"]([f"{self.prefix}r:{ref}"], [
            self.prefix, ref, "", DAY_TOKENS_TTL, MONTH_TOKENS_TTL])

    async def usage(self, *, since_day: str, until_day: str,
                    key: str | None = None) -> list[UsageRow]:
        reply = await self._scripts["usage"]([self.prefix + "udays"],
                                             [self.prefix, since_day, until_day])
        groups: dict[tuple[str, str, str], list[int]] = {}
        for day, flat in zip(reply[::2], reply[1::2], strict=True):
            for field, value in zip(flat[::2], flat[1::2], strict=True):
                name, _, kind = _text(field).rpartition("\t")
                group_key, _, model = name.partition("\t")
                if key is not None and group_key != key:
                    continue
                counts = groups.setdefault((_text(day), group_key, model), [0, 0])
                counts[kind == "t"] = int(value)
        return [UsageRow(k, model, day, tasks, tokens)
                for (day, k, model), (tasks, tokens) in sorted(groups.items()) if tasks > 0]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
