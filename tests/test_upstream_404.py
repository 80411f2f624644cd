"""An upstream 404 hides a task only once confirmed, and never one whose end was recorded.

Ark sometimes answers 404 for a task it still has; one such answer must not lose the task for
its owner, nor its in-flight slot. A task is gone after a second 404 at least 30 s after the
first one seen, or at the first 404 once it is past Ark's 7-day retention. End to end, on both
store backends: a real gateway (on a clock the test moves) in front of the simulator, which
answers 404 to the next N requests of a task on `POST /_sim/tasks/{id}/lose`.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.app import create_app
from tests.conftest import GatewayFactory, SimulatorFactory
from tests.leaks import CANARY_ADMIN_KEY, LeakTrap, RecordingApp
from tests.servers import FAKE_ALICE_KEY, FAKE_UPSTREAM_KEY, ServerThread, gateway_config
from tests.simulator.simkit import FakeClock

NATIVE = "/api/v3/contents/generations/tasks"
MODEL = "doubao-seedance-2-0-260128"
ALICE = {"Authorization": f"Bearer {FAKE_ALICE_KEY}"}
ADMIN = {"Authorization": f"Bearer {CANARY_ADMIN_KEY}"}
WITH_ADMIN = {"admin": {"keys": [{"name": "ops", "secret": "${ADMIN_KEY}"}]}}
ESTIMATE_720P_5S = 1280 * 720 * (24 * 5 + 1) // 1024  # what a create below holds
DAY = 86400


class Gateway:
    """A gateway on a fake clock in front of a simulator, with the requests a test makes."""

    def __init__(self, server: ServerThread, sim: ServerThread, clock: FakeClock) -> None:
        self.server, self.sim, self.clock = server, sim, clock

    def request(self, method: str, path: str, key: str = FAKE_ALICE_KEY,
                **kwargs: Any) -> httpx.Response:
        return httpx.request(method, self.server.url + path, timeout=10,
                             headers={"Authorization": f"Bearer {key}"}, **kwargs)

    def create(self, key: str = FAKE_ALICE_KEY) -> httpx.Response:
        return self.request("POST", NATIVE, key, json={
            "model": MODEL, "content": [{"type": "text", "text": "x"}], "resolution": "720p",
            "ratio": "16:9", "duration": 5})

    def get(self, task_id: str, key: str = FAKE_ALICE_KEY) -> httpx.Response:
        return self.request("GET", f"{NATIVE}/{task_id}", key)

    def listed(self, key: str = FAKE_ALICE_KEY) -> dict[str, str]:
        """Task id → status on the native list (the last 7 days); each of them must be on the
        OpenAI list too."""
        native = self.request("GET", NATIVE, key, params={"page_size": 100})
        videos = self.request("GET", "/v1/videos", key, params={"limit": 100})
        assert native.status_code == videos.status_code == 200, native.text + videos.text
        shown = {v["id"] for v in videos.json()["data"]}
        listed = {t["id"]: t["status"] for t in native.json()["items"]}
        assert set(listed) <= shown, (listed, shown)
        return listed

    def shown_as_videos(self, key: str = FAKE_ALICE_KEY) -> set[str]:
        videos = self.request("GET", "/v1/videos", key, params={"limit": 100})
        return {v["id"] for v in videos.json()["data"]}

    def lose(self, task_id: str, requests: int) -> None:
        """The simulator answers 404 to the next `requests` GET/DELETE requests of the task."""
        done = httpx.post(f"{self.sim.url}/_sim/tasks/{task_id}/lose",
                          json={"requests": requests})
        assert done.status_code == 200, done.text

    def upstream_calls(self, task_id: str) -> int:
        return sum(r.path == f"{NATIVE}/{task_id}"
                   for r in self.sim.app.state.simulator.requests)

    def new_key(self, name: str, **policy: Any) -> str:
        created = httpx.post(f"{self.server.url}/admin/keys", headers=ADMIN,
                             json={"name": name, **policy})
        assert created.status_code == 201, created.text
        return str(created.json()["key"])

    def usage(self, key: str) -> Any:
        return httpx.get(f"{self.server.url}/admin/usage", headers=ADMIN,
                         params={"key": key}).json()["totals"]


GatewayOnClock = Callable[..., Gateway]


@pytest.fixture
def clocked_gateway(start_simulator: SimulatorFactory,
                    leak_trap: LeakTrap) -> Iterator[GatewayOnClock]:
    """Starts a gateway whose clock only moves when the test says so, in front of `sim` or of
    a new simulator whose tasks take `delay` seconds."""
    started: list[ServerThread] = []

    def start(store_url: str, *, delay: float = 3600.0, sim: ServerThread | None = None,
              tracker: dict[str, Any] | None = None) -> Gateway:
        # Signed URLs always near their expiry, and no poll window: every poll asks the
        # upstream (this clock does not move), so each one meets the 404s the tests arrange.
        sim = sim or start_simulator(delay=delay, url_ttl=300)
        clock = FakeClock()
        extra = {**WITH_ADMIN, "tracker": {"poll_window": 0, **(tracker or {})}}
        config = gateway_config(sim.url + "/api/v3", store_url=store_url, extra=extra,
                                env={"ADMIN_KEY": CANARY_ADMIN_KEY})
        server = ServerThread(RecordingApp(create_app(config, clock=clock), leak_trap)).start()
        started.append(server)
        return Gateway(server, sim, clock)

    yield start
    for server in started:
        server.stop()


def not_found(response: httpx.Response) -> str:
    assert response.status_code == 404, response.text
    return str(response.json()["error"]["code"])


def created_id(response: httpx.Response) -> str:
    assert response.status_code == 200, response.text
    return str(response.json()["id"])


def test_one_404_does_not_hide_the_task_on_any_surface(
    clocked_gateway: GatewayOnClock, backend_url: str
) -> None:
    gw = clocked_gateway(backend_url)
    task_id = created_id(gw.create())

    gw.lose(task_id, 1)
    assert not_found(gw.get(task_id)) == "NotFound.TaskID"  # this request: the upstream's 404
    assert gw.listed() == {task_id: "queued"}
    assert gw.get(task_id).json()["status"] == "queued"  # the glitch is over

    # The same for the OpenAI surface's retrieve and content download.
    gw.lose(task_id, 1)
    assert gw.request("GET", f"/v1/videos/{task_id}").status_code == 404
    assert gw.request("GET", f"/v1/videos/{task_id}").json()["status"] == "queued"
    gw.lose(task_id, 1)
    assert gw.request("GET", f"/v1/videos/{task_id}/content").status_code == 404
    assert gw.listed() == {task_id: "queued"}

    # An answer in between forgets a 404: the next one, 40 s later, is a first one again.
    gw.lose(task_id, 1)
    assert gw.get(task_id).status_code == 404
    assert gw.get(task_id).status_code == 200
    gw.clock.advance(40)
    gw.lose(task_id, 1)
    assert gw.get(task_id).status_code == 404
    assert gw.listed() == {task_id: "queued"}
    assert gw.get(task_id).json()["id"] == task_id


def test_the_tracker_polling_during_a_glitch_does_not_hide_the_task(
    start_simulator: SimulatorFactory, start_gateway: GatewayFactory, backend_url: str
) -> None:
    sim = start_simulator(delay=60)
    tracker = {"enabled": True, "first_poll": 0.0, "interval": 0.1, "tick": 0.05,
               "lease": 5.0, "per_key_rate": 50.0}
    gateway = start_gateway(sim.url + "/api/v3", store_url=backend_url,
                            extra={"tracker": tracker})
    created = httpx.post(gateway.url + NATIVE, headers=ALICE, json={
        "model": MODEL, "content": [{"type": "text", "text": "x"}]})
    task_id = created_id(created)
    lost = httpx.post(f"{sim.url}/_sim/tasks/{task_id}/lose", json={"requests": 3})
    assert lost.status_code == 200
    deadline = time.monotonic() + 10
    while task_id in sim.app.state.simulator.lost:  # only the tracker asks the upstream
        listed = httpx.get(gateway.url + NATIVE, headers=ALICE).json()
        assert [t["id"] for t in listed["items"]] == [task_id]  # the owner still sees it
        assert time.monotonic() < deadline, "the tracker stopped polling"
        time.sleep(0.02)

    got = httpx.get(f"{gateway.url}{NATIVE}/{task_id}", headers=ALICE)
    assert got.status_code == 200, got.text
    listed = httpx.get(gateway.url + NATIVE, headers=ALICE).json()
    assert [t["id"] for t in listed["items"]] == [task_id]
    gets = sum(r.method == "GET" and r.path.endswith(task_id)
               for r in sim.app.state.simulator.requests)
    assert gets >= 4  # three 404s to the tracker, then at least the owner's GET


def test_a_second_404_30_seconds_after_the_first_hides_the_task(
    clocked_gateway: GatewayOnClock, backend_url: str
) -> None:
    gw = clocked_gateway(backend_url)
    task_id = created_id(gw.create())
    other = created_id(gw.create())
    gw.lose(task_id, 4)

    assert not_found(gw.get(task_id)) == "NotFound.TaskID"
    gw.clock.advance(29)
    assert gw.get(task_id).status_code == 404  # too soon after the first to confirm
    assert gw.listed() == {task_id: "queued", other: "queued"}
    gw.clock.advance(1)
    assert gw.get(task_id).status_code == 404  # 30 s after the first one seen: confirmed

    assert gw.listed() == {other: "queued"}
    assert gw.shown_as_videos() == {other}
    calls = gw.upstream_calls(task_id)
    assert gw.get(task_id).status_code == 404  # answered by the gateway, which forgot it
    assert gw.request("GET", f"/v1/videos/{task_id}").status_code == 404
    assert gw.upstream_calls(task_id) == calls
    assert gw.sim.app.state.simulator.lost == {task_id: 1}  # the last was never asked for


def test_a_404_to_a_delete_follows_the_same_rule(
    clocked_gateway: GatewayOnClock, backend_url: str
) -> None:
    gw = clocked_gateway(backend_url)
    task_id = created_id(gw.create())
    gw.lose(task_id, 2)

    assert not_found(gw.request("DELETE", f"{NATIVE}/{task_id}")) == "NotFound.TaskID"
    assert gw.listed() == {task_id: "queued"}
    gw.clock.advance(30)
    assert gw.request("DELETE", f"/v1/videos/{task_id}").status_code == 404
    assert gw.listed() == {}
    assert gw.get(task_id).status_code == 404


def test_a_task_past_arks_retention_is_gone_at_the_first_404(
    clocked_gateway: GatewayOnClock, backend_url: str
) -> None:
    gw = clocked_gateway(backend_url)
    key = gw.new_key("olga", max_in_flight=1)
    old = created_id(gw.create(key))
    gw.clock.advance(7 * DAY + 1)
    young = created_id(gw.create())
    assert gw.create(key).status_code == 429  # the old task still holds the only slot
    assert gw.shown_as_videos(key) == {old}

    gw.lose(young, 1)
    assert gw.get(young).status_code == 404
    assert gw.shown_as_videos() == {young}  # a young task needs its 404 confirmed
    gw.lose(old, 1)
    assert not_found(gw.get(old, key)) == "NotFound.TaskID"
    assert gw.shown_as_videos(key) == set()  # Ark forgets tasks after 7 days: no doubt left
    calls = gw.upstream_calls(old)
    assert gw.get(old, key).status_code == 404
    assert gw.upstream_calls(old) == calls
    assert created_id(gw.create(key))  # its slot is free again


def test_a_finished_task_is_never_hidden_by_404s(
    clocked_gateway: GatewayOnClock, backend_url: str
) -> None:
    gw = clocked_gateway(backend_url, delay=0.2)
    task_id = created_id(gw.create())
    deadline = time.monotonic() + 10
    while gw.get(task_id).json()["status"] != "succeeded":  # the gateway records the end
        assert time.monotonic() < deadline
        time.sleep(0.05)

    gw.lose(task_id, 3)
    assert not_found(gw.get(task_id)) == "NotFound.TaskID"
    assert gw.listed() == {task_id: "succeeded"}
    gw.clock.advance(31)
    assert gw.request("GET", f"/v1/videos/{task_id}").status_code == 404
    gw.clock.advance(8 * DAY)  # past Ark's retention: a finished task stays all the same
    assert gw.get(task_id).status_code == 404
    assert gw.shown_as_videos() == {task_id}
    assert gw.request("GET", f"/v1/videos/{task_id}").json()["status"] == "completed"
    got = gw.get(task_id)
    assert got.status_code == 200 and got.json()["status"] == "succeeded"

    # The owner's DELETE, answered 404: they asked for it to go, and the upstream has no copy.
    gw.lose(task_id, 1)
    assert not_found(gw.request("DELETE", f"{NATIVE}/{task_id}")) == "NotFound.TaskID"
    assert gw.shown_as_videos() == set()
    assert gw.get(task_id).status_code == 404


def test_a_task_confirmed_gone_frees_its_in_flight_slot(
    clocked_gateway: GatewayOnClock, backend_url: str
) -> None:
    gw = clocked_gateway(backend_url)
    key = gw.new_key("pia", max_in_flight=1)
    task_id = created_id(gw.create(key))
    assert gw.create(key).status_code == 429

    gw.lose(task_id, 2)
    assert gw.get(task_id, key).status_code == 404
    assert gw.create(key).status_code == 429  # one 404 proves nothing: the slot stays held
    gw.clock.advance(30)
    assert gw.get(task_id, key).status_code == 404

    second = created_id(gw.create(key))
    assert gw.shown_as_videos(key) == {second}
    # Ark's bill for the lost task is unknown: its estimate stays counted against the budget.
    assert gw.usage("pia") == [{"key": "pia", "tasks": 2, "tokens": 2 * ESTIMATE_720P_5S,
                                "cost": None}]


def test_the_tracker_confirms_a_lost_task_then_stops_polling_it(
    clocked_gateway: GatewayOnClock, backend_url: str
) -> None:
    # The tracker polls when the gateway's clock says a task is due; it ticks in real time.
    tracker = {"enabled": True, "first_poll": 10.0, "interval": 10.0, "tick": 0.02,
               "lease": 5.0, "per_key_rate": 50.0}
    gw = clocked_gateway(backend_url, tracker=tracker)
    lost = gw.sim.app.state.simulator.lost
    key = gw.new_key("quinn", max_in_flight=1)
    task_id = created_id(gw.create(key))
    gw.lose(task_id, 2)

    gw.clock.advance(12)  # the first poll is due
    wait_until(lambda: lost == {task_id: 1})
    time.sleep(0.2)  # let the tracker record the answer
    assert gw.shown_as_videos(key) == {task_id}
    assert gw.create(key).status_code == 429
    gw.clock.advance(30)  # the next poll is due, 30 s after the first 404
    wait_until(lambda: not lost)
    wait_until(lambda: gw.shown_as_videos(key) == set())
    assert created_id(gw.create(key))  # the lost task's slot is free

    calls = gw.upstream_calls(task_id)
    for _ in range(5):
        gw.clock.advance(15)
        time.sleep(0.1)
    assert gw.upstream_calls(task_id) == calls  # never polled again


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_a_version_2_sqlite_store_is_migrated_with_nothing_lost(
    start_simulator: SimulatorFactory, clocked_gateway: GatewayOnClock, tmp_path: Path
) -> None:
    """A store written before gone_suspected_at existed keeps every row and value, and its
    tasks follow the confirmation rule."""
    sim = start_simulator(delay=3600)
    upstream = httpx.post(sim.url + NATIVE, headers={
        "Authorization": f"Bearer {FAKE_UPSTREAM_KEY}"}, json={
        "model": MODEL, "content": [{"type": "text", "text": "x"}]})
    live = created_id(upstream)  # a task the gateway created before its upgrade
    path, now = tmp_path / "v2.db", int(time.time())
    with sqlite3.connect(path) as db:
        db.executescript(V2_SCHEMA)
        db.executemany(
            "INSERT INTO tasks (task_id, owner, upstream, upstream_key, model, upstream_model, "
            "surface, created_at, updated_at, status, service_tier, task_json, deleted, "
            "next_poll_at) VALUES (?, 'alice', 'ark', 'main', ?, ?, 'native', ?, ?, ?, "
            "'default', ?, ?, 1.5)",
            [(live, MODEL, MODEL, now, now, "queued", None, 0),
             ("cgt-done", MODEL, MODEL, now - 60, now - 30, "succeeded", b'{"id": "cgt-done"}',
              0),
             ("cgt-gone", MODEL, MODEL, now - 90, now - 90, "succeeded", None, 1)])
        db.execute("INSERT INTO reservations VALUES (?, 'alice', ?, '2026-11-24', '2026-11', "
                   "108900, 1)", (live, MODEL))
        db.execute("INSERT INTO client_keys VALUES ('carol', 'ab', 'sgw-ab', '[\"*\"]', NULL, "
                   "NULL, NULL, NULL, NULL, 0, 0, 1, 1)")
        db.execute("INSERT INTO request_counts VALUES ('alice', 7, 2)")
    before = dump(path)

    # Opening the store migrates it; no tracker, which would take a lease on the due task
    # while the rows are compared.
    gw = clocked_gateway(f"sqlite:///{path}", sim=sim, tracker={"enabled": False})
    opened = dump(path)
    for table in ("tasks", "reservations", "client_keys", "request_counts"):
        kept = [row[:len(before[table][0])] for row in opened[table]]
        assert kept == before[table], table

    gw.lose(live, 1)
    assert not_found(gw.get(live)) == "NotFound.TaskID"
    assert gw.listed() == {live: "queued", "cgt-done": "succeeded"}
    assert gw.get(live).json()["status"] == "queued"
    assert dump(path)["meta"] == [("schema_version", "6")]


def dump(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    with sqlite3.connect(path) as db:
        return {table: db.execute(f"SELECT * FROM {table}").fetchall()  # noqa: S608
                for table in ("meta", "tasks", "reservations", "client_keys", "request_counts")}


# The SQLite schema as version 2 shipped it (commit d955028).
V2_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT INTO meta VALUES ('schema_version', '2');
CREATE TABLE tasks (
    task_id TEXT PRIMARY KEY, owner TEXT NOT NULL, upstream TEXT NOT NULL,
    upstream_key TEXT NOT NULL, model TEXT NOT NULL, upstream_model TEXT NOT NULL,
    surface TEXT NOT NULL, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL,
    status TEXT NOT NULL, prompt TEXT, requested_size TEXT, requested_seconds TEXT,
    service_tier TEXT NOT NULL, usage_tokens INTEGER, task_json BLOB,
    deleted INTEGER NOT NULL DEFAULT 0, next_poll_at REAL NOT NULL DEFAULT 0,
    lease_holder TEXT, lease_until REAL NOT NULL DEFAULT 0
);
CREATE INDEX tasks_by_owner ON tasks (owner, deleted, created_at);
CREATE INDEX tasks_due ON tasks (next_poll_at)
    WHERE deleted = 0 AND status IN ('queued', 'running');
CREATE TABLE client_keys (
    name TEXT PRIMARY KEY, digest TEXT NOT NULL UNIQUE, prefix TEXT NOT NULL,
    models TEXT NOT NULL, rpm INTEGER, max_in_flight INTEGER, daily_tokens INTEGER,
    monthly_tokens INTEGER, expires_at INTEGER, disabled INTEGER NOT NULL,
    revoked INTEGER NOT NULL, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL
);
CREATE TABLE request_counts (
    key TEXT NOT NULL, window INTEGER NOT NULL, n INTEGER NOT NULL, PRIMARY KEY (key, window)
);
CREATE TABLE reservations (
    ref TEXT PRIMARY KEY, key TEXT NOT NULL, model TEXT NOT NULL, day TEXT NOT NULL,
    month TEXT NOT NULL, tokens INTEGER NOT NULL, open INTEGER NOT NULL
);
CREATE INDEX reservations_by_key ON reservations (key, open, day);
"""
