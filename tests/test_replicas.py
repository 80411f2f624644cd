"""Two `gateway serve` replicas sharing one Redis store and one upstream (the simulator)."""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import yaml
from openai import OpenAI
from volcenginesdkarkruntime import Ark
from volcenginesdkarkruntime._exceptions import ArkNotFoundError

from tests.conftest import SimulatorFactory
from tests.leaks import CANARY_ADMIN_KEY
from tests.servers import (
    FAKE_ALICE_KEY,
    FAKE_BOB_KEY,
    FAKE_UPSTREAM_KEY,
    CliProcess,
    ServerThread,
    free_port,
)
from tests.test_redis_store import REDIS_HOST, REDIS_PORT, redis_url, unique_prefix

pytestmark = pytest.mark.e2e

NATIVE = "/api/v3/contents/generations/tasks"
MODEL = "doubao-seedance-2-0-260128"
ALICE = {"Authorization": f"Bearer {FAKE_ALICE_KEY}"}
BOB = {"Authorization": f"Bearer {FAKE_BOB_KEY}"}
ADMIN = {"Authorization": f"Bearer {CANARY_ADMIN_KEY}"}
ENV = {"UPSTREAM_KEY": FAKE_UPSTREAM_KEY, "ALICE_KEY": FAKE_ALICE_KEY, "BOB_KEY": FAKE_BOB_KEY,
       "ADMIN_KEY": CANARY_ADMIN_KEY}
WITH_ADMIN = {"admin": {"keys": [{"name": "ops", "secret": "${ADMIN_KEY}"}]}}


class Replicas:
    def __init__(self, simulator: ServerThread, a: CliProcess, b: CliProcess) -> None:
        self.simulator, self.a, self.b = simulator, a, b

    def task_delay(self, seconds: float) -> None:
        """How long tasks created from now on take (a third queued, then running)."""
        self.faults(delay=seconds)

    def faults(self, **knobs: float) -> None:
        response = httpx.post(self.simulator.url + "/_sim/faults", json=knobs)
        assert response.status_code == 200, response.text


ReplicaFactory = Callable[..., Replicas]


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    yield from unique_prefix()


@pytest.fixture
def start_replicas(tmp_path: Path, start_simulator: SimulatorFactory, redis_prefix: str
                   ) -> Iterator[ReplicaFactory]:
    """Starts the simulator and two replicas A and B on one Redis prefix (once per test)."""
    started: list[CliProcess] = []

    def start(*, delay: float = 1.0, extra: Mapping[str, Any] | None = None) -> Replicas:
        simulator = start_simulator(delay=delay)
        config = {
            "upstreams": [{"name": "ark", "base_url": simulator.url + "/api/v3",
                           "keys": [{"name": "main", "secret": "${UPSTREAM_KEY}"}]}],
            "models": {"aliases": {"sora-2": "doubao-seedance-2-0-fast-260128"}},
            "client_keys": [{"name": "alice", "secret": "${ALICE_KEY}"},
                            {"name": "bob", "secret": "${BOB_KEY}"}],
            "store": {"url": redis_url(redis_prefix)},
            "results": {"store": f"file://{tmp_path}/results"},  # shared by both replicas
            "openai": {"poll_after_ms": 100},
            "tracker": {"enabled": False},  # only the tracker tests turn it on
            **(extra or {}),
        }
        path = tmp_path / "config.yaml"
        path.write_text(yaml.safe_dump(config))
        for name in ("a", "b"):
            port = free_port()
            started.append(CliProcess(["serve", "--config", str(path), "--port", str(port)],
                                      port=port, log=tmp_path / f"{name}.log", env=ENV))
        for replica in started:
            replica.wait_ready("/readyz")  # the store answers
        return Replicas(simulator, *started)

    try:
        yield start
    finally:
        for replica in started:
            replica.stop()


@pytest.fixture
def replicas(start_replicas: ReplicaFactory) -> Replicas:
    return start_replicas()


def get(replica: CliProcess, path: str, headers: dict[str, str] = ALICE) -> httpx.Response:
    return httpx.get(replica.url + path, headers=headers, timeout=10)


def ok(response: httpx.Response) -> Any:
    assert response.status_code == 200, response.text
    return response.json()


