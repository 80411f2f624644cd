"""Two `gateway serve` replicas sending one Redis webhook outbox: each message goes out once
(both replicas' trackers see the tasks finish, both deliverers look at the outbox), and a
replica killed -9 while its attempts hang leaves them to the other after the lease."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import yaml
from standardwebhooks import Webhook
from starlette.requests import Request
from starlette.responses import Response

from tests.backends import redis_url, unique_prefix
from tests.conftest import SimulatorFactory
from tests.leaks import CANARY_ADMIN_KEY
from tests.servers import FAKE_ALICE_KEY, FAKE_BOB_KEY, FAKE_UPSTREAM_KEY, CliProcess, free_port
from tests.test_webhooks import FAST_TRACKER, VIDEO, Receiver, key_with_webhook

pytestmark = pytest.mark.e2e

ENV = {"UPSTREAM_KEY": FAKE_UPSTREAM_KEY, "ALICE_KEY": FAKE_ALICE_KEY, "BOB_KEY": FAKE_BOB_KEY,
       "ADMIN_KEY": CANARY_ADMIN_KEY}
LEASE = 3.0  # webhooks.lease: a dead replica's claimed messages go out again after this


class StallingReceiver(Receiver):
    """A Receiver whose answers wait while `stall` is set (the request is recorded first)."""

    def __init__(self) -> None:
        super().__init__()
        self.stall = threading.Event()

    async def hook(self, request: Request) -> Response:
        stalled = self.stall.is_set()
        response = await super().hook(request)
        while stalled and self.stall.is_set():
            await asyncio.sleep(0.02)
        return response


@pytest.fixture
def replicas(tmp_path: Path, start_simulator: SimulatorFactory) -> Iterator[list[CliProcess]]:
    """The simulator and replicas A and B on one Redis prefix, both tracking and delivering."""
    sim = start_simulator(delay=0.3)
    started: list[CliProcess] = []
    for prefix in unique_prefix():
        config = {
            "upstreams": [{"name": "ark", "base_url": sim.url + "/api/v3",
                           "keys": [{"name": "main", "secret": "${UPSTREAM_KEY}"}]}],
            "models": {"aliases": {"sora-2": "doubao-seedance-2-0-fast-260128"}},
            "client_keys": [{"name": "alice", "secret": "${ALICE_KEY}"}],
            "store": {"url": redis_url(prefix)},
            "tracker": FAST_TRACKER,
            "results": {"archive": False},
            # The lease is short so the kill test need not wait a minute; the per-attempt
            # timeout is longer than it, so a hung attempt is still hanging when A dies.
            "webhooks": {"allow_private": True, "tick": 0.05, "lease": LEASE, "timeout": 30.0,
                         "retry_schedule": [0.5, 0.5]},
            "admin": {"keys": [{"name": "ops", "secret": "${ADMIN_KEY}"}]},
        }
        path = tmp_path / "config.yaml"
        path.write_text(yaml.safe_dump(config))
        try:
            for name in ("a", "b"):
                port = free_port()
                started.append(CliProcess(["serve", "--config", str(path), "--port", str(port)],
                                          port=port, log=tmp_path / f"{name}.log", env=ENV))
            for replica in started:
                replica.wait_ready("/readyz")
            yield started
        finally:
            for replica in started:
                replica.stop()


def attempts(replica: CliProcess) -> list[dict[str, Any]]:
    """The replica's logged webhook attempts."""
    found = []
    for line in replica.output().splitlines():
        if '"webhook_attempt"' in line:
            entry = orjson.loads(line[line.index("{"):])
            if entry.get("event") == "webhook_attempt":
                found.append(entry)
    return found


def create_tasks(replicas: list[CliProcess], key: str, count: int) -> list[str]:
    auth = {"Authorization": f"Bearer {key}"}
    ids = []
    for n in range(count):
        created = httpx.post(replicas[n % 2].url + "/v1/videos", headers=auth, json=VIDEO,
                             timeout=10)
        assert created.status_code == 200, created.text
        ids.append(created.json()["id"])
    return ids


def test_two_replicas_deliver_each_event_exactly_once(replicas: list[CliProcess]) -> None:
    a, b = replicas
    receiver = Receiver()
    receiver.server.start()
    try:
        key, secret = key_with_webhook(a, receiver.url)  # stored in Redis: B knows it too
        ids = create_tasks(replicas, key, 20)
        receiver.wait(20, timeout=30)
        time.sleep(1.0)  # anything sent twice would have arrived by now
        events = [(headers, Webhook(secret).verify(body, headers))
                  for headers, body, _ in receiver.received]
    finally:
        receiver.server.stop()
    assert sorted(event["data"]["id"] for _, event in events) == sorted(ids)
    assert {event["type"] for _, event in events} == {"video.completed"}
    per_id = Counter(headers["webhook-id"] for headers, _ in events)
    assert len(per_id) == 20 and set(per_id.values()) == {1}
    delivered = Counter(e["message_id"] for r in (a, b) for e in attempts(r)
                        if e["outcome"] == "delivered")
    assert delivered == per_id  # one replica's attempt each, and no failed attempts at all
    split = [sum(e["outcome"] == "delivered" for e in attempts(r)) for r in (a, b)]
    print(f"delivered by A, B: {split}")


def test_a_killed_replicas_claimed_messages_go_out_from_the_other_after_the_lease(
    replicas: list[CliProcess],
) -> None:
    a, b = replicas
    receiver = StallingReceiver()
    receiver.server.start()
    try:
        key, secret = key_with_webhook(a, receiver.url)
        receiver.stall.set()
        os.kill(b.proc.pid, signal.SIGSTOP)  # only A claims while B is frozen
        try:
            ids = [httpx.post(a.url + "/v1/videos", headers={"Authorization": f"Bearer {key}"},
                              json=VIDEO, timeout=10).json()["id"] for _ in range(3)]
            receiver.wait(3, timeout=15)  # A's attempts, all hanging
            killed_at = time.monotonic()
            os.kill(a.proc.pid, signal.SIGKILL)
            a.proc.wait(timeout=5)
            receiver.stall.clear()
        finally:
            os.kill(b.proc.pid, signal.SIGCONT)
        receiver.wait(6, timeout=LEASE + 15)
        time.sleep(0.5)
        received = list(receiver.received)
    finally:
        receiver.server.stop()
    assert len(received) == 6
    hung, resent = received[:3], received[3:]
    assert {h["webhook-id"] for h, _, _ in hung} == {h["webhook-id"] for h, _, _ in resent}
    events = [Webhook(secret).verify(body, headers) for headers, body, _ in resent]
    assert sorted(event["data"]["id"] for event in events) == sorted(ids)
    first_at = min(at for _, _, at in hung)
    # B waited for A's lease (taken just before its first attempt) to run out.
    assert min(at for _, _, at in resent) - first_at >= LEASE - 0.3
    assert all(at > killed_at for _, _, at in resent)
    assert [e["outcome"] for e in attempts(b)] == ["delivered"] * 3
    assert not attempts(a)  # A died before any of its attempts ended
