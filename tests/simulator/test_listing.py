"""GET /tasks: filters, paging, ordering and key scoping."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from .simkit import MODEL, TASKS, Sim

pytestmark = pytest.mark.anyio


async def listing(sim: Sim, params: list[tuple[str, str]] | None = None) -> dict[str, Any]:
    response = await sim.client.get(TASKS, params=tuple(params or ()))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def ids(body: dict[str, Any]) -> list[str]:
    return [item["id"] for item in body["items"]]


async def test_lists_newest_first_with_default_paging(make_sim: Callable[..., Sim]) -> None:
    sim = make_sim()
    created = [await sim.create() for _ in range(25)]
    body = await listing(sim)
    assert body["total"] == 25
    assert ids(body) == created[::-1][:20]

    second_page = await listing(sim, [("page_num", "2"), ("page_size", "20")])
    assert ids(second_page) == created[::-1][20:]
    assert ids(await listing(sim, [("page_num", "9")])) == []


async def test_filters_by_status_ids_model_and_tier(make_sim: Callable[..., Sim]) -> None:
    sim = make_sim(delay=10)
    queued = await sim.create()
    sim.state.faults.delay = 0
    done = await sim.create()
    failed = await sim.create("[sim:fail]")
    fast = await sim.create(model="doubao-seedance-2-fast")
    flex = await sim.create(service_tier="flex")

    assert ids(await listing(sim, [("filter.status", "queued")])) == [queued]
    assert ids(await listing(sim, [("filter.status", "failed")])) == [failed]
    assert ids(await listing(sim, [("filter.status", "succeeded")])) == [fast, done]
    repeated = [("filter.task_ids", done), ("filter.task_ids", queued)]
    assert ids(await listing(sim, repeated)) == [done, queued]
    by_alias = await listing(sim, [("filter.model", "doubao-seedance-2-fast")])
    by_id = await listing(sim, [("filter.model", "doubao-seedance-2-0-fast-260128")])
    assert ids(by_alias) == ids(by_id) == [fast]
    # Without filter.service_tier only default-tier tasks are listed, as on Ark.
    assert flex not in ids(await listing(sim))
    assert ids(await listing(sim, [("filter.service_tier", "flex")])) == [flex]


async def test_list_items_are_full_task_objects(make_sim: Callable[..., Sim]) -> None:
    sim = make_sim()
    task_id = await sim.create()
    items: list[dict[str, Any]] = (await listing(sim))["items"]
    assert len(items) == 1
    # The same task object as GET, except for freshly signed URLs.
    assert items[0] == await sim.task(task_id) | {"content": items[0]["content"]}
    assert items[0]["content"]["video_url"].startswith("http://sim.test:8123/files/")


async def test_only_the_callers_tasks_are_listed(make_sim: Callable[..., Sim]) -> None:
    sim = make_sim(upstream_keys=("key-a", "key-b"))
    await sim.client.post(TASKS, json={"model": MODEL, "content": [{"type": "text", "text": "x"}]},
                          headers={"Authorization": "Bearer key-a"})
    theirs = await sim.client.get(TASKS, headers={"Authorization": "Bearer key-b"})
    assert theirs.json() == {"items": [], "total": 0}


@pytest.mark.parametrize(("name", "value"), [
    ("page_num", "0"), ("page_size", "501"), ("page_size", "ten"),
    ("filter.status", "expired"), ("filter.service_tier", "cheap"),
])
async def test_bad_list_parameters_are_rejected(
    make_sim: Callable[..., Sim], name: str, value: str,
) -> None:
    sim = make_sim()
    response = await sim.client.get(TASKS, params={name: value})
    assert response.status_code == 400
    assert response.json()["error"]["param"] == name