def wait_until(replica: CliProcess, path: str, status: str, timeout: float = 15) -> Any:
    """Polls `path` on one replica (each poll writes the upstream's status to the store)."""
    deadline = time.monotonic() + timeout
    while (body := ok(get(replica, path)))["status"] != status:
        assert time.monotonic() < deadline, body["status"]
        time.sleep(0.1)
    return body


def native_statuses(replica: CliProcess, headers: dict[str, str] = ALICE, *,
                    query: str = "") -> dict[str, str]:
    """What the store says, read through one replica's list (a list never asks upstream)."""
    listed = ok(get(replica, NATIVE + "?page_size=50" + query, headers))
    assert listed["total"] == len(listed["items"])
    return {item["id"]: item["status"] for item in listed["items"]}


def assert_bob_sees_nothing(replicas: Replicas, native_id: str, video_id: str) -> None:
    for replica in (replicas.a, replicas.b):
        assert get(replica, f"{NATIVE}/{native_id}", BOB).status_code == 404
        assert get(replica, f"/v1/videos/{video_id}", BOB).status_code == 404
        assert native_statuses(replica, BOB) == {}
        assert ok(get(replica, "/v1/videos", BOB))["data"] == []


def test_a_task_created_on_one_replica_is_served_by_the_other(replicas: Replicas) -> None:
    a, b = replicas.a, replicas.b
    native_id = ok(httpx.post(a.url + NATIVE, headers=ALICE, timeout=10, json={
        "model": "doubao-seedance-2-0-260128",
        "content": [{"type": "text", "text": "a lighthouse"}]}))["id"]
    video = ok(httpx.post(a.url + "/v1/videos", headers=ALICE, timeout=10,
                          json={"prompt": "a harbour", "model": "sora-2"}))
    video_id = video["id"]
    # B knows both before anyone polled them.
    assert native_statuses(b) == {native_id: "queued", video_id: "queued"}
    assert [v["id"] for v in ok(get(b, "/v1/videos"))["data"]] == [video_id, native_id]
    assert ok(get(b, f"{NATIVE}/{native_id}"))["id"] == native_id
    assert ok(get(b, f"/v1/videos/{video_id}"))["id"] == video_id
    assert_bob_sees_nothing(replicas, native_id, video_id)

    # Only A polls; B's lists (which read the store only) follow.
    wait_until(a, f"{NATIVE}/{native_id}", "succeeded")
    wait_until(a, f"/v1/videos/{video_id}", "completed")
    assert native_statuses(b) == {native_id: "succeeded", video_id: "succeeded"}
    listed = ok(get(b, "/v1/videos"))["data"]
    assert {v["id"]: v["status"] for v in listed} == {video_id: "completed",
                                                      native_id: "completed"}
    assert ok(get(b, f"{NATIVE}/{native_id}"))["status"] == "succeeded"
    assert ok(get(b, f"/v1/videos/{video_id}"))["status"] == "completed"
    assert_bob_sees_nothing(replicas, native_id, video_id)

    # Deleting finished tasks on B removes them for A too.
    ok(httpx.delete(f"{b.url}{NATIVE}/{native_id}", headers=ALICE, timeout=10))
    assert ok(httpx.delete(f"{b.url}/v1/videos/{video_id}", headers=ALICE,
                           timeout=10))["deleted"] is True
    assert get(a, f"{NATIVE}/{native_id}").status_code == 404
    assert get(a, f"/v1/videos/{video_id}").status_code == 404
    assert native_statuses(a) == {} and ok(get(a, "/v1/videos"))["data"] == []


def test_a_task_created_on_one_replica_is_cancelled_on_the_other(replicas: Replicas) -> None:
    a, b = replicas.a, replicas.b
    replicas.task_delay(60)  # queued for 20 s: cancellable
    native_id = ok(httpx.post(a.url + NATIVE, headers=ALICE, timeout=10, json={
        "model": "doubao-seedance-2-0-260128", "content": [{"type": "text", "text": "x"}]}))["id"]
    video_id = ok(httpx.post(a.url + "/v1/videos", headers=ALICE, timeout=10,
                             json={"prompt": "y", "model": "sora-2"}))["id"]
    for replica in (a, b):  # Bob can't cancel Alice's tasks through either replica
        assert httpx.delete(f"{replica.url}{NATIVE}/{native_id}", headers=BOB,
                            timeout=10).status_code == 404
        assert httpx.delete(f"{replica.url}/v1/videos/{video_id}", headers=BOB,
                            timeout=10).status_code == 404

    ok(httpx.delete(f"{b.url}{NATIVE}/{native_id}", headers=ALICE, timeout=10))
    assert ok(httpx.delete(f"{b.url}/v1/videos/{video_id}", headers=ALICE,
                           timeout=10))["deleted"] is True
    assert native_statuses(a) == {native_id: "cancelled", video_id: "cancelled"}
    assert ok(get(a, f"{NATIVE}/{native_id}"))["status"] == "cancelled"
    assert_bob_sees_nothing(replicas, native_id, video_id)


