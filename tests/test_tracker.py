"""The background tracker: tasks reach their end, usage settles and slots free, without any
client polling; one holder at a time per task; a dead holder's tasks move on."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

import httpx
import pytest

from gateway.app import create_app
from gateway.config import TrackerConfig
from gateway.store.base import TaskRecord
from gateway.store.sqlite import SCHEMA_VERSION, SQLiteTaskStore
from gateway.tasks.tracker import TaskTracker
from tests.conftest import GatewayFactory, SimulatorFactory
from tests.leaks import CANARY_ADMIN_KEY
from tests.servers import FAKE_ALICE_KEY, gateway_config

ADMIN = {"Authorization": f"Bearer {CANARY_ADMIN_KEY}"}
FAST = {"first_poll": 0.0, "interval": 0.1, "tick": 0.05, "lease": 5.0, "per_key_rate": 50.0}


def test_tracker_settles_usage_with_no_client_polling(
    start_simulator: SimulatorFactory, start_gateway: GatewayFactory
) -> None:
    sim = start_simulator(delay=0.3)
    gateway = start_gateway(
        sim.url + "/api/v3",
        extra={"tracker": {"enabled": True, **FAST},
               "admin": {"keys": [{"name": "ops", "secret": "${ADMIN_KEY}"}]}},
        env={"ADMIN_KEY": CANARY_ADMIN_KEY})
    key = httpx.post(f"{gateway.url}/admin/keys", headers=ADMIN,
                     json={"name": "kim", "max_in_flight": 1}).json()["key"]
    auth = {"Authorization": f"Bearer {key}"}
    created = httpx.post(f"{gateway.url}/v1/videos", headers=auth,
                         json={"prompt": "x", "model": "sora-2", "size": "854x480",
                               "seconds": "4"})
    assert created.status_code == 200
    # Nobody polls: the tracker must see the task end, settle its tokens and free the slot.
    exact = 864 * 496 * (24 * 4 + 1) // 1024
    deadline = time.monotonic() + 10
    while True:
        usage = httpx.get(f"{gateway.url}/admin/usage", headers=ADMIN,
                          params={"key": "kim"}).json()
        second = httpx.post(f"{gateway.url}/v1/videos", headers=auth,
                            json={"prompt": "y", "model": "sora-2"})
        if second.status_code == 200:
            break
        assert second.status_code == 429  # the first still holds the only slot
        assert time.monotonic() < deadline, usage
        time.sleep(0.1)
    # 864x496 is 480p 16:9: the estimate and the real bill agree here.
    assert usage["data"][0]["tokens"] == exact
    metrics = httpx.get(gateway.url + "/metrics").text
    assert 'seedance_gateway_tasks_finished_total{model="sora-2",status="succeeded"} 1.0' in metrics


def record(task_id: str, created_at: int = 1000) -> TaskRecord:
    return TaskRecord(task_id=task_id, owner="alice", upstream="ark", upstream_key="main",
                      model="m", upstream_model="m", surface="native", created_at=created_at,
                      updated_at=created_at)


@pytest.mark.anyio
async def test_leases_give_each_task_one_holder_and_expire(tmp_path: Path) -> None:
    store = SQLiteTaskStore(str(tmp_path / "t.db"))
    await store.open()
    try:
        for i in range(3):
            await store.add(record(f"cgt-{i}"), next_poll_at=100.0)
        assert await store.due_tasks(99.0, 10) == []  # not due yet
        due = await store.due_tasks(100.0, 10)
        assert [r.task_id for r in due] == ["cgt-0", "cgt-1", "cgt-2"]
        assert await store.claim("cgt-0", "replica-a", until=160.0, now=100.0)
        assert not await store.claim("cgt-0", "replica-b", until=160.0, now=101.0)
        assert await store.claim("cgt-0", "replica-a", until=170.0, now=102.0)  # renew
        assert [r.task_id for r in await store.due_tasks(103.0, 10)] == ["cgt-1", "cgt-2"]
        # replica-a dies holding cgt-0: after the lease, replica-b takes over.
        assert await store.claim("cgt-0", "replica-b", until=240.0, now=170.0)
        await store.schedule("cgt-0", "replica-a", 999.0)  # a late write of the dead holder
        assert [r.task_id for r in await store.due_tasks(200.0, 10)] == ["cgt-1", "cgt-2"]
        await store.schedule("cgt-0", "replica-b", 300.0)
        assert "cgt-0" in [r.task_id for r in await store.due_tasks(300.0, 10)]
        await store.update_status("cgt-1", status="succeeded", updated_at=5, usage_tokens=1,
                                  task_json=b"{}")
        assert "cgt-1" not in [r.task_id for r in await store.due_tasks(300.0, 10)]
    finally:
        await store.close()


@pytest.mark.anyio
async def test_two_trackers_never_poll_one_task_twice(
    start_simulator: SimulatorFactory, tmp_path: Path
) -> None:
    sim = start_simulator(delay=3600)
    config = gateway_config(sim.url + "/api/v3", store_url=f"sqlite:///{tmp_path}/t.db",
                            extra={"tracker": {"enabled": False, "first_poll": 0}})
    app = create_app(config)
    services = app.state.services
    async with app.router.lifespan_context(app):
        for _ in range(6):
            created = await _native_create(app)
            assert created.status_code == 200, created.text
        settings = TrackerConfig(**{**FAST, "interval": 3600.0})
        first = TaskTracker(services, settings, holder="replica-a")
        second = TaskTracker(services, settings, holder="replica-b")
        polled = await first.tick() + await second.tick()
        assert polled == 6  # every task once, by one of them
        assert await second.tick() == 0 and await first.tick() == 0  # nothing due again
    gets = [r for r in sim.app.state.simulator.requests if r.method == "GET"]
    assert len(gets) == 6 and len({r.path for r in gets}) == 6


async def _native_create(app: object) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
        return await client.post(
            "/api/v3/contents/generations/tasks",
            headers={"Authorization": f"Bearer {FAKE_ALICE_KEY}"},
            json={"model": "doubao-seedance-2-0-260128",
                  "content": [{"type": "text", "text": "x"}]})


def test_a_version_1_store_is_migrated_with_nothing_lost(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as db:  # the schema as issue 2 shipped it
        db.executescript("""
            CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
            INSERT INTO meta VALUES ('schema_version', '1');
            CREATE TABLE tasks (task_id TEXT PRIMARY KEY, owner TEXT NOT NULL,
                upstream TEXT NOT NULL, upstream_key TEXT NOT NULL, model TEXT NOT NULL,
                upstream_model TEXT NOT NULL, surface TEXT NOT NULL,
                created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL, status TEXT NOT NULL,
                prompt TEXT, requested_size TEXT, requested_seconds TEXT,
                service_tier TEXT NOT NULL, usage_tokens INTEGER, task_json BLOB,
                deleted INTEGER NOT NULL DEFAULT 0);
            INSERT INTO tasks VALUES ('cgt-old', 'alice', 'ark', 'main', 'sora-2', 'x',
                'openai', 10, 10, 'running', 'p', '1280x720', '8', 'default', NULL, NULL, 0);
        """)
    async def check() -> None:
        store = SQLiteTaskStore(str(path))
        await store.open()
        try:
            kept = await store.get("cgt-old", "alice")
            assert kept is not None and kept.prompt == "p" and kept.status == "running"
            assert [r.task_id for r in await store.due_tasks(1e12, 10)] == ["cgt-old"]
        finally:
            await store.close()

    asyncio.run(check())
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT value FROM meta").fetchone() == (str(SCHEMA_VERSION),)


@pytest.mark.anyio
async def test_a_finished_task_never_goes_back(tmp_path: Path) -> None:
    """Two pollers: the older 'running' answer landing last must not undo 'succeeded'."""
    store = SQLiteTaskStore(str(tmp_path / "t.db"))
    await store.open()
    try:
        await store.add(record("cgt-late"))
        await store.update_status("cgt-late", status="succeeded", updated_at=20,
                                  usage_tokens=7, task_json=b'{"status":"succeeded"}')
        await store.update_status("cgt-late", status="running", updated_at=15,
                                  usage_tokens=None, task_json=b'{"status":"running"}')
        kept = await store.get("cgt-late", "alice")
        assert kept is not None and kept.status == "succeeded" and kept.usage_tokens == 7
    finally:
        await store.close()
    reopened = SQLiteTaskStore(str(tmp_path / "t.db"))  # not just the cache: the file too
    await reopened.open()
    try:
        stored = await reopened.get("cgt-late", "alice")
        assert stored is not None and stored.status == "succeeded"
    finally:
        await reopened.close()
