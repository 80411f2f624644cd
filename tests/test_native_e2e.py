"""End to end over real sockets: the Volcengine Ark SDK → gateway → simulator."""

from __future__ import annotations

import time
from typing import Any

import httpx
import orjson
import pytest
from volcenginesdkarkruntime import Ark
from volcenginesdkarkruntime._exceptions import (
    ArkAuthenticationError,
    ArkBadRequestError,
    ArkNotFoundError,
    ArkPermissionDeniedError,
)

from tests.conftest import GatewayFactory, SimulatorFactory
from tests.servers import FAKE_ALICE_KEY, FAKE_BOB_KEY, FAKE_UPSTREAM_KEY, ServerThread, free_port

MODEL = "doubao-seedance-2-0-260128"
TEXT = [{"type": "text", "text": "a red fox running through snow --dur 5"}]


def ark(gateway: ServerThread, key: str = FAKE_ALICE_KEY) -> Ark:
    return Ark(base_url=gateway.url + "/api/v3", api_key=key, max_retries=0, timeout=10)


def wait_for(client: Ark, task_id: str, status: str, timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        task = client.content_generation.tasks.get(task_id=task_id)
        if task.status == status or time.monotonic() > deadline:
            return task
        time.sleep(0.1)


def test_create_poll_list_delete_cycle(gateway: ServerThread) -> None:
    client = ark(gateway)
    created = client.content_generation.tasks.create(
        model=MODEL, content=TEXT, ratio="16:9", resolution="720p", duration=5,
        return_last_frame=True,
    )
    assert created.id.startswith("cgt-")

    task = wait_for(client, created.id, "succeeded")
    assert task.status == "succeeded"
    assert task.model == MODEL
    assert task.usage.total_tokens == 108900  # 1280×720×(24·5+1)/1024
    video = httpx.get(task.content.video_url)  # signed URL, no Authorization
    assert video.status_code == 200 and video.content[4:8] == b"ftyp"

    listed = client.content_generation.tasks.list(page_size=10)
    assert listed.total == 1 and listed.items[0].id == created.id
    assert listed.items[0].status == "succeeded"

    client.content_generation.tasks.delete(task_id=created.id)
    with pytest.raises(ArkNotFoundError):
        client.content_generation.tasks.get(task_id=created.id)
    assert client.content_generation.tasks.list().total == 0


def test_reseller_names_reach_upstream_as_model_ids(
    simulator: ServerThread, gateway: ServerThread
) -> None:
    client = ark(gateway)
    for model in ("doubao-seedance-2.0", "doubao-seedance-2-fast"):
        created = client.content_generation.tasks.create(model=model, content=TEXT, duration=5)
        assert wait_for(client, created.id, "succeeded").status == "succeeded"
    posts = [r for r in simulator.app.state.simulator.requests if r.method == "POST"]
    sent = [orjson.loads(r.body)["model"] for r in posts]
    assert sent == [MODEL, "doubao-seedance-2-0-fast-260128"]
    # The rest of the body is what the SDK sent, nulls included.
    assert orjson.loads(posts[0].body)["frames"] is None


def test_list_filters_and_paging(gateway: ServerThread) -> None:
    client = ark(gateway)
    ids = [client.content_generation.tasks.create(model=MODEL, content=TEXT).id
           for _ in range(5)]
    fast = client.content_generation.tasks.create(
        model="doubao-seedance-2-0-fast-260128", content=TEXT).id
    page1 = client.content_generation.tasks.list(page_num=1, page_size=4)
    page2 = client.content_generation.tasks.list(page_num=2, page_size=4)
    assert page1.total == page2.total == 6
    assert len(page1.items) == 4 and len(page2.items) == 2
    seen = [t.id for t in page1.items] + [t.id for t in page2.items]
    assert sorted(seen) == sorted([*ids, fast])

    by_ids = client.content_generation.tasks.list(task_ids=ids[:2])
    assert sorted(t.id for t in by_ids.items) == sorted(ids[:2])
    by_model = client.content_generation.tasks.list(model="doubao-seedance-2-0-fast-260128")
    assert [t.id for t in by_model.items] == [fast]

    for task_id in ids:
        wait_for(client, task_id, "succeeded")
    done = client.content_generation.tasks.list(status="succeeded", page_size=50)
    assert {t.id for t in done.items} == set(ids)
    flex = client.content_generation.tasks.list(service_tier="flex")
    assert flex.total == 0


def test_delete_follows_arks_table(start_simulator: SimulatorFactory,
                                   start_gateway: GatewayFactory) -> None:
    sim = start_simulator(delay=30)  # queued for 10 s, then running
    gateway = start_gateway(sim.url + "/api/v3")
    client = ark(gateway)
    queued = client.content_generation.tasks.create(model=MODEL, content=TEXT).id
    client.content_generation.tasks.delete(task_id=queued)
    assert client.content_generation.tasks.get(task_id=queued).status == "cancelled"
    with pytest.raises(ArkBadRequestError) as refused:
        client.content_generation.tasks.delete(task_id=queued)  # cancelled: not deletable
    assert refused.value.status_code == 400

    never = [{"type": "text", "text": "[sim:never] waits forever"}]
    sim2 = start_simulator(delay=0.05)
    gateway2 = start_gateway(sim2.url + "/api/v3", store_url="sqlite://:memory:")
    client2 = ark(gateway2)
    running = client2.content_generation.tasks.create(model=MODEL, content=never).id
    assert wait_for(client2, running, "running").status == "running"
    with pytest.raises(ArkBadRequestError) as refused:
        client2.content_generation.tasks.delete(task_id=running)
    assert "running" in str(refused.value)

    # DELETE with an empty body (curl) works as well as the SDK's `{}`.
    done = client2.content_generation.tasks.create(model=MODEL, content=TEXT).id
    wait_for(client2, done, "succeeded")
    response = httpx.delete(f"{gateway2.url}/api/v3/contents/generations/tasks/{done}",
                            headers={"Authorization": f"Bearer {FAKE_ALICE_KEY}"})
    assert response.status_code == 200


def test_second_key_sees_nothing(gateway: ServerThread) -> None:
    alice, bob = ark(gateway), ark(gateway, FAKE_BOB_KEY)
    task_id = alice.content_generation.tasks.create(model=MODEL, content=TEXT).id
    with pytest.raises(ArkNotFoundError):
        bob.content_generation.tasks.get(task_id=task_id)
    with pytest.raises(ArkNotFoundError):
        bob.content_generation.tasks.delete(task_id=task_id)
    assert bob.content_generation.tasks.list().total == 0
    assert bob.content_generation.tasks.list(task_ids=[task_id]).items == []
    assert alice.content_generation.tasks.get(task_id=task_id).id == task_id


def test_keys_never_cross(simulator: ServerThread, gateway: ServerThread) -> None:
    client = ark(gateway)
    task_id = client.content_generation.tasks.create(model=MODEL, content=TEXT).id
    task = wait_for(client, task_id, "succeeded")
    client.content_generation.tasks.list()
    client.content_generation.tasks.delete(task_id=task_id)

    received = simulator.app.state.simulator.requests
    assert received, "the simulator saw no requests"
    for request in received:
        assert request.headers.get("authorization") == f"Bearer {FAKE_UPSTREAM_KEY}"
        flat = repr(request.headers) + request.body.decode(errors="replace")
        assert FAKE_ALICE_KEY not in flat
    # Nothing the client saw carries the upstream key.
    raw = httpx.get(f"{gateway.url}/api/v3/contents/generations/tasks/{task.id}",
                    headers={"Authorization": f"Bearer {FAKE_ALICE_KEY}"})
    assert FAKE_UPSTREAM_KEY not in raw.text + repr(raw.headers)


def test_auth_failures(gateway: ServerThread) -> None:
    with pytest.raises(ArkAuthenticationError) as missing:
        ark(gateway, "sgw-not-a-key").content_generation.tasks.list()
    assert missing.value.code == "AuthenticationError"
    no_header = httpx.get(f"{gateway.url}/api/v3/contents/generations/tasks")
    assert no_header.status_code == 401
    assert no_header.json()["error"]["type"] == "Unauthorized"


def test_model_not_allowed_is_403(simulator: ServerThread,
                                  start_gateway: GatewayFactory) -> None:
    gateway = start_gateway(simulator.url + "/api/v3", bob_models=["sora-2"])
    with pytest.raises(ArkPermissionDeniedError) as denied:
        ark(gateway, FAKE_BOB_KEY).content_generation.tasks.create(model=MODEL, content=TEXT)
    assert denied.value.status_code == 403


@pytest.mark.parametrize(
    ("extra", "code", "param"),
    [
        ({"ratio": "2:1"}, "InvalidParameter", "ratio"),
        ({"duration": 16}, "InvalidParameter", "duration"),
        ({"resolution": "1440p"}, "InvalidParameter", "resolution"),
        ({"service_tier": "flex"}, "InvalidParameter.UnsupportedParameter", "service_tier"),
    ],
)
def test_invalid_requests_answer_like_ark(
    gateway: ServerThread, extra: dict[str, Any], code: str, param: str
) -> None:
    with pytest.raises(ArkBadRequestError) as bad:
        ark(gateway).content_generation.tasks.create(model=MODEL, content=TEXT, **extra)
    assert (bad.value.status_code, bad.value.code, bad.value.param) == (400, code, param)


def test_unknown_model_is_404(gateway: ServerThread) -> None:
    with pytest.raises(ArkNotFoundError) as missing:
        ark(gateway).content_generation.tasks.create(model="no-such-model", content=TEXT)
    assert missing.value.code == "InvalidEndpointOrModel.NotFound"


def test_body_over_64_mb_is_413(gateway: ServerThread) -> None:
    url = f"{gateway.url}/api/v3/contents/generations/tasks"
    headers = {"Authorization": f"Bearer {FAKE_ALICE_KEY}", "Content-Type": "application/json"}
    big = b'{"model": "x", "pad": "' + b"a" * (64 * 1024 * 1024 + 16) + b'"}'
    response = httpx.post(url, headers=headers, content=big, timeout=30)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "RequestEntityTooLarge"

    def chunks() -> Any:  # no Content-Length: the cap holds while streaming too
        for start in range(0, len(big), 1 << 20):
            yield big[start:start + (1 << 20)]

    response = httpx.post(url, headers=headers, content=chunks(), timeout=30)
    assert response.status_code == 413


def test_connection_refused_is_502(start_gateway: GatewayFactory) -> None:
    gateway = start_gateway(f"http://127.0.0.1:{free_port()}/api/v3")
    response = httpx.post(
        f"{gateway.url}/api/v3/contents/generations/tasks",
        headers={"Authorization": f"Bearer {FAKE_ALICE_KEY}"},
        json={"model": MODEL, "content": TEXT},
    )
    assert response.status_code == 502
    assert response.json()["error"]["type"] == "BadGateway"
    assert response.headers.get("x-should-retry") != "false"  # nothing was sent: safe to retry


def test_upstream_timeout_is_504_and_create_not_retried(
    start_simulator: SimulatorFactory, start_gateway: GatewayFactory
) -> None:
    sim = start_simulator(latency=2.0)
    gateway = start_gateway(sim.url + "/api/v3", timeouts={"read": 0.3})
    response = httpx.post(
        f"{gateway.url}/api/v3/contents/generations/tasks",
        headers={"Authorization": f"Bearer {FAKE_ALICE_KEY}"},
        json={"model": MODEL, "content": TEXT}, timeout=10,
    )
    assert response.status_code == 504
    assert response.json()["error"]["type"] == "GatewayTimeout"
    assert response.headers["x-should-retry"] == "false"  # the task may exist upstream
    posts = [r for r in sim.app.state.simulator.requests if r.method == "POST"]
    assert len(posts) == 1


def test_validation_can_be_switched_off_per_upstream(
    simulator: ServerThread, start_gateway: GatewayFactory
) -> None:
    gateway = start_gateway(simulator.url + "/api/v3", validation=False)
    # 17 s is outside 2.0's range: the gateway forwards it and the upstream decides.
    created = ark(gateway).content_generation.tasks.create(
        model=MODEL, content=TEXT, duration=17, extra_body={"brand_new_parameter": {"x": 1}})
    assert created.id.startswith("cgt-")
    sent = orjson.loads(simulator.app.state.simulator.requests[-1].body)
    assert sent["duration"] == 17 and sent["brand_new_parameter"] == {"x": 1}


def test_upstream_errors_reach_native_clients_verbatim(
    start_simulator: SimulatorFactory, start_gateway: GatewayFactory
) -> None:
    sim = start_simulator(error_rate=1.0)
    gateway = start_gateway(sim.url + "/api/v3")
    response = httpx.post(f"{gateway.url}/api/v3/contents/generations/tasks",
                          headers={"Authorization": f"Bearer {FAKE_ALICE_KEY}",
                                   "X-Client-Request-Id": "client-abc"},
                          json={"model": MODEL, "content": TEXT})
    assert response.status_code == 500
    assert response.json()["error"]["code"] == "InternalServiceError"
    assert response.headers["x-should-retry"] == "false"  # a create: never blindly retried
    assert response.headers["x-client-request-id"] == "client-abc"
    assert response.headers["x-upstream-request-id"]
    received = sim.app.state.simulator.requests[-1]
    assert received.headers["x-client-request-id"] == "client-abc"


def test_rejected_upstream_key_is_the_operators_problem(
    start_simulator: SimulatorFactory, start_gateway: GatewayFactory
) -> None:
    """A wrong upstream key must not look like a wrong gateway key to the caller."""
    sim = start_simulator(upstream_keys=("some-other-upstream-key",))
    gateway = start_gateway(sim.url + "/api/v3")
    for path, body in [("/api/v3/contents/generations/tasks", {"model": MODEL, "content": TEXT}),
                       ("/v1/videos", {"prompt": "x"})]:
        response = httpx.post(gateway.url + path, json=body,
                              headers={"Authorization": f"Bearer {FAKE_ALICE_KEY}"})
        assert response.status_code == 502
        assert response.json()["error"]["code"] == "UpstreamKeyRejected"
    metrics = httpx.get(gateway.url + "/metrics").text
    assert 'status="401"' in metrics  # the upstream's answer is still counted as such
    assert "seedance_gateway_auth_failures_total{" not in metrics