def native_create(replica: CliProcess, headers: dict[str, str], **body: Any) -> httpx.Response:
    return httpx.post(replica.url + NATIVE, headers=headers, timeout=10, json={
        "model": MODEL, "content": [{"type": "text", "text": "x"}], **body})


def test_limits_hold_across_replicas_under_a_race(start_replicas: ReplicaFactory) -> None:
    replicas = start_replicas(delay=60, extra=WITH_ADMIN)  # tasks stay queued: slots stay held
    a, b = replicas.a, replicas.b
    created = httpx.post(a.url + "/admin/keys", headers=ADMIN, timeout=10,
                         json={"name": "kim", "max_in_flight": 3})
    assert created.status_code == 201, created.text
    kim = {"Authorization": f"Bearer {created.json()['key']}"}
    start = threading.Barrier(12)

    def create(i: int) -> httpx.Response:
        start.wait()
        return native_create((a, b)[i % 2], kim)

    with ThreadPoolExecutor(12) as pool:  # 6 creates on each replica, all at once
        answers = list(pool.map(create, range(12)))
    codes = sorted(r.status_code for r in answers)
    assert codes == [200] * 3 + [429] * 9, [r.text for r in answers]
    for refused in (r for r in answers if r.status_code == 429):
        error = refused.json()["error"]
        assert error["code"] == "max_in_flight_exceeded", error
        assert "3 tasks queued or running (limit 3)" in error["message"]
    admitted = {r.json()["id"] for r in answers if r.status_code == 200}
    assert set(native_statuses(b, kim)) == admitted and set(native_statuses(a, kim)) == admitted

    # Cancelling one on B frees its slot for a create on A, and only one.
    ok(httpx.delete(f"{b.url}{NATIVE}/{sorted(admitted)[0]}", headers=kim, timeout=10))
    assert native_create(a, kim).status_code == 200
    assert native_create(b, kim).status_code == 429
    usage = ok(httpx.get(b.url + "/admin/usage", headers=ADMIN, params={"key": "kim"},
                         timeout=10))
    assert usage["totals"][0]["tasks"] == 4  # refused creates left nothing behind


# No poll window: every tracker poll is an upstream GET, holding its lease for LATENCY (a poll
# the record answers would take and free the lease in a moment, and leave nothing to catch).
TRACKER = {"enabled": True, "first_poll": 0, "interval": 0.3, "tick": 0.1, "lease": 2,
           "per_key_rate": 50, "poll_window": 0}
LATENCY = 0.3  # every upstream request takes this long: a poll holds its lease that long


