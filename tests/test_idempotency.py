"""Idempotent creates: one upstream task per caller and Idempotency-Key, whatever the retries.

End to end on both store backends: a real gateway in front of the simulator, whose request log
(`/_sim/requests`) counts the creates that reached the upstream. The simulator's
`lose_create_answers` knob makes a create whose task exists but whose answer never comes (the
gateway's read timeout fires), as a timed-out or reset create would be.
"""

from __future__ import annotations

import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families
from volcenginesdkarkruntime import Ark

from tests.conftest import GatewayFactory, SimulatorFactory
from tests.leaks import CANARY_ADMIN_KEY
from tests.servers import FAKE_ALICE_KEY, FAKE_BOB_KEY, ServerThread, free_port

pytestmark = pytest.mark.filterwarnings("ignore:The Sora API:DeprecationWarning")

NATIVE = "/api/v3/contents/generations/tasks"
MODEL = "doubao-seedance-2-0-fast-260128"
NATIVE_BODY: dict[str, Any] = {"model": MODEL, "content": [{"type": "text", "text": "a boat"}],
                               "resolution": "720p", "ratio": "16:9", "duration": 5}
OPENAI_BODY: dict[str, Any] = {"model": MODEL, "prompt": "a boat", "size": "1280x720",
                               "seconds": "5"}
ADMIN = {"Authorization": f"Bearer {CANARY_ADMIN_KEY}"}
WITH_ADMIN: dict[str, Any] = {"extra": {"admin": {"keys": [{"name": "ops",
                                                             "secret": "${ADMIN_KEY}"}]}},
                              "env": {"ADMIN_KEY": CANARY_ADMIN_KEY}}
LOSSY = {"read": 1.0}  # a lost create answer costs the gateway one second


def new_idempotency_key() -> str:
    return f"idem-{uuid.uuid4()}"


def create(gateway: ServerThread, surface: str, idem: str | None, *, key: str = FAKE_ALICE_KEY,
           body: dict[str, Any] | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"}
    if idem is not None:
        headers["Idempotency-Key"] = idem
    if surface == "native":
        return httpx.post(gateway.url + NATIVE, headers=headers, json=body or NATIVE_BODY,
                          timeout=30)
    return httpx.post(gateway.url + "/v1/videos", headers=headers, json=body or OPENAI_BODY,
                      timeout=30)


def upstream_creates(sim: ServerThread) -> int:
    log = httpx.get(sim.url + "/_sim/requests").json()
    return sum(r["method"] == "POST" and r["path"] == NATIVE for r in log)


def upstream_task_ids(sim: ServerThread) -> list[str]:
    return list(sim.app.state.simulator.tasks)


def faults(sim: ServerThread, **knobs: Any) -> None:
    assert httpx.post(sim.url + "/_sim/faults", json=knobs).status_code == 200


def owned_ids(gateway: ServerThread, key: str = FAKE_ALICE_KEY) -> list[str]:
    listed = httpx.get(gateway.url + NATIVE, params={"page_size": 100},
                       headers={"Authorization": f"Bearer {key}"})
    assert listed.status_code == 200, listed.text
    return [item["id"] for item in listed.json()["items"]]


def assert_replayed(gateway: ServerThread, idem: str, first: httpx.Response, *,
                    key: str = FAKE_ALICE_KEY) -> None:
    """The key is now bound to `first`'s task: sending the create again answers it."""
    again = create(gateway, "native", idem, key=key)
    assert again.status_code == 200, again.text
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]


def counted(gateway: ServerThread, name: str, **labels: str) -> float:
    """The sum of a /metrics counter's samples whose labels include `labels`."""
    wanted = set(labels.items())
    text = httpx.get(gateway.url + "/metrics").text
    return sum(sample.value
               for family in text_string_to_metric_families(text) for sample in family.samples
               if sample.name == name and wanted <= set(sample.labels.items()))


