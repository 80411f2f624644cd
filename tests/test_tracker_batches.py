"""The tracker follows many tasks in few calls: Ark's list with `filter.task_ids`, 100 a call.

On both stores, against the simulator over real sockets (its request log counts the calls). A
round of the tracker over N due tasks of one upstream key and tier is ceil(N / 100) list calls;
flex tasks are listed with `filter.service_tier=flex` (Ark lists only `default` ones
otherwise); a task a list did not return gets a GET; a task a client polled a moment ago costs
nothing; a handful of due tasks go out as GETs (within the key's GET pace).
"""

from __future__ import annotations

import math
import time
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
from starlette.applications import Starlette

from gateway.app import create_app
from gateway.config import TrackerConfig
from gateway.services import Services
from gateway.tasks.tracker import TaskTracker
from tests.conftest import GatewayFactory, SimulatorFactory
from tests.servers import FAKE_ALICE_KEY, ServerThread, gateway_config

NATIVE = "/api/v3/contents/generations/tasks"
MODEL = "doubao-seedance-2-0-260128"
ALICE = {"Authorization": f"Bearer {FAKE_ALICE_KEY}"}
# One round per tick() call: nothing is due again for an hour; list calls 20 ms apart.
ROUND = {"first_poll": 0.0, "interval": 3600.0, "tick": 1.0, "lease": 60.0, "batch": 500,
         "per_key_rate": 5.0, "list_rate": 50.0}


def upstream_calls(sim: ServerThread) -> tuple[list[dict[str, list[str]]], list[str]]:
    """The list calls (their query) and the task GETs (their task id) the simulator received."""
    seen = httpx.get(sim.url + "/_sim/requests", timeout=10).json()
    lists = [parse_qs(r["query"]) for r in seen if r["method"] == "GET" and r["path"] == NATIVE]
    gets = [r["path"].rsplit("/", 1)[1] for r in seen
            if r["method"] == "GET" and r["path"].startswith(NATIVE + "/")]
    return lists, gets


async def create_tasks(app: Starlette, count: int, **fields: Any) -> list[str]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
        ids = []
        for _ in range(count):
            created = await client.post(NATIVE, headers=ALICE, json={
                "model": MODEL, "content": [{"type": "text", "text": "x"}], **fields})
            assert created.status_code == 200, created.text
            ids.append(created.json()["id"])
    return ids


