"""GET /me: what a client key may do and how much of it is left, for the member holding it.

The key's name, the models it may use (the ids /v1/models lists), its limits, its usage today
and this month (UTC; tokens, and cost at the configured prices), what remains of each budget,
and its tasks in flight. Figures are the ones the budgets are checked against: settled tasks
plus estimates still held. Errors are in OpenAI's envelope; a bad key is a 401 as on
/v1/videos. Reading it does not count against the key's requests per minute: a member
refused for rate should still see why.
"""

from __future__ import annotations

import time
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.keys.auth import ClientIdentity
from gateway.keys.prices import budget_micros, money
from gateway.services import caller_of, services_of
from gateway.store.base import UsageRow
from gateway.surfaces.http import json_response, with_errors
from gateway.surfaces.models import usable_models
from gateway.webhooks.outbox import key_webhook

PATH = "/me"


async def me(request: Request) -> Response:
    services = services_of(request)
    identity = await caller_of(request, services)
    now = time.gmtime(services.clock())
    today, month = time.strftime("%Y-%m-%d", now), time.strftime("%Y-%m", now)
    rows = await services.store.usage(since_day=f"{month}-01", until_day=today,
                                      key=identity.name)
    day_used = _used([r for r in rows if r.day == today])
    month_used = _used(rows)
    limits = _limits(identity)
    return json_response({
        "object": "gateway.key",
        "name": identity.name,
        "models": usable_models(services.catalogue, identity),
        "limits": limits,
        "usage": {"today": {"day": today, **_shown(day_used)},
                  "month": {"month": month, **_shown(month_used)}},
        "remaining": {
            "daily_tokens": _left(limits["daily_tokens"], day_used["tokens"]),
            "monthly_tokens": _left(limits["monthly_tokens"], month_used["tokens"]),
            "daily_cost": _money_left(limits["daily_cost"], day_used["cost"]),
            "monthly_cost": _money_left(limits["monthly_cost"], month_used["cost"]),
        },
        "currency": services.config.prices.currency,
        "in_flight": await services.store.in_flight(identity.name),
        "webhook_url": (await key_webhook(services, identity.name))[0],
    })


def _limits(identity: ClientIdentity) -> dict[str, Any]:
    p = identity.policy
    if p is None:
        return dict.fromkeys(("rpm", "max_in_flight", "daily_tokens", "monthly_tokens",
                              "daily_cost", "monthly_cost"))
    return {"rpm": p.rpm, "max_in_flight": p.max_in_flight, "daily_tokens": p.daily_tokens,
            "monthly_tokens": p.monthly_tokens, "daily_cost": p.daily_cost,
            "monthly_cost": p.monthly_cost}


def _used(rows: list[UsageRow]) -> dict[str, Any]:
    """Tasks, tokens and cost (millionths; None while nothing was priced) of `rows`."""
    micros = [r.cost for r in rows if r.cost is not None]
    return {"tasks": sum(r.tasks for r in rows), "tokens": sum(r.tokens for r in rows),
            "cost": sum(micros) if micros else None}


def _shown(used: dict[str, Any]) -> dict[str, Any]:
    return {"tasks": used["tasks"], "tokens": used["tokens"], "cost": money(used["cost"])}


def _left(limit: int | None, used: int) -> int | None:
    return None if limit is None else max(limit - used, 0)


def _money_left(limit: float | None, used: int | None) -> float | None:
    """Compared in millionths, as the stores compare it."""
    allowed = budget_micros(limit)
    return None if allowed is None else money(max(allowed - (used or 0), 0))


def routes() -> list[Route]:
    return [Route(PATH, with_errors("openai", me), methods=["GET"])]
