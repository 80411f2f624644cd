"""Upstream keys fail over, end to end over real sockets: gateway → one or more simulators.

A create that met a 429, a 401/403 or a closed door moves to the next key, then to the next
upstream serving the model; one that may have reached Ark never does. The simulators'
request logs (`/_sim/requests`) show which key each request carried; `POST /_sim/keys` revokes
or rate limits one key.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from openai import OpenAI
from volcenginesdkarkruntime import Ark

from gateway.app import create_app
from tests.conftest import GatewayFactory, SimulatorFactory
from tests.leaks import LeakTrap, RecordingApp
from tests.servers import FAKE_ALICE_KEY, FAKE_UPSTREAM_KEY, ServerThread, free_port, gateway_config
from tests.test_metrics import scrape, value

NATIVE = "/api/v3/contents/generations/tasks"
MODEL = "doubao-seedance-2-0-260128"
TEXT = [{"type": "text", "text": "a red fox running through snow"}]
ALICE = {"Authorization": f"Bearer {FAKE_ALICE_KEY}"}
# Upstream key secrets, each containing the leak canary: none may show up anywhere.
SECRETS = {"one": FAKE_UPSTREAM_KEY, "two": FAKE_UPSTREAM_KEY + "-two",
           "three": FAKE_UPSTREAM_KEY + "-three"}
ENV = {f"KEY_{name.upper()}": secret for name, secret in SECRETS.items()}
SEEDS = itertools.count(100)


def upstream(name: str, sim_url: str, *keys: str, **settings: Any) -> dict[str, Any]:
    return {"name": name, "base_url": sim_url + "/api/v3", "preset": "volcengine",
            "keys": [{"name": k, "secret": f"${{KEY_{k.upper()}}}"} for k in keys or ("one",)],
            **settings}


def start(start_gateway: GatewayFactory, *upstreams: dict[str, Any],
          **options: Any) -> ServerThread:
    return start_gateway("http://unused.invalid", extra={"upstreams": list(upstreams)},
                         env=ENV, **options)


def sim_of(start_simulator: SimulatorFactory, *keys: str, **settings: Any) -> ServerThread:
    # Seeded alike, two simulators would hand out the same task ids in the same second.
    settings.setdefault("seed", next(SEEDS))
    return start_simulator(upstream_keys=tuple(SECRETS[k] for k in keys), **settings)


def set_key(sim: ServerThread, key: str, *, revoked: bool = False,
            retry_after: int | None = None) -> None:
    done = httpx.post(sim.url + "/_sim/keys", json={
        "key": SECRETS[key], "revoked": revoked, "retry_after": retry_after})
    assert done.status_code == 200, done.text


def requests_by_key(sim: ServerThread, method: str = "POST",
                    path: str = NATIVE) -> Counter[str]:
    """Key name → how many such requests the simulator received with it."""
    names = {f"Bearer {secret}": name for name, secret in SECRETS.items()}
    seen = httpx.get(sim.url + "/_sim/requests").json()
    return Counter(names[r["headers"]["authorization"]] for r in seen
                   if r["method"] == method and r["path"] == path)


def probes_by_key(sim: ServerThread) -> Counter[str]:
    names = {f"Bearer {secret}": name for name, secret in SECRETS.items()}
    seen = httpx.get(sim.url + "/_sim/requests").json()
    return Counter(names[r["headers"]["authorization"]] for r in seen
                   if r["method"] == "GET" and r["path"] == NATIVE
                   and r["query"] == "page_num=1&page_size=1")


def create(gateway: ServerThread, model: str = MODEL, **fields: Any) -> httpx.Response:
    return httpx.post(gateway.url + NATIVE, headers=ALICE, timeout=20,
                      json={"model": model, "content": TEXT, **fields})


def owner_key(sim: ServerThread, task_id: str) -> str:
    names = {secret: name for name, secret in SECRETS.items()}
    return names[sim.app.state.simulator.tasks[task_id].owner_key]


def metric(gateway: ServerThread, name: str, **labels: str) -> float:
    return value(scrape(gateway.url), name, **labels)


def key_state(gateway: ServerThread, key: str, upstream: str = "ark") -> str:
    exposition = scrape(gateway.url)  # one scrape: the state may change between two
    states = [state for state in ("healthy", "cooldown", "quarantined")
              if value(exposition, "seedance_gateway_upstream_key_state", upstream=upstream,
                       key=key, state=state) == 1]
    assert len(states) == 1, states
    return states[0]


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def ark(gateway: ServerThread) -> Ark:
    return Ark(base_url=gateway.url + "/api/v3", api_key=FAKE_ALICE_KEY, max_retries=0,
               timeout=20)


# --- a key refused: quarantine -----------------------------------------------------------


def test_a_revoked_key_of_two_loses_no_create(start_simulator: SimulatorFactory,
                                              start_gateway: GatewayFactory) -> None:
    """Before: round robin sent every other create to the revoked key, a 502 each time."""
    sim = sim_of(start_simulator, "one", "two")
    gateway = start(start_gateway, upstream("ark", sim.url, "one", "two"))
    set_key(sim, "one", revoked=True)
    client = ark(gateway)
    created = [client.content_generation.tasks.create(model=MODEL, content=TEXT).id
               for _ in range(10)]
    assert len(set(created)) == 10  # every create succeeded, once
    # The revoked key was tried once, then quarantined and left alone.
    assert requests_by_key(sim) == {"one": 1, "two": 10}
    assert {owner_key(sim, task_id) for task_id in created} == {"two"}
    assert key_state(gateway, "one") == "quarantined"
    assert key_state(gateway, "two") == "healthy"
    assert metric(gateway, "seedance_gateway_create_failovers_total", upstream="ark",
                  reason="key_rejected") == 1
    # Its tasks are followed with the key that made them.
    assert client.content_generation.tasks.get(task_id=created[0]).id == created[0]


def test_a_quarantined_key_is_skipped_until_a_probe_brings_it_back(
    start_simulator: SimulatorFactory, start_gateway: GatewayFactory
) -> None:
    sim = sim_of(start_simulator, "one", "two")
    gateway = start(start_gateway,
                    upstream("ark", sim.url, "one", "two", key_probe_interval=0.3))
    set_key(sim, "one", revoked=True)
    assert all(create(gateway).status_code == 200 for _ in range(2))
    assert requests_by_key(sim)["one"] == 1
    # Probes keep finding it refused: it stays out, however many creates come.
    wait_until(lambda: probes_by_key(sim)["one"] >= 2)
    assert all(create(gateway).status_code == 200 for _ in range(6))
    assert requests_by_key(sim) == {"one": 1, "two": 8}
    assert key_state(gateway, "one") == "quarantined"
    assert probes_by_key(sim)["two"] == 0  # only quarantined keys are probed

    set_key(sim, "one")  # the account is fixed upstream
    wait_until(lambda: key_state(gateway, "one") == "healthy")
    assert all(create(gateway).status_code == 200 for _ in range(4))
    assert requests_by_key(sim) == {"one": 3, "two": 10}


def test_every_key_quarantined_is_a_502_without_a_call(start_simulator: SimulatorFactory,
                                                       start_gateway: GatewayFactory) -> None:
    sim = sim_of(start_simulator, "one", "two")
    gateway = start(start_gateway, upstream("ark", sim.url, "one", "two"))
    set_key(sim, "one", revoked=True)
    set_key(sim, "two", revoked=True)
    for _ in range(2):
        first = create(gateway)
        assert first.status_code == 502
        assert first.json()["error"]["code"] == "UpstreamKeyRejected"
    assert requests_by_key(sim) == {"one": 1, "two": 1}
    again = create(gateway)
    assert again.status_code == 502 and again.json()["error"]["code"] == "UpstreamKeyRejected"
    assert requests_by_key(sim) == {"one": 1, "two": 1}


# --- a key rate limited: cooldown --------------------------------------------------------


def test_a_429_rests_that_key_for_its_retry_after(start_simulator: SimulatorFactory,
                                                 start_gateway: GatewayFactory) -> None:
    sim = sim_of(start_simulator, "one", "two")
    # The configured cooldown is long: only the answer's Retry-After can end it early.
    gateway = start(start_gateway, upstream("ark", sim.url, "one", "two", key_cooldown=600))
    set_key(sim, "one", retry_after=2)
    limited_at = time.monotonic()
    assert all(create(gateway).status_code == 200 for _ in range(6))
    assert requests_by_key(sim) == {"one": 1, "two": 6}
    assert key_state(gateway, "one") == "cooldown"
    assert metric(gateway, "seedance_gateway_create_failovers_total", upstream="ark",
                  reason="rate_limited") == 1

    set_key(sim, "one")
    time.sleep(max(0.0, limited_at + 2.2 - time.monotonic()))
    assert all(create(gateway).status_code == 200 for _ in range(4))
    assert requests_by_key(sim) == {"one": 3, "two": 8}
    assert key_state(gateway, "one") == "healthy"


def test_every_key_resting_is_a_429_with_retry_after(start_simulator: SimulatorFactory,
                                                    start_gateway: GatewayFactory) -> None:
    sim = sim_of(start_simulator, "one")
    gateway = start(start_gateway, upstream("ark", sim.url, "one"))
    set_key(sim, "one", retry_after=30)
    first = create(gateway)  # Ark's own 429, forwarded
    assert first.status_code == 429 and first.headers["retry-after"] == "30"
    again = create(gateway)  # the gateway knows: no call
    assert again.status_code == 429
    assert again.json()["error"]["code"] == "UpstreamRateLimited"
    assert 28 <= int(again.headers["retry-after"]) <= 30
    assert requests_by_key(sim) == {"one": 1}


# --- another upstream serving the model --------------------------------------------------


@pytest.mark.filterwarnings("ignore:The Sora API:DeprecationWarning")
def test_when_an_upstream_has_no_healthy_key_the_next_by_priority_takes_the_create(
    start_simulator: SimulatorFactory, start_gateway: GatewayFactory
) -> None:
    own, near, far = (sim_of(start_simulator, k) for k in ("one", "two", "three"))
    gateway = start(
        start_gateway, upstream("ark", own.url, "one"),
        upstream("far", far.url, "three", preset="byteplus", priority=20),
        upstream("near", near.url, "two", preset="byteplus", priority=10))
    set_key(own, "one", revoked=True)
    created = create(gateway)
    assert created.status_code == 200, created.text
    [sent] = httpx.get(near.url + "/_sim/requests").json()
    assert '"model":"dreamina-seedance-2-0-260128"' in sent["body"]  # near's id for it
    assert requests_by_key(far) == {}
    assert metric(gateway, "seedance_gateway_create_failovers_total", upstream="ark",
                  reason="key_rejected") == 1

    # An OpenAI client: sora-2 (the fast model) goes to near too, and stays followed there.
    sdk = OpenAI(base_url=gateway.url + "/v1", api_key=FAKE_ALICE_KEY, max_retries=0,
                 timeout=20)
    video = sdk.videos.create_and_poll(model="sora-2", prompt="a paper boat",
                                       size="1280x720", seconds="4")
    assert video.status == "completed" and video.model == "sora-2"
    assert owner_key(near, video.id) == "two"
    assert sdk.videos.download_content(video.id).read()[4:8] == b"ftyp"
    assert requests_by_key(own) == {"one": 1}  # quarantined: never tried again


def test_a_stand_in_whose_limits_refuse_the_body_is_skipped(
    start_simulator: SimulatorFactory, start_gateway: GatewayFactory
) -> None:
    own, reseller, backup = (sim_of(start_simulator, k) for k in ("one", "two", "three"))
    gateway = start(
        start_gateway, upstream("ark", own.url, "one"),
        upstream("reseller", reseller.url, "two", preset="wisgate", priority=1),
        upstream("backup", backup.url, "three", preset="byteplus", priority=2))
    set_key(own, "one", revoked=True)
    # 4:3 is not one of the reseller's ratios: backup takes it.
    assert create(gateway, ratio="4:3", duration=5).status_code == 200
    assert (requests_by_key(reseller), requests_by_key(backup)) == ({}, {"three": 1})
    # 16:9 for 5 s suits the reseller, under its own name for the model.
    assert create(gateway, ratio="16:9", duration=5).status_code == 200
    [sent] = httpx.get(reseller.url + "/_sim/requests").json()
    assert '"model":"doubao-seedance-2.0"' in sent["body"]


def test_a_refused_connection_moves_the_create_to_the_next_upstream(
    start_simulator: SimulatorFactory, start_gateway: GatewayFactory
) -> None:
    backup = sim_of(start_simulator, "two")
    closed = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    gateway = start(start_gateway, upstream("ark", closed, "one"),
                    upstream("backup", backup.url, "two", priority=1))
    for _ in range(3):
        created = create(gateway)
        assert created.status_code == 200, created.text
    assert requests_by_key(backup) == {"two": 3}
    assert metric(gateway, "seedance_gateway_create_failovers_total", upstream="ark",
                  reason="unreachable") == 3
    assert key_state(gateway, "one") == "healthy"  # the key did nothing wrong


# --- never twice once it may exist --------------------------------------------------------


@pytest.mark.parametrize("fault", ["5xx", "timeout"])
def test_a_create_that_may_exist_is_never_sent_again(
    fault: str, start_simulator: SimulatorFactory, start_gateway: GatewayFactory
) -> None:
    """A guard: a second key and a second upstream stand ready, and must not be used."""
    sim = sim_of(start_simulator, "one", "two", error_rate=1.0 if fault == "5xx" else 0.0,
                 latency=2.0 if fault == "timeout" else 0.0)
    backup = sim_of(start_simulator, "three")
    gateway = start(start_gateway, upstream("ark", sim.url, "one", "two",
                                            timeouts={"read": 0.3}),
                    upstream("backup", backup.url, "three", priority=1))
    answer = create(gateway)
    assert answer.status_code == (500 if fault == "5xx" else 504)
    assert answer.headers["x-should-retry"] == "false"
    assert sum(requests_by_key(sim).values()) == 1
    assert requests_by_key(backup) == {}
    for reason in ("rate_limited", "key_rejected", "unreachable"):
        assert metric(gateway, "seedance_gateway_create_failovers_total", reason=reason) == 0


# --- the creating key, always -----------------------------------------------------------


@pytest.mark.filterwarnings("ignore:The Sora API:DeprecationWarning")
def test_polls_cancels_and_downloads_use_the_creating_key_even_when_quarantined(
    start_simulator: SimulatorFactory, start_gateway: GatewayFactory, tmp_path: Path,
    leak_trap: LeakTrap
) -> None:
    sim = sim_of(start_simulator, "one", "two", delay=0.3)
    ups = upstream("ark", sim.url, "one", "two")
    gateway = start(start_gateway, ups)
    sdk = OpenAI(base_url=gateway.url + "/v1", api_key=FAKE_ALICE_KEY, max_retries=0,
                 timeout=20)
    videos = [sdk.videos.create(model="sora-2", prompt="a kite") for _ in range(2)]
    on_one = next(v.id for v in videos if owner_key(sim, v.id) == "one")
    kept_id = create(gateway).json()["id"]
    assert owner_key(sim, kept_id) == "one"  # turns: one, two, one

    set_key(sim, "one", revoked=True)
    for _ in range(2):  # two's turn, then one's: refused and quarantined on the way
        assert create(gateway).status_code == 200
    assert requests_by_key(sim)["one"] == 3
    set_key(sim, "one")  # Ark takes it again; the gateway will know at the next probe
    assert key_state(gateway, "one") == "quarantined"
    before = requests_by_key(sim, "GET", f"{NATIVE}/{on_one}")
    assert sdk.videos.retrieve(on_one).id == on_one
    wait_until(lambda: sdk.videos.retrieve(on_one).status == "completed")
    assert sdk.videos.download_content(on_one).read()[4:8] == b"ftyp"
    polls = requests_by_key(sim, "GET", f"{NATIVE}/{on_one}") - before
    assert set(polls) == {"one"} and polls["one"] >= 1
    deleted = httpx.delete(f"{gateway.url}{NATIVE}/{on_one}", headers=ALICE)
    assert deleted.status_code == 200, deleted.text
    assert requests_by_key(sim, "DELETE", f"{NATIVE}/{on_one}") == {"one": 1}
    assert key_state(gateway, "one") == "quarantined"  # still: it took no create

    # A gateway whose config no longer has the key says so, on the same store.
    ups_without_one = upstream("ark", sim.url, "two")
    config = gateway_config("http://unused.invalid", store_url=f"sqlite:///{tmp_path}/tasks.db",
                            extra={"upstreams": [ups_without_one]}, env=ENV)
    later = ServerThread(RecordingApp(create_app(config), leak_trap)).start()
    try:
        gone = httpx.get(f"{later.url}/v1/videos/{kept_id}", headers=ALICE)
        assert gone.status_code == 410 and gone.json()["error"]["code"] == "UpstreamKeyRemoved"
    finally:
        later.stop()


# --- least busy ---------------------------------------------------------------------------


def test_concurrent_creates_spread_over_the_keys(start_simulator: SimulatorFactory,
                                                start_gateway: GatewayFactory) -> None:
    sim = sim_of(start_simulator, "one", "two", "three", latency=0.3)
    gateway = start(start_gateway, upstream("ark", sim.url, "one", "two", "three"))
    with ThreadPoolExecutor(9) as pool:
        answers = list(pool.map(lambda _: create(gateway).status_code, range(9)))
    assert answers == [200] * 9
    assert requests_by_key(sim) == {"one": 3, "two": 3, "three": 3}


def test_creates_avoid_a_key_busy_with_slow_calls(start_simulator: SimulatorFactory,
                                                  start_gateway: GatewayFactory) -> None:
    """Round robin would send every other create to the busy key; least-busy sends none."""
    sim = sim_of(start_simulator, "one", "two")
    gateway = start(start_gateway, upstream("ark", sim.url, "one", "two"))
    made = [create(gateway).json()["id"] for _ in range(5)]
    on_one = [task_id for task_id in made if owner_key(sim, task_id) == "one"]
    assert len(on_one) == 3  # turns: one, two, one, two, one
    httpx.post(sim.url + "/_sim/faults", json={"latency": 1.0}).raise_for_status()
    # Three slow polls (of three tasks: polls of one task are shared) keep key one busy.
    polls = [threading.Thread(target=httpx.get, args=(f"{gateway.url}{NATIVE}/{task_id}",),
                              kwargs={"headers": ALICE, "timeout": 20}) for task_id in on_one]
    for poll in polls:
        poll.start()
    wait_until(lambda: sum(requests_by_key(sim, "GET", f"{NATIVE}/{task_id}")["one"]
                           for task_id in on_one) == 3)
    with ThreadPoolExecutor(3) as pool:
        answers = list(pool.map(lambda _: create(gateway).status_code, range(3)))
    for poll in polls:
        poll.join()
    assert answers == [200] * 3
    assert requests_by_key(sim) == {"one": 3, "two": 2 + 3}
