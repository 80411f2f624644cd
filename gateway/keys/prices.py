"""What a task costs: its tokens times the model's price per million (`prices:` in config).

Ark bills `usage.total_tokens` at a price per million that depends on the model and, for
Seedance 2.0, on whether the task's input content includes a video. The stores count cost in
millionths of the currency (integers: sums stay exact, and budgets compare exactly on SQLite
and Redis alike); `micros` is that unit, and every store rounds `tokens × price` the same way.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from gateway.config import PricesConfig
from gateway.store.base import MAX_COUNT

MICROS = 1_000_000  # stored cost units per currency unit


def price_per_million(prices: PricesConfig, model: str, *, video_input: bool) -> float | None:
    """The price of a million tokens of `model` (an upstream model id), or None if unpriced."""
    price = prices.models.get(model)
    if price is None:
        return None
    if video_input and price.per_million_tokens_video_input is not None:
        return price.per_million_tokens_video_input
    return price.per_million_tokens


def cost_micros(tokens: int, per_million: float) -> int:
    """`tokens` at `per_million`, in millionths: tokens × price, rounded half up (the SQLite and
    Redis stores compute the same expression when a task settles)."""
    return min(math.floor(tokens * per_million + 0.5), MAX_COUNT)


def task_cost(prices: PricesConfig, model: str, tokens: int, *, video_input: bool
              ) -> float | None:
    """What `tokens` of `model` (the upstream model id on the task record) cost, in
    `prices.currency`, rounded to 6 decimals; None when the model has no price."""
    per_million = price_per_million(prices, model, video_input=video_input)
    if per_million is None:
        return None
    return money(cost_micros(tokens, per_million))


def money(micros: int | None) -> float | None:
    """A stored cost as JSON shows it: currency units, 6 decimals."""
    return None if micros is None else round(micros / MICROS, 6)


def budget_micros(budget: float | None) -> int | None:
    """A cost budget (currency units) in the stores' unit."""
    return None if budget is None else min(math.floor(budget * MICROS + 0.5), MAX_COUNT)


def has_video_input(body: Mapping[str, Any]) -> bool:
    """True when a native create's content includes a video (Ark prices those apart)."""
    content = body.get("content")
    return isinstance(content, list) and any(
        isinstance(item, dict) and item.get("type") == "video_url" for item in content)