def test_a_dead_replicas_leases_run_out_and_the_other_finishes_its_tasks(
    start_replicas: ReplicaFactory, redis_prefix: str
) -> None:
    replicas = start_replicas(delay=5.0, extra={"tracker": TRACKER, **WITH_ADMIN})
    a, b = replicas.a, replicas.b
    replicas.faults(latency=LATENCY)  # before the creates: the trackers poll them at once
    ids = [ok(native_create(b, ALICE, resolution="480p", ratio="16:9", duration=4))["id"]
           for _ in range(2)]
    store = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, decode_responses=True)
    a_holder = f"{socket.gethostname()}-{a.proc.pid}-"
    try:
        time.sleep(0.8)  # both trackers poll for a while
        # Freeze B, so A soon holds a lease; kill A while it is inside that poll (its lease
        # was taken a moment ago and the upstream answer takes LATENCY).
        os.kill(b.proc.pid, signal.SIGSTOP)
        try:
            held = wait_for_lease(store, redis_prefix, ids, a_holder)
            os.kill(a.proc.pid, signal.SIGKILL)
            a.proc.wait(timeout=5)
            holder, until = store.hmget(f"{redis_prefix}t:{held}", "lease_holder",
                                        "lease_until")
            assert holder.startswith(a_holder) and float(until) > time.time()  # died holding
        finally:
            os.kill(b.proc.pid, signal.SIGCONT)
    finally:
        store.close()

    # Nobody polls through the API: B's tracker takes the tasks over once A's lease ran out.
    deadline = time.monotonic() + 10
    while set(native_statuses(b, query="&filter.status=succeeded")) != set(ids):
        assert time.monotonic() < deadline, native_statuses(b)
        time.sleep(0.2)
    exact = 864 * 496 * (24 * 4 + 1) // 1024  # 480p 16:9, 4 s
    usage = ok(httpx.get(b.url + "/admin/usage", headers=ADMIN, params={"key": "alice"},
                         timeout=10))
    assert usage["totals"] == [{"key": "alice", "tasks": 2, "tokens": 2 * exact, "cost": None}]
    metrics = httpx.get(b.url + "/metrics", timeout=10).text
    assert 'tasks_finished_total{model="doubao-seedance-2-0-260128",status="succeeded"} 2.0' \
        in metrics  # B saw both end (A never did)
    # Never two polls of one task at once: each poll holds the lease until its answer came.
    polls: dict[str, list[float]] = {task_id: [] for task_id in ids}
    for request in replicas.simulator.app.state.simulator.requests:
        task_id = request.path.rsplit("/", 1)[-1]
        if request.method == "GET" and task_id in polls:
            polls[task_id].append(request.received_at)
    for task_id, times in polls.items():
        gaps = [later - earlier for earlier, later in zip(times, times[1:], strict=False)]
        assert len(times) >= 3 and min(gaps) >= LATENCY - 0.01, (task_id, gaps)
        if task_id == held:  # B waited for the dead holder's lease to run out
            assert max(gaps) >= TRACKER["lease"] - 0.1, gaps


def wait_for_lease(store: redis.Redis, prefix: str, task_ids: list[str], holder: str) -> str:
    """The task `holder` took a lease on at most 0.1 s ago (so it is still polling it)."""
    deadline = time.monotonic() + 6  # B may have held a lease when frozen: it runs out first
    while time.monotonic() < deadline:
        for task_id in task_ids:
            found, until = store.hmget(f"{prefix}t:{task_id}", "lease_holder", "lease_until")
            taken_at = float(until or 0) - TRACKER["lease"]
            if found and found.startswith(holder) and time.time() - taken_at < 0.1:
                return task_id
        time.sleep(0.002)
    raise AssertionError("replica A never took a lease")


@pytest.mark.filterwarnings("ignore:The Sora API:DeprecationWarning")
def test_the_sdks_work_against_redis_backed_replicas(replicas: Replicas) -> None:
    """One Ark SDK cycle and one OpenAI create_and_poll, each spread over both replicas."""
    a, b = replicas.a, replicas.b
    on_a, on_b = (Ark(base_url=r.url + "/api/v3", api_key=FAKE_ALICE_KEY, max_retries=0,
                      timeout=10) for r in (a, b))
    created = on_a.content_generation.tasks.create(
        model=MODEL, content=[{"type": "text", "text": "a red fox --dur 5"}], ratio="16:9",
        resolution="720p", duration=5)
    deadline = time.monotonic() + 10
    while (task := on_b.content_generation.tasks.get(task_id=created.id)).status != "succeeded":
        assert time.monotonic() < deadline, task.status
        time.sleep(0.1)
    assert task.usage.total_tokens == 108900
    listed = on_a.content_generation.tasks.list(page_size=10)
    assert listed.total == 1 and listed.items[0].status == "succeeded"
    on_b.content_generation.tasks.delete(task_id=created.id)
    with pytest.raises(ArkNotFoundError):
        on_a.content_generation.tasks.get(task_id=created.id)

    sdk = OpenAI(base_url=b.url + "/v1", api_key=FAKE_ALICE_KEY, max_retries=0, timeout=20)
    video = sdk.videos.create_and_poll(model="sora-2", prompt="a paper boat", seconds="4")
    assert video.status == "completed", video.error
    other = OpenAI(base_url=a.url + "/v1", api_key=FAKE_ALICE_KEY, max_retries=0, timeout=20)
    assert [v.id for v in other.videos.list().data] == [video.id]
    assert other.videos.delete(video.id).deleted is True
    assert sdk.videos.list().data == []