def wait_finished(gateway: ServerThread, task_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while True:
        got = httpx.get(f"{gateway.url}{NATIVE}/{task_id}",
                        headers={"Authorization": f"Bearer {FAKE_ALICE_KEY}"})
        assert got.status_code == 200, got.text
        if got.json()["status"] == "succeeded":
            return dict(got.json())
        assert time.monotonic() < deadline, got.text
        time.sleep(0.1)


@pytest.mark.parametrize("surface", ["native", "openai"])
def test_twenty_concurrent_duplicates_make_one_upstream_task(
        start_simulator: SimulatorFactory, start_gateway: GatewayFactory, backend_url: str,
        surface: str) -> None:
    sim = start_simulator(latency=0.3)  # the first create is still upstream as the rest land
    gateway = start_gateway(sim.url + "/api/v3", store_url=backend_url)
    idem = new_idempotency_key()
    start = threading.Barrier(20)

    def send(_: int) -> httpx.Response:
        start.wait()
        return create(gateway, surface, idem)

    with ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(send, range(20)))

    assert [a.status_code for a in answers] == [200] * 20, [a.text for a in answers]
    assert upstream_creates(sim) == 1
    ids = {a.json()["id"] for a in answers}
    assert ids == set(upstream_task_ids(sim))
    assert sum(a.headers.get("idempotent-replayed") == "true" for a in answers) == 19
    assert owned_ids(gateway) == list(ids)
    assert counted(gateway, "seedance_gateway_idempotent_replays_total", surface=surface,
                   kind="replayed") == 19
    assert counted(gateway, "seedance_gateway_tasks_created_total") == 1


@pytest.mark.parametrize("surface", ["native", "openai"])
def test_a_replay_after_the_task_finished_answers_it_again(
        simulator: ServerThread, start_gateway: GatewayFactory, backend_url: str,
        surface: str) -> None:
    gateway = start_gateway(simulator.url + "/api/v3", store_url=backend_url)
    idem = new_idempotency_key()
    first = create(gateway, surface, idem)
    assert first.status_code == 200, first.text
    assert "idempotent-replayed" not in first.headers
    task_id = first.json()["id"]
    wait_finished(gateway, task_id)

    again = create(gateway, surface, idem)
    assert again.status_code == 200, again.text
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json()["id"] == task_id
    if surface == "openai":  # the Video as it is now, not as it was created
        assert again.json()["status"] == "completed"
        assert again.json()["object"] == "video"
    else:
        assert again.json() == {"id": task_id}
    assert upstream_creates(simulator) == 1


def test_a_replay_takes_no_in_flight_slot_or_budget(
        start_simulator: SimulatorFactory, start_gateway: GatewayFactory,
        backend_url: str) -> None:
    sim = start_simulator(delay=30)  # the task stays in flight
    gateway = start_gateway(sim.url + "/api/v3", store_url=backend_url, **WITH_ADMIN)
    made = httpx.post(f"{gateway.url}/admin/keys", headers=ADMIN,
                      json={"name": "carol", "max_in_flight": 1})
    assert made.status_code == 201, made.text
    carol = made.json()["key"]
    idem = new_idempotency_key()
    first = create(gateway, "native", idem, key=carol)
    assert first.status_code == 200, first.text
    again = create(gateway, "native", idem, key=carol)
    assert again.status_code == 200, again.text
    assert again.json() == first.json()
    refused = create(gateway, "native", new_idempotency_key(), key=carol)
    assert refused.status_code == 429  # the slot is the first task's, once
    usage = httpx.get(f"{gateway.url}/admin/usage", headers=ADMIN, params={"key": "carol"})
    assert usage.status_code == 200, usage.text
    assert [row["tasks"] for row in usage.json()["totals"]] == [1]


def test_the_same_key_with_another_request_is_a_409_on_both_surfaces(
        simulator: ServerThread, start_gateway: GatewayFactory, backend_url: str) -> None:
    gateway = start_gateway(simulator.url + "/api/v3", store_url=backend_url)
    native, videos = new_idempotency_key(), new_idempotency_key()
    assert create(gateway, "native", native).status_code == 200
    assert create(gateway, "openai", videos).status_code == 200

    changed = create(gateway, "native", native, body={**NATIVE_BODY, "duration": 6})
    assert changed.status_code == 409
    error = changed.json()["error"]
    assert error["code"] == "IdempotencyKeyReused"
    assert error["type"] == "Conflict"
    assert error["param"] == "Idempotency-Key"
    assert set(error) == {"code", "message", "param", "type"}  # Ark's envelope

    changed = create(gateway, "openai", videos, body={**OPENAI_BODY, "prompt": "a car"})
    assert changed.status_code == 409
    error = changed.json()["error"]
    assert error["code"] == "idempotency_key_reused"
    assert error["type"] == "invalid_request_error"
    assert set(error) == {"code", "message", "param", "type"}  # OpenAI's envelope

    # The same bytes otherwise spelled are the same request; another surface is another one.
    respelled = {**dict(reversed(list(NATIVE_BODY.items()))), "seed": None}
    assert create(gateway, "native", native, body=respelled).status_code == 200
    assert create(gateway, "openai", native).status_code == 409
    assert upstream_creates(simulator) == 2


