"""Coalesced polls: the upstream is asked about a task about once per poll window, whoever polls.

End to end on both stores: real gateways over real sockets in front of the simulator, whose
request log (`/_sim/requests`) counts the GETs that reached the upstream. A finished task's
record answers every poll (until its signed URLs near expiry); an unfinished one's answers
within `tracker.poll_window` (2 s by default) of the last fetch; otherwise one GET per task is
in flight, shared by every poll that needs it; replicas on one store share the freshness.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from collections.abc import Callable
from typing import Any

import httpx
import orjson
import pytest

from gateway.app import create_app
from gateway.config import TrackerConfig
from gateway.simulator.signing import UrlSigner
from gateway.store.base import TaskRecord
from gateway.tasks import polls
from gateway.tasks.freshness import URL_MARGIN, is_fresh, signed_until
from tests.conftest import GatewayFactory, SimulatorFactory
from tests.servers import FAKE_ALICE_KEY, FAKE_UPSTREAM_KEY, ServerThread, gateway_config

NATIVE = "/api/v3/contents/generations/tasks"
MODEL = "doubao-seedance-2-0-260128"
ALICE = {"Authorization": f"Bearer {FAKE_ALICE_KEY}"}
# The gateway's own poll window (its default, 2 s), not the test harness's fast one.
DEFAULT_WINDOW: dict[str, Any] = {"tracker": {"enabled": False}}
NEVER_ENDS = "[sim:never] a lighthouse"  # created while the simulator's delay is 0: running


def create(gateway: ServerThread, prompt: str = "a harbour at dawn") -> str:
    created = httpx.post(gateway.url + NATIVE, headers=ALICE, timeout=10, json={
        "model": MODEL, "content": [{"type": "text", "text": prompt}]})
    assert created.status_code == 200, created.text
    return str(created.json()["id"])


def upstream_gets(sim: ServerThread, task_id: str) -> int:
    """GETs of the task that reached the upstream, from the simulator's request log."""
    seen = httpx.get(sim.url + "/_sim/requests", timeout=10).json()
    return sum(r["method"] == "GET" and r["path"] == f"{NATIVE}/{task_id}" for r in seen)


def forget_requests(sim: ServerThread) -> None:
    assert httpx.delete(sim.url + "/_sim/requests", timeout=10).status_code == 200


def faults(sim: ServerThread, **knobs: float) -> None:
    assert httpx.post(sim.url + "/_sim/faults", json=knobs, timeout=10).status_code == 200


def direct_get(sim: ServerThread, task_id: str) -> httpx.Response:
    """The task straight from the simulator, with the upstream key (not through a gateway)."""
    return httpx.get(f"{sim.url}{NATIVE}/{task_id}", timeout=10,
                     headers={"Authorization": f"Bearer {FAKE_UPSTREAM_KEY}"})


def polls_counted(gateway: ServerThread) -> dict[tuple[str, str], float]:
    """seedance_gateway_polls_total by (surface, source), from /metrics."""
    text = httpx.get(gateway.url + "/metrics", timeout=10).text
    found = re.findall(r'seedance_gateway_polls_total\{source="(\w+)",surface="(\w+)"\} (\S+)',
                       text)
    return {(surface, source): float(value) for source, surface, value in found}


def poll_paths(task_id: str) -> tuple[str, str]:
    return f"{NATIVE}/{task_id}", f"/v1/videos/{task_id}"