async def client_get(app: Starlette, task_id: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
        return await client.get(f"{NATIVE}/{task_id}", headers=ALICE)


def in_process(sim: ServerThread, store_url: str, **tracker: Any) -> Starlette:
    """A gateway app driven by the test: its tracker ticks only when the test says so."""
    return create_app(gateway_config(
        sim.url + "/api/v3", store_url=store_url, validation=False,  # flex on a 2.0 model
        extra={"tracker": {"enabled": False, "first_poll": 0.0, **tracker}}))


@pytest.mark.anyio
async def test_a_round_lists_due_tasks_a_hundred_at_a_time(
    start_simulator: SimulatorFactory, backend_url: str
) -> None:
    sim = start_simulator(delay=3600)  # every task stays queued
    app = in_process(sim, backend_url)
    services: Services = app.state.services
    async with app.router.lifespan_context(app):
        default = await create_tasks(app, 150)
        flex = await create_tasks(app, 7, service_tier="flex")
        lost = default[42]
        sim.app.state.simulator.tasks[lost].deleted = True  # listed no more, and GETs say 404
        httpx.delete(sim.url + "/_sim/requests")

        tracker = TaskTracker(services, TrackerConfig(**ROUND))
        assert await tracker.tick() == 157  # one round: every due task, once

        lists, gets = upstream_calls(sim)
        assert len(lists) == math.ceil(150 / 100) + math.ceil(7 / 100)
        asked = [query["filter.task_ids"] for query in lists]
        assert all(len(ids) <= 100 for ids in asked)
        assert sorted(i for ids in asked for i in ids) == sorted(default + flex)
        tiers = {query["filter.service_tier"][0]: set(query["filter.task_ids"])
                 for query in lists if set(query["filter.task_ids"]) <= set(flex)}
        assert tiers == {"flex": set(flex)}  # flex tasks are only listed when asked for
        assert gets == [lost]  # the one the list did not return: a GET (Ark's 404)

        for task_id in default + flex:
            record = await services.store.get(task_id, "alice")
            assert record is not None and record.fetched_at is not None
            if task_id == lost:
                assert record.task_json is None and record.gone_suspected_at is not None
            else:
                assert record.task_json is not None and record.status == "queued"
        metrics = services.metrics.exposition().decode()
        assert 'seedance_gateway_polls_total{source="list",surface="tracker"} 156.0' in metrics

        # Listed moments ago, so fresh: a client's poll costs no upstream call either.
        assert (await client_get(app, default[0])).json()["status"] == "queued"
        assert upstream_calls(sim) == (lists, gets)


@pytest.mark.anyio
async def test_a_task_a_client_just_polled_costs_the_tracker_nothing(
    start_simulator: SimulatorFactory, backend_url: str
) -> None:
    sim = start_simulator(delay=3600)
    app = in_process(sim, backend_url)
    services: Services = app.state.services
    async with app.router.lifespan_context(app):
        polled, *others = await create_tasks(app, 8)
        assert (await client_get(app, polled)).status_code == 200  # a GET, just now
        httpx.delete(sim.url + "/_sim/requests")

        assert await TaskTracker(services, TrackerConfig(**ROUND)).tick() == 8
        lists, gets = upstream_calls(sim)
        assert [set(q["filter.task_ids"]) for q in lists] == [set(others)] and gets == []

        single = await create_tasks(app, 1)
        assert (await client_get(app, single[0])).status_code == 200
        httpx.delete(sim.url + "/_sim/requests")
        assert await TaskTracker(services, TrackerConfig(**ROUND)).tick() == 1
        assert upstream_calls(sim) == ([], [])  # fresh: answered by the record


@pytest.mark.anyio
@pytest.mark.parametrize(("due", "lists", "gets"), [(5, 0, 5), (6, 1, 0)])
async def test_a_handful_of_due_tasks_go_out_as_gets(
    start_simulator: SimulatorFactory, backend_url: str, due: int, lists: int, gets: int
) -> None:
    """per_key_rate 5 and list_rate 1: up to 5 due tasks are GETs, more are one list call."""
    sim = start_simulator(delay=3600)
    app = in_process(sim, backend_url)
    async with app.router.lifespan_context(app):
        await create_tasks(app, due)
        httpx.delete(sim.url + "/_sim/requests")
        config = TrackerConfig(**{**ROUND, "list_rate": 1.0})
        assert await TaskTracker(app.state.services, config).tick() == due
    found_lists, found_gets = upstream_calls(sim)
    assert (len(found_lists), len(found_gets)) == (lists, gets)


def test_the_tracker_follows_tasks_to_their_end_through_the_list(
    start_simulator: SimulatorFactory, start_gateway: GatewayFactory, backend_url: str
) -> None:
    """Replica A takes creates and does not track; replica B, on the same store, tracks."""
    sim = start_simulator(delay=3.0)
    a = start_gateway(sim.url + "/api/v3", store_url=backend_url,
                      extra={"tracker": {"enabled": False, "first_poll": 0.0}})  # due at once
    ids = [httpx.post(a.url + NATIVE, headers=ALICE, timeout=10, json={
        "model": MODEL, "content": [{"type": "text", "text": f"task {i}"}]}).json()["id"]
        for i in range(12)]
    # Every tick finds every unfinished task due and stale: one list call a tick.
    tracker = {"enabled": True, "first_poll": 0.0, "interval": 0.5, "tick": 1.0, "lease": 5.0,
               "per_key_rate": 2.0, "list_rate": 5.0, "poll_window": 0.5}
    b = start_gateway(sim.url + "/api/v3", store_url=backend_url, extra={"tracker": tracker})

    deadline = time.monotonic() + 15
    while True:  # nobody polls: the native list reads the store only
        listed = httpx.get(a.url + NATIVE, headers=ALICE, params={"page_size": 50},
                           timeout=10).json()
        if {t["status"] for t in listed["items"]} == {"succeeded"}:
            break
        assert time.monotonic() < deadline, listed
        time.sleep(0.2)
    assert {t["id"] for t in listed["items"]} == set(ids)
    lists, gets = upstream_calls(sim)
    assert gets == [] and 2 <= len(lists) <= 8
    assert all(set(q["filter.task_ids"]) <= set(ids) for q in lists)
    assert set(lists[0]["filter.task_ids"]) == set(ids)
    metrics = httpx.get(b.url + "/metrics", timeout=10).text
    assert f'tasks_finished_total{{model="{MODEL}",status="succeeded"}} 12.0' in metrics