def test_an_sdk_sees_the_409_as_a_conflict(simulator: ServerThread,
                                           start_gateway: GatewayFactory) -> None:
    gateway = start_gateway(simulator.url + "/api/v3")
    idem = new_idempotency_key()
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key=FAKE_ALICE_KEY, max_retries=0)
    client.videos.create(model=MODEL, prompt="a boat", seconds="4",
                         extra_headers={"Idempotency-Key": idem})
    with pytest.raises(openai.ConflictError) as refused:
        client.videos.create(model=MODEL, prompt="a car", seconds="4",
                             extra_headers={"Idempotency-Key": idem})
    assert refused.value.code == "idempotency_key_reused"


def test_keys_are_scoped_per_caller(simulator: ServerThread, start_gateway: GatewayFactory,
                                    backend_url: str) -> None:
    gateway = start_gateway(simulator.url + "/api/v3", store_url=backend_url)
    idem = new_idempotency_key()
    alice = create(gateway, "native", idem, key=FAKE_ALICE_KEY)
    bob = create(gateway, "native", idem, key=FAKE_BOB_KEY)
    assert alice.status_code == bob.status_code == 200
    assert alice.json()["id"] != bob.json()["id"]
    assert "idempotent-replayed" not in bob.headers
    assert owned_ids(gateway, FAKE_BOB_KEY) == [bob.json()["id"]]
    assert_replayed(gateway, idem, alice, key=FAKE_ALICE_KEY)
    assert_replayed(gateway, idem, bob, key=FAKE_BOB_KEY)
    assert upstream_creates(simulator) == 2


def test_a_create_refused_before_the_upstream_can_be_retried_with_its_key(
        start_simulator: SimulatorFactory, start_gateway: GatewayFactory,
        backend_url: str) -> None:
    sim = start_simulator(delay=30)
    gateway = start_gateway(sim.url + "/api/v3", store_url=backend_url, **WITH_ADMIN)
    made = httpx.post(f"{gateway.url}/admin/keys", headers=ADMIN,
                      json={"name": "dave", "max_in_flight": 1})
    dave = made.json()["key"]
    idem = new_idempotency_key()

    invalid = create(gateway, "native", idem, key=dave, body={**NATIVE_BODY, "ratio": "2:1"})
    assert invalid.status_code == 400  # validation: the key was never taken
    busy = create(gateway, "native", new_idempotency_key(), key=dave)
    assert busy.status_code == 200
    refused = create(gateway, "native", idem, key=dave)
    assert refused.status_code == 429  # budget: the key is let go
    deleted = httpx.delete(f"{gateway.url}{NATIVE}/{busy.json()['id']}",
                           headers={"Authorization": f"Bearer {dave}"})
    assert deleted.status_code == 200  # cancelled while queued: the slot is free again

    retried = create(gateway, "native", idem, key=dave)
    assert retried.status_code == 200, retried.text
    assert "idempotent-replayed" not in retried.headers
    assert_replayed(gateway, idem, retried, key=dave)
    assert set(upstream_task_ids(sim)) == {busy.json()["id"], retried.json()["id"]}


def test_a_create_the_upstream_refused_can_be_retried_with_its_key(
        simulator: ServerThread, start_gateway: GatewayFactory, backend_url: str) -> None:
    gateway = start_gateway(simulator.url + "/api/v3", store_url=backend_url, validation=False)
    idem = new_idempotency_key()
    refused = create(gateway, "native", idem, body={**NATIVE_BODY, "ratio": "2:1"})
    assert refused.status_code == 400, refused.text  # Ark's own 400: nothing was made
    assert refused.json()["error"]["code"] == "InvalidParameter"
    retried = create(gateway, "native", idem)
    assert retried.status_code == 200, retried.text
    assert_replayed(gateway, idem, retried)
    assert upstream_task_ids(simulator) == [retried.json()["id"]]
    assert upstream_creates(simulator) == 2


