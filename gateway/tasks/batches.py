"""Refreshing many tasks of one upstream key with one Ark list call (the tracker's batches).

Ark's list returns the same task objects as a GET, filtered by ``filter.task_ids`` (the key
repeated) and by ``filter.service_tier``, which Ark defaults to ``default``: a flex task is
listed only when its tier is asked for, so one call covers tasks of one tier. Each task the
list returns is learned as a GET's answer would be (its bytes: the item as compact JSON, the
same object a GET returns). A task it did not return (Ark lists the last 7 days only; a task
Ark lost) is left to a GET, which also brings the 404 the store's verdict needs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from gateway.errors import UpstreamBadResponse
from gateway.services import Services
from gateway.store.base import TaskRecord
from gateway.tasks.answers import learn, upstream_failure
from gateway.translate.seedance_validation import SERVICE_TIERS

# Ids per call. Ark takes pages of up to 500, but 500 ids make a URL of some 20 KB, past what
# many proxies accept; 100 keep it near 4 KB.
LIST_IDS = 100
LISTABLE_TIERS = SERVICE_TIERS  # the values Ark's filter.service_tier accepts


async def fetch_listed(services: Services, records: Sequence[TaskRecord]) -> set[str]:
    """One list call for up to LIST_IDS tasks of one upstream, key and tier; the ids of the
    tasks it answered for, each learned. Raises the upstream's error when the call failed."""
    first = records[0]
    ids = [r.task_id for r in records[:LIST_IDS]]
    query = [("page_num", "1"), ("page_size", str(len(ids))),
             ("filter.service_tier", first.service_tier),
             *(("filter.task_ids", task_id) for task_id in ids)]
    reply = await services.upstream_of(first).list_tasks(query, key=first.upstream_key,
                                                         client_request_id=None)
    if reply.status != 200:
        raise upstream_failure(reply)
    wanted = {r.task_id: r for r in records[:LIST_IDS]}
    answered: set[str] = set()
    for item in _items(reply.body):
        task_id = item.get("id")
        record = wanted.get(task_id) if isinstance(task_id, str) else None
        if record is None or task_id in answered or not isinstance(item.get("status"), str):
            continue  # not asked for, listed twice, or not a task: a GET settles it
        await learn(services, record, item, orjson.dumps(item))
        services.metrics.polled("tracker", "list")
        answered.add(record.task_id)
    return answered


def _items(body: bytes) -> list[dict[str, Any]]:
    try:
        page = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise UpstreamBadResponse("the upstream returned a task list that is not JSON") from None
    items = page.get("items") if isinstance(page, dict) else None
    if not isinstance(items, list):
        raise UpstreamBadResponse("the upstream returned a task list without items")
    return [item for item in items if isinstance(item, dict)]