async def poll_for(gateways: list[ServerThread], task_id: str, *, pollers: int,
                   seconds: float) -> list[httpx.Response]:
    """`pollers` clients, spread over the gateways and both surfaces, each polling the task
    back to back for `seconds`."""
    deadline = time.monotonic() + seconds
    answers: list[httpx.Response] = []

    async def poller(client: httpx.AsyncClient, path: str) -> None:
        while time.monotonic() < deadline:
            answers.append(await client.get(path, headers=ALICE))

    clients = [httpx.AsyncClient(base_url=g.url, timeout=10,
                                 limits=httpx.Limits(max_connections=pollers))
               for g in gateways]
    try:
        await asyncio.gather(*(
            poller(clients[i % len(clients)], poll_paths(task_id)[i // len(clients) % 2])
            for i in range(pollers)))
    finally:
        for client in clients:
            await client.aclose()
    return answers


def test_forty_pollers_for_ten_seconds_cost_at_most_twelve_gets(
    start_simulator: SimulatorFactory, start_gateway: GatewayFactory, backend_url: str
) -> None:
    sim = start_simulator(delay=0)
    gateway = start_gateway(sim.url + "/api/v3", store_url=backend_url, extra=DEFAULT_WINDOW)
    task_id = create(gateway, NEVER_ENDS)

    answers = asyncio.run(poll_for([gateway], task_id, pollers=40, seconds=10))

    assert len(answers) > 400  # they did poll, back to back
    assert {a.status_code for a in answers} == {200}
    assert {a.json()["status"] for a in answers} == {"running", "in_progress"}
    gets = upstream_gets(sim, task_id)
    assert 1 <= gets <= 12, gets
    counted = polls_counted(gateway)
    spared = sum(n for (_, source), n in counted.items() if source in ("record", "shared"))
    assert counted.get(("native", "upstream"), 0) + counted.get(("openai", "upstream"), 0) == gets
    assert spared == len(answers) - gets


def test_two_hundred_polls_of_a_finished_task_cost_at_most_one_get(
    start_simulator: SimulatorFactory, start_gateway: GatewayFactory, backend_url: str
) -> None:
    sim = start_simulator(delay=0)  # done at once
    gateway = start_gateway(sim.url + "/api/v3", store_url=backend_url, extra=DEFAULT_WINDOW)
    task_id = create(gateway)
    native, openai = poll_paths(task_id)

    answers = [httpx.get(gateway.url + (native, openai)[i % 2], headers=ALICE, timeout=10)
               for i in range(200)]

    assert {a.status_code for a in answers} == {200}
    assert upstream_gets(sim, task_id) == 1
    natives = answers[0::2]
    assert natives[0].json()["status"] == "succeeded"
    assert {a.content for a in natives} == {natives[0].content}  # the upstream's bytes, kept
    assert "x-upstream-request-id" in natives[0].headers  # the one that asked
    assert not any("x-upstream-request-id" in a.headers for a in natives[1:])
    assert {a.json()["status"] for a in answers[1::2]} == {"completed"}
    counted = polls_counted(gateway)
    assert counted[("native", "upstream")] == 1 and counted[("native", "record")] == 99
    assert counted[("openai", "record")] == 100


def test_the_native_answer_is_the_bytes_the_upstream_last_returned(
    start_simulator: SimulatorFactory, start_gateway: GatewayFactory, backend_url: str
) -> None:
    sim = start_simulator(delay=0)
    gateway = start_gateway(sim.url + "/api/v3", store_url=backend_url, extra=DEFAULT_WINDOW)
    task_id = create(gateway, NEVER_ENDS)
    upstream = direct_get(sim, task_id)  # a running task's answer does not change
    assert upstream.status_code == 200

    asked = httpx.get(f"{gateway.url}{NATIVE}/{task_id}", headers=ALICE, timeout=10)
    from_record = httpx.get(f"{gateway.url}{NATIVE}/{task_id}", headers=ALICE, timeout=10)

    assert asked.content == from_record.content == upstream.content
    assert from_record.headers["content-type"] == "application/json"
    assert upstream_gets(sim, task_id) == 2  # this test's own, and the gateway's one


def test_concurrent_polls_share_one_get_and_its_error(
    start_simulator: SimulatorFactory, start_gateway: GatewayFactory, backend_url: str
) -> None:
    sim = start_simulator(delay=0, latency=1.0)  # every upstream answer takes 1 s
    gateway = start_gateway(sim.url + "/api/v3", store_url=backend_url, extra=DEFAULT_WINDOW)
    task_id = create(gateway, NEVER_ENDS)
    forget_requests(sim)

    async def together(count: int) -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=gateway.url, timeout=10,
                                     limits=httpx.Limits(max_connections=count)) as client:
            return await asyncio.gather(*(client.get(poll_paths(task_id)[i % 2], headers=ALICE)
                                          for i in range(count)))

    answers = asyncio.run(together(40))
    assert {a.status_code for a in answers} == {200}
    assert upstream_gets(sim, task_id) == 1  # never fetched before: one GET, 39 waited for it
    counted = polls_counted(gateway)
    shared = sum(n for (_, source), n in counted.items() if source == "shared")
    # On a loaded machine a poll may arrive only after the GET answered: the fresh record
    # answers it then. Either way 39 polls were answered without an upstream call of their own.
    recorded = sum(n for (_, source), n in counted.items() if source == "record")
    assert shared + recorded == 39 and shared > 0, counted

    # An upstream error reaches every poll that waited for the GET, and the GET is still one.
    time.sleep(2.1)  # past the poll window: the record no longer answers
    assert httpx.post(f"{sim.url}/_sim/tasks/{task_id}/lose", json={"requests": 1}).is_success
    forget_requests(sim)
    failed = asyncio.run(together(10))
    natives = [a for a in failed if "/api/v3/" in str(a.url)]
    assert {a.status_code for a in failed} == {404}
    assert {a.json()["error"]["code"] for a in natives} == {"NotFound.TaskID"}
    assert upstream_gets(sim, task_id) == 1


@pytest.mark.anyio
async def test_a_poller_that_goes_away_does_not_cancel_the_shared_get(
    start_simulator: SimulatorFactory, backend_url: str
) -> None:
    sim = start_simulator(delay=0, latency=0.5)
    config = gateway_config(sim.url + "/api/v3", store_url=backend_url, extra=DEFAULT_WINDOW)
    app = create_app(config)
    services = app.state.services
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
            created = await client.post(NATIVE, headers=ALICE, json={
                "model": MODEL, "content": [{"type": "text", "text": NEVER_ENDS}]})
        task_id = created.json()["id"]
        record = await services.store.get(task_id, "alice")
        other = await services.store.get(task_id, "alice")
        first = asyncio.create_task(
            polls.poll(services, record, request_id=None, surface="native"))
        await asyncio.sleep(0.1)  # its GET is on the wire
        second = asyncio.create_task(
            polls.poll(services, other, request_id=None, surface="openai"))
        await asyncio.sleep(0.1)
        first.cancel()  # the poll that started the GET goes away

        answer = await second
        assert first.cancelled()
        assert answer.source == "shared" and answer.task()["status"] == "running"
        stored = await services.store.get(task_id, "alice")
        assert stored is not None and stored.task_json == answer.body  # the GET was learned
    assert upstream_gets(sim, task_id) == 1


def test_two_replicas_on_one_store_share_freshness(
    start_simulator: SimulatorFactory, start_gateway: GatewayFactory, backend_url: str
) -> None:
    sim = start_simulator(delay=0)
    a = start_gateway(sim.url + "/api/v3", store_url=backend_url, extra=DEFAULT_WINDOW)
    b = start_gateway(sim.url + "/api/v3", store_url=backend_url, extra=DEFAULT_WINDOW)
    task_id = create(a, NEVER_ENDS)
    native, _ = poll_paths(task_id)

    asked = httpx.get(a.url + native, headers=ALICE, timeout=10)
    answered = httpx.get(b.url + native, headers=ALICE, timeout=10)
    assert asked.status_code == answered.status_code == 200
    assert answered.content == asked.content
    assert upstream_gets(sim, task_id) == 1  # B found A's fetch fresh in the store
    assert polls_counted(b) == {("native", "record"): 1.0}

    time.sleep(2.1)  # past the window
    forget_requests(sim)
    answers = asyncio.run(poll_for([a, b], task_id, pollers=40, seconds=6))
    assert {r.status_code for r in answers} == {200}
    # 6 s of a 2 s window: about 3 GETs between both replicas, not about 3 each.
    assert 1 <= upstream_gets(sim, task_id) <= 7  # the 10 s / 12 GETs target, scaled to 6 s


def test_an_expiring_signed_url_is_refreshed_exactly_once(
    start_simulator: SimulatorFactory, start_gateway: GatewayFactory, backend_url: str
) -> None:
    sim = start_simulator(delay=0, url_ttl=300)  # within URL_MARGIN (10 min) of expiry at once
    gateway = start_gateway(sim.url + "/api/v3", store_url=backend_url, extra=DEFAULT_WINDOW)
    task_id = create(gateway)
    native, openai = poll_paths(task_id)
    first = httpx.get(gateway.url + native, headers=ALICE, timeout=10).json()
    assert "X-Tos-Expires=300" in first["content"]["video_url"]
    faults(sim, url_ttl=86400)  # Ark's usual 24 h from now on
    time.sleep(2.1)  # the poll window of the first GET

    answers = [httpx.get(gateway.url + (native, openai)[i % 2], headers=ALICE, timeout=10)
               for i in range(50)]

    assert upstream_gets(sim, task_id) == 2  # the first poll, then one refresh
    urls = {a.json()["content"]["video_url"] for a in answers[0::2]}
    assert len(urls) == 1 and "X-Tos-Expires=86400" in urls.pop()
    content = httpx.get(gateway.url + openai + "/content", headers=ALICE, timeout=10)
    assert content.status_code == 200 and content.content[4:8] == b"ftyp"
    assert upstream_gets(sim, task_id) == 2


def test_a_download_the_file_host_refuses_still_refreshes_the_task_once(
    start_simulator: SimulatorFactory, start_gateway: GatewayFactory, backend_url: str
) -> None:
    sim = start_simulator(delay=0)
    gateway = start_gateway(sim.url + "/api/v3", store_url=backend_url, extra=DEFAULT_WINDOW)
    task_id = create(gateway)
    _, openai = poll_paths(task_id)
    assert httpx.get(gateway.url + openai, headers=ALICE, timeout=10).json()["status"] == \
        "completed"
    # The file host rotates its signing key: the stored URL, though not expired, is refused.
    sim.app.state.simulator.signer = UrlSigner(os.urandom(32))
    forget_requests(sim)

    for _ in range(3):
        content = httpx.get(gateway.url + openai + "/content", headers=ALICE, timeout=10)
        assert content.status_code == 200 and content.content[4:8] == b"ftyp"
    assert upstream_gets(sim, task_id) == 1  # the refresh; then the new URL, from the record


def test_with_no_poll_window_every_poll_of_a_running_task_asks(
    start_simulator: SimulatorFactory, start_gateway: GatewayFactory, backend_url: str
) -> None:
    sim = start_simulator(delay=0)
    gateway = start_gateway(sim.url + "/api/v3", store_url=backend_url,
                            extra={"tracker": {"enabled": False, "poll_window": 0}})
    running, finished = create(gateway, NEVER_ENDS), create(gateway)
    for task_id in (running, finished):
        for _ in range(5):
            assert httpx.get(f"{gateway.url}{NATIVE}/{task_id}", headers=ALICE,
                             timeout=10).status_code == 200
    assert upstream_gets(sim, running) == 5
    assert upstream_gets(sim, finished) == 1  # a finished task's record answers all the same


# What is read off a signed URL: TOS's own pair, S3's (TOS accepts it), or nothing.
NOW = 1_790_000_000.0
SIGNED = "https://bucket.tos-cn-beijing.volces.com/v.mp4?"
URLS: list[tuple[str, float | None]] = [
    (SIGNED + UrlSigner(b"k").query("/v.mp4", now=NOW, ttl=86400), NOW + 86400),
    (SIGNED + "X-Tos-Expires=600&X-Tos-Date=20260912T101010Z&X-Tos-Signature=x", 1_789_208_410),
    (SIGNED + "x-amz-date=20260912T101010Z&x-amz-expires=60", 1_789_207_870),
    (SIGNED + "X-Tos-Date=20261312T101010Z&X-Tos-Expires=60", None),  # month 13
    (SIGNED + "X-Tos-Date=20260912T101010Z", None),
    (SIGNED + "Expires=1789207870&Signature=x", None),
    ("https://example.com/v.mp4", None),
]


@pytest.mark.parametrize(("url", "until"), URLS)
def test_signed_url_expiry_is_read_from_its_query(url: str, until: float | None) -> None:
    assert signed_until(url) == until


def finished(content: dict[str, Any], fetched_at: float | None = NOW) -> TaskRecord:
    return TaskRecord(task_id="cgt-1", owner="alice", upstream="ark", upstream_key="main",
                      model="m", upstream_model="m", surface="native", created_at=0,
                      updated_at=0, status="succeeded", fetched_at=fetched_at,
                      task_json=orjson.dumps({"status": "succeeded", "content": content}))


FRESHNESS: list[tuple[Callable[[], TaskRecord], float, bool]] = [
    (lambda: finished({"video_url": URLS[0][0]}), NOW + 86400 - URL_MARGIN - 1, True),
    (lambda: finished({"video_url": URLS[0][0]}), NOW + 86400 - URL_MARGIN + 1, False),
    (lambda: finished({}), NOW + 10**9, True),  # no URL to expire
    (lambda: finished({"video_url": URLS[5][0]}), NOW + 3600, True),  # unknown: 24 h
    (lambda: finished({"video_url": URLS[5][0]}, None), NOW, False),  # unknown, no fetch time
]


@pytest.mark.parametrize(("make", "now", "fresh"), FRESHNESS)
def test_a_finished_task_is_fresh_until_its_urls_near_expiry(
    make: Callable[[], TaskRecord], now: float, fresh: bool
) -> None:
    assert is_fresh(make(), now=now, window=2.0) is fresh



def test_the_default_poll_window_is_two_seconds() -> None:
    """The window the tests above hold the gateway to its targets with is the default."""
    assert TrackerConfig().poll_window == 2.0