def test_a_create_that_could_not_connect_can_be_retried_on_another_replica(
        simulator: ServerThread, start_gateway: GatewayFactory, backend_url: str) -> None:
    dead = start_gateway(f"http://127.0.0.1:{free_port()}/api/v3", store_url=backend_url)
    live = start_gateway(simulator.url + "/api/v3", store_url=backend_url)
    idem = new_idempotency_key()
    unreachable = create(dead, "native", idem)
    assert unreachable.status_code == 502, unreachable.text
    retried = create(live, "native", idem)
    assert retried.status_code == 200, retried.text
    assert_replayed(dead, idem, retried)  # the replicas share the key: no upstream needed
    assert upstream_creates(simulator) == 1


def test_a_lost_create_answer_is_adopted_by_the_retry(
        start_simulator: SimulatorFactory, start_gateway: GatewayFactory,
        backend_url: str) -> None:
    sim = start_simulator(lose_create_answers=1)
    gateway = start_gateway(sim.url + "/api/v3", store_url=backend_url, timeouts=LOSSY)
    idem = new_idempotency_key()
    lost = create(gateway, "native", idem)
    assert lost.status_code == 504, lost.text
    # The retry is safe (it looks upstream first), so the answer no longer forbids it.
    assert lost.headers["x-should-retry"] == "true"
    (made,) = upstream_task_ids(sim)
    assert owned_ids(gateway) == []

    retried = create(gateway, "native", idem)
    assert retried.status_code == 200, retried.text
    assert retried.json() == {"id": made}
    assert retried.headers["idempotent-replayed"] == "true"
    assert upstream_creates(sim) == 1
    # Recorded, owned and followed like any task of the caller.
    assert owned_ids(gateway) == [made]
    assert wait_finished(gateway, made)["id"] == made
    assert httpx.get(f"{gateway.url}{NATIVE}/{made}",
                     headers={"Authorization": f"Bearer {FAKE_BOB_KEY}"}).status_code == 404
    again = create(gateway, "native", idem)
    assert again.json() == {"id": made}
    assert upstream_creates(sim) == 1
    assert counted(gateway, "seedance_gateway_idempotent_replays_total", kind="adopted") == 1
    assert counted(gateway, "seedance_gateway_tasks_created_total") == 1


def test_duplicates_waiting_on_a_lost_create_get_its_task(
        start_simulator: SimulatorFactory, start_gateway: GatewayFactory,
        backend_url: str) -> None:
    sim = start_simulator(lose_create_answers=1, latency=0.2)
    gateway = start_gateway(sim.url + "/api/v3", store_url=backend_url, timeouts=LOSSY)
    idem = new_idempotency_key()
    start = threading.Barrier(10)

    def send(_: int) -> httpx.Response:
        start.wait()
        return create(gateway, "native", idem)

    with ThreadPoolExecutor(10) as pool:
        answers = list(pool.map(send, range(10)))

    (made,) = upstream_task_ids(sim)
    assert sorted(a.status_code for a in answers) == [200] * 9 + [504]
    assert {a.json()["id"] for a in answers if a.status_code == 200} == {made}
    assert upstream_creates(sim) == 1
    assert owned_ids(gateway) == [made]


def test_a_lost_answer_found_nowhere_upstream_is_created_once_more(
        start_simulator: SimulatorFactory, start_gateway: GatewayFactory,
        backend_url: str) -> None:
    sim = start_simulator(error_rate=1.0)  # a 500: the task may exist, and here it does not
    gateway = start_gateway(sim.url + "/api/v3", store_url=backend_url)
    idem = new_idempotency_key()
    failed = create(gateway, "native", idem)
    assert failed.status_code == 500
    assert failed.headers["x-should-retry"] == "true"
    faults(sim, error_rate=0.0)
    retried = create(gateway, "native", idem)
    assert retried.status_code == 200, retried.text
    assert "idempotent-replayed" not in retried.headers
    assert_replayed(gateway, idem, retried)
    assert upstream_task_ids(sim) == [retried.json()["id"]]


