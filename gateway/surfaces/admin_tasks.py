"""GET /admin/tasks and /admin/stats: every member's recent tasks and the live counters that
the web console (gateway/console/) shows an operator.

The stores index tasks per owner (what each member's own listing needs), so the recent tasks
across owners are each owner's newest, merged here: one indexed query per key, and no extra
index for every create to write on both backends. Owners are the keys the gateway knows
(config and stored, revoked ones included); tasks of a key since removed from the config are
not listed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from gateway.errors import GatewayError
from gateway.keys.lifecycle import KeyLifecycle
from gateway.keys.prices import task_cost
from gateway.results.links import FILE_NAMES
from gateway.results.serving import base_url
from gateway.seedance import UNFINISHED_STATUSES
from gateway.services import Services, services_of
from gateway.store.base import ListQuery, TaskRecord
from gateway.surfaces.http import json_response
from gateway.tasks.answers import stored_task

DEFAULT_LIMIT, MAX_LIMIT = 50, 200
SCAN_PAGE = 200  # records read per query while skipping an owner's tasks newer than a cursor


@dataclass(frozen=True, slots=True)
class _Anchor:
    """Where a page starts: the cursor task's place in the merged order."""

    task_id: str
    owner: str
    created_at: int


def _order(record: TaskRecord) -> tuple[int, str]:
    """Newest first; one second's tasks of different owners by owner name (each owner's own
    ties keep the store's order, as the merge is stable)."""
    return -record.created_at, record.owner


async def _owners(request: Request, keys: KeyLifecycle) -> list[str]:
    wanted = request.query_params.get("owner") or None
    names = [k["name"] for k in await keys.list()]
    return [n for n in names if n == wanted] if wanted is not None else names


def _limit(request: Request) -> int:
    raw = request.query_params.get("limit")
    if raw is None:
        return DEFAULT_LIMIT
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
        raise GatewayError(400, "invalid_value",
                           f"limit must be an integer from 1 to {MAX_LIMIT}.", param="limit")
    return int(raw)


async def _anchor(services: Services, owners: list[str], after: str) -> _Anchor | None:
    for owner in owners:
        record = await services.store.get(after, owner)
        if record is not None:
            return _Anchor(after, owner, record.created_at)
    return None


async def _after(services: Services, owner: str, anchor: _Anchor | None,
                 need: int) -> list[TaskRecord]:
    """Up to `need` of the owner's newest tasks that come after the anchor in the order."""
    if anchor is None or anchor.owner == owner:
        after_id = anchor.task_id if anchor is not None else None
        page, _ = await services.store.list(ListQuery(owner=owner, limit=need,
                                                      after_id=after_id))
        return page
    found: list[TaskRecord] = []
    offset = 0
    while len(found) < need:
        page, _ = await services.store.list(ListQuery(owner=owner, limit=SCAN_PAGE,
                                                      offset=offset))
        found += [r for r in page if _order(r) > (-anchor.created_at, anchor.owner)]
        if len(page) < SCAN_PAGE:
            break
        offset += SCAN_PAGE
    return found[:need]


async def _item(services: Services, request: Request, record: TaskRecord) -> dict[str, Any]:
    """One task for the console: the archive's signed links when it holds the files, else the
    upstream's URLs (which expire with Ark's), else null."""
    task = stored_task(record) or {}
    content = task.get("content") if isinstance(task.get("content"), dict) else {}
    assert isinstance(content, dict)
    urls = {field: content.get(field) if isinstance(content.get(field), str) else None
            for field in FILE_NAMES}
    archive = services.archive
    if archive is not None and archive.signer is not None and record.status == "succeeded":
        manifest = await archive.archived(record.task_id)
        if manifest is not None and not archive.aged_out(manifest.created_at):
            base, now = base_url(request), archive.clock()
            for field, name in FILE_NAMES.items():
                if name in manifest.files:
                    urls[field] = archive.signer.link(base, record.task_id, name, now=now)
    prices = services.config.prices
    # The record does not keep the task's input, so a task with a video input is priced at the
    # model's plain rate here (the usage figures settle at the right one).
    cost = (task_cost(prices, record.upstream_model, record.usage_tokens, video_input=False)
            if record.usage_tokens is not None else None)
    return {"id": record.task_id, "owner": record.owner, "model": record.model,
            "status": record.status, "created_at": record.created_at,
            "updated_at": record.updated_at, "prompt": record.prompt,
            "tokens": record.usage_tokens, "cost": cost,
            "currency": prices.currency if cost is not None else None,
            "video_url": urls["video_url"], "thumbnail_url": urls["last_frame_url"]}


async def recent_tasks(request: Request, keys: KeyLifecycle, actor: str) -> Response:
    """GET /admin/tasks?limit=50&owner=<name>&after=<task id>: newest first, every owner."""
    services = services_of(request)
    limit = _limit(request)
    owners = await _owners(request, keys)
    after = request.query_params.get("after") or None
    anchor = await _anchor(services, owners, after) if after is not None else None
    if after is not None and anchor is None:
        return json_response({"object": "list", "data": [], "has_more": False})
    merged: list[TaskRecord] = []
    for owner in owners:
        merged += await _after(services, owner, anchor, limit + 1)
    merged.sort(key=_order)
    page = merged[:limit]
    return json_response({"object": "list",
                          "data": [await _item(services, request, r) for r in page],
                          "has_more": len(merged) > limit})


async def stats(request: Request, keys: KeyLifecycle, actor: str) -> Response:
    """GET /admin/stats: tasks in flight now, and today's tasks and tokens (UTC day)."""
    services = services_of(request)
    store = services.store
    owners = [k["name"] for k in await keys.list()]
    in_flight = 0
    for owner in owners:
        _, total = await store.list(ListQuery(owner=owner, statuses=UNFINISHED_STATUSES,
                                              limit=0))
        in_flight += total
    day = time.strftime("%Y-%m-%d", time.gmtime(services.clock()))
    rows = await store.usage(since_day=day, until_day=day)
    return json_response({"object": "gateway.stats", "day": day, "in_flight": in_flight,
                          "keys": len(owners),
                          "today": {"tasks": sum(r.tasks for r in rows),
                                    "tokens": sum(r.tokens for r in rows)}})
