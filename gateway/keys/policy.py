"""Per-key policy: requests per minute, tasks in flight, daily and monthly token and cost budgets.

Seedance bills `usage.total_tokens` = W×H×(24·s+1)/1024. Before a create the gateway holds an
estimate from the model, resolution, ratio and duration; when the task ends the real figure
replaces it (a failed task usually bills nothing, so its estimate is given back). Cost budgets
(`prices:` in config) hold the estimate at the model's price and settle alike. Refusals are
429 with `retry-after`, saying which limit was hit, in the caller's API shape.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from gateway.catalog import ModelSpec
from gateway.errors import GatewayError
from gateway.keys.auth import ClientIdentity
from gateway.keys.prices import budget_micros, cost_micros, money
from gateway.seedance import billed_tokens, pixel_size
from gateway.store.base import MAX_COUNT, LimitRefusal, Limits, LimitStore, Reservation

IN_FLIGHT_RETRY_SECONDS = 30  # tasks take minutes; a slot frees when one ends


def estimate_tokens(spec: ModelSpec, body: Mapping[str, Any]) -> int:
    """What the task will most likely bill, from the native create body.

    `adaptive` (or no ratio) counts as 16:9 and `duration: -1` as the model's longest, so
    the estimate errs high: a budget is never overrun by a task the estimate admitted.
    """
    resolution = body.get("resolution") or spec.default_resolution
    ratio = body.get("ratio") or "16:9"
    size = pixel_size(str(resolution), "16:9" if ratio == "adaptive" else str(ratio),
                      spec.family) or pixel_size("720p", "16:9", spec.family) or (1280, 720)
    duration = body.get("duration")
    if not isinstance(duration, int) or isinstance(duration, bool) or duration == 0:
        duration = spec.default_duration
    if duration < 0:
        duration = spec.duration_max
    # Capped: with validation off a duration like 2**63 reaches here, and no budget is larger.
    return min(billed_tokens(size[0], size[1], duration), MAX_COUNT)


class Policy:
    def __init__(self, store: LimitStore, clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._clock = clock

    async def check_rate(self, identity: ClientIdentity) -> None:
        """Counts the request against the key's requests per minute."""
        rpm = identity.policy.rpm if identity.policy is not None else None
        if rpm is None:
            return
        now = self._clock()
        count = await self._store.count_request(identity.name, int(now // 60))
        if count > rpm:
            raise _refused("rpm", f"the key {identity.name!r} may make {rpm} requests per "
                           "minute", retry_after=60 - int(now % 60))

    async def hold(self, identity: ClientIdentity, spec: ModelSpec, tokens: int, *,
                   price: float | None = None) -> Reservation:
        """Holds an in-flight slot, the estimated tokens and their cost at `price` (per million
        tokens; None: unpriced) for a create, or refuses it."""
        clock = self._clock()
        now = time.gmtime(clock)
        reservation = Reservation(
            ref=f"pending-{uuid.uuid4().hex}", key=identity.name, model=spec.name,
            day=time.strftime("%Y-%m-%d", now), month=time.strftime("%Y-%m", now), tokens=tokens,
            price=price, cost=None if price is None else cost_micros(tokens, price))
        p = identity.policy
        limits = Limits(p.max_in_flight, p.daily_tokens, p.monthly_tokens,
                        budget_micros(p.daily_cost), budget_micros(p.monthly_cost)
                        ) if p else Limits()
        if limits == Limits():
            return reservation  # nothing to hold: the usage entry is written with the task
        refusal = await self._store.reserve(reservation, limits)
        if refusal is not None:
            raise self._explain(identity, refusal, reservation, clock)
        return replace(reservation, held=True)

    def _explain(self, identity: ClientIdentity, refusal: LimitRefusal, wanted: Reservation,
                 now: float) -> GatewayError:
        name = identity.name
        if refusal.limit == "max_in_flight":
            return _refused("max_in_flight", f"the key {name!r} already has {refusal.used} "
                            f"tasks queued or running (limit {refusal.allowed})",
                            retry_after=IN_FLIGHT_RETRY_SECONDS)
        period = "daily" if refusal.limit.startswith("daily") else "monthly"
        seconds_left = _seconds_to_reset(now, daily=period == "daily")
        if refusal.limit.endswith("_cost"):
            return _refused(refusal.limit, f"the key {name!r} has used {money(refusal.used)} "
                            f"of its {period} budget of {money(refusal.allowed)} and this task "
                            f"costs about {money(wanted.cost)}", retry_after=seconds_left)
        return _refused(refusal.limit, f"the key {name!r} has used {refusal.used} of its "
                        f"{period} budget of {refusal.allowed} tokens and this task needs about "
                        f"{wanted.tokens}", retry_after=seconds_left)


def _seconds_to_reset(now: float, *, daily: bool) -> int:
    """Seconds until the next UTC midnight (daily) or first of a month (monthly), at least 1."""
    moment = datetime.fromtimestamp(now, UTC)
    midnight = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    if daily:
        reset = midnight + timedelta(days=1)
    elif moment.month == 12:
        reset = midnight.replace(year=moment.year + 1, month=1, day=1)
    else:
        reset = midnight.replace(month=moment.month + 1, day=1)
    return max(math.ceil((reset - moment).total_seconds()), 1)  # never early


def _refused(limit: str, reason: str, *, retry_after: int) -> GatewayError:
    return GatewayError(429, f"{limit}_exceeded", f"Refused: {reason}.", param=limit,
                        headers={"retry-after": str(retry_after)})