def test_the_ark_sdk_retry_adopts_the_task_its_first_attempt_made(
        start_simulator: SimulatorFactory, start_gateway: GatewayFactory,
        backend_url: str) -> None:
    sim = start_simulator(lose_create_answers=1)
    gateway = start_gateway(sim.url + "/api/v3", store_url=backend_url, timeouts=LOSSY)
    client = Ark(base_url=gateway.url + "/api/v3", api_key=FAKE_ALICE_KEY, max_retries=2,
                 timeout=30)
    task = client.content_generation.tasks.create(
        model=MODEL, content=[{"type": "text", "text": "a boat"}], ratio="16:9",
        extra_headers={"Idempotency-Key": new_idempotency_key()})
    assert [task.id] == upstream_task_ids(sim)
    assert upstream_creates(sim) == 1  # the SDK sent it twice; Ark saw it once
    assert client.content_generation.tasks.get(task_id=task.id).id == task.id


def test_the_openai_sdk_retry_adopts_the_task_its_first_attempt_made(
        start_simulator: SimulatorFactory, start_gateway: GatewayFactory,
        backend_url: str) -> None:
    sim = start_simulator(lose_create_answers=1)
    gateway = start_gateway(sim.url + "/api/v3", store_url=backend_url, timeouts=LOSSY)
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key=FAKE_ALICE_KEY, max_retries=2,
                           timeout=30)
    video = client.videos.create(model=MODEL, prompt="a boat", size="1280x720", seconds="4",
                                 extra_headers={"Idempotency-Key": new_idempotency_key()})
    assert [video.id] == upstream_task_ids(sim)
    assert upstream_creates(sim) == 1
    assert client.videos.retrieve(video.id).id == video.id


def test_the_openai_sdk_own_idempotency_key_holds_across_its_retries(
        start_simulator: SimulatorFactory, start_gateway: GatewayFactory) -> None:
    """openai-python sends no Idempotency-Key unless a client names the header; one that does
    gets the SDK's per-call key (`stainless-python-retry-…`), the same on every retry."""
    sim = start_simulator(lose_create_answers=1)
    gateway = start_gateway(sim.url + "/api/v3", timeouts=LOSSY)
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key=FAKE_ALICE_KEY, max_retries=2,
                           timeout=30)
    client._idempotency_header = "Idempotency-Key"
    video = client.videos.create(model=MODEL, prompt="a boat", seconds="4")
    assert [video.id] == upstream_task_ids(sim)
    assert upstream_creates(sim) == 1


def test_without_a_key_a_lost_answer_still_forbids_the_retry(
        start_simulator: SimulatorFactory, start_gateway: GatewayFactory) -> None:
    sim = start_simulator(lose_create_answers=1)
    gateway = start_gateway(sim.url + "/api/v3", timeouts=LOSSY)
    lost = create(gateway, "native", None)
    assert lost.status_code == 504
    assert lost.headers["x-should-retry"] == "false"


def test_two_lost_tasks_that_look_alike_are_not_guessed_between(
        start_simulator: SimulatorFactory, start_gateway: GatewayFactory,
        backend_url: str) -> None:
    sim = start_simulator(lose_create_answers=2)
    gateway = start_gateway(sim.url + "/api/v3", store_url=backend_url, timeouts=LOSSY)
    first, second = new_idempotency_key(), new_idempotency_key()
    assert create(gateway, "native", first).status_code == 504
    assert create(gateway, "native", second).status_code == 504
    ambiguous = create(gateway, "native", first)
    assert ambiguous.status_code == 409
    assert ambiguous.json()["error"]["code"] == "IdempotencyKeyAmbiguous"
    assert upstream_creates(sim) == 2  # never a third
    assert owned_ids(gateway) == []


@pytest.mark.parametrize("header", ["", "x" * 256, "caf\u00e9", "a\tb"])
def test_a_malformed_key_is_a_400(simulator: ServerThread, start_gateway: GatewayFactory,
                                  header: str) -> None:
    gateway = start_gateway(simulator.url + "/api/v3")
    for surface in ("native", "openai"):
        path = NATIVE if surface == "native" else "/v1/videos"
        body = NATIVE_BODY if surface == "native" else OPENAI_BODY
        refused = httpx.post(gateway.url + path, json=body, headers=[
            (b"Authorization", f"Bearer {FAKE_ALICE_KEY}".encode()),
            (b"Idempotency-Key", header.encode("latin-1"))])
        assert refused.status_code == 400, refused.text
        assert refused.json()["error"]["param"] == "Idempotency-Key"
    assert upstream_creates(simulator) == 0
