"""The webhook deliverer against its own outbox and hostile receivers: delivered rows are pruned
after the keep period (failed ones stay), and a receiver that hangs, cuts the connection or
redirects costs its own message a retry while everyone else's keep flowing."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import aiohttp
import httpx
import orjson
import pytest
from standardwebhooks import Webhook

from gateway.services import Services
from gateway.store.followups import KEEP_SECONDS, WebhookDelivery, WebhookState
from gateway.store.sqlite import SQLiteTaskStore
from gateway.webhooks.deliverer import PRUNE_EVERY, Deliverer
from tests.conftest import GatewayFactory, SimulatorFactory
from tests.leaks import TrapStream
from tests.servers import gateway_config
from tests.test_webhooks import VIDEO, Receiver, key_with_webhook, webhook_gateway

# ------------------------------------------------------------------ pruning delivered rows


def message(name: str, state: WebhookState, at: float) -> WebhookDelivery:
    return WebhookDelivery(message_id=name, owner="kim", task_id="cgt-" + name, kind="event",
                           url="https://hooks.example.com/x", body=b"{}", created_at=at - 5,
                           next_at=at, state=state)


@pytest.mark.anyio
async def test_delivered_rows_older_than_the_keep_period_are_pruned(tmp_path: Path) -> None:
    store = SQLiteTaskStore(str(tmp_path / "t.db"))
    await store.open()
    now = [2_000_000_000.0]
    config = gateway_config("http://127.0.0.1:9/api/v3", store_url="sqlite:///unused")
    deliverer = Deliverer(cast(Services, SimpleNamespace(
        config=config, store=store, clock=lambda: now[0])))
    old = now[0] - KEEP_SECONDS - 60
    for row in (message("old-delivered", "delivered", old),
                message("young-delivered", "delivered", now[0] - KEEP_SECONDS + 600),
                message("old-failed", "failed", old),
                message("waiting", "pending", now[0] + 10 * KEEP_SECONDS)):
        assert await store.enqueue_webhook(row)

    def kept() -> set[str]:
        return {r[0] for r in store._conn.execute("SELECT message_id FROM webhook_outbox")}

    try:
        async with aiohttp.ClientSession() as session:
            await deliverer.tick(session)
            assert kept() == {"young-delivered", "old-failed", "waiting"}
            # Half an hour on, the young row has outlived the keep period too, but a replica
            # prunes once per PRUNE_EVERY: it waits for the next turn.
            now[0] += 1800
            await deliverer.tick(session)
            assert kept() == {"young-delivered", "old-failed", "waiting"}
            now[0] += PRUNE_EVERY
            await deliverer.tick(session)
            assert kept() == {"old-failed", "waiting"}
        assert [d.message_id for d in await store.failed_webhooks(10)] == ["old-failed"]
    finally:
        await store.close()


# ------------------------------------------------------------------ hostile receivers


class HostileReceiver:
    """A webhook endpoint on raw sockets, one request per connection: the n-th request gets
    `behaviours[n]`, then 200. `hang` never answers (until the sender gives up and closes),
    `cut-head` / `cut-body` close the connection mid-response, `redirect` answers 302."""

    def __init__(self, behaviours: list[str]) -> None:
        self.behaviours = list(behaviours)
        self.requests: list[tuple[str, dict[str, str], bytes, float]] = []
        self.hang_ended: list[float] = []  # when the sender closed a hung connection
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}/hook"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                data += chunk
            head, body = data.split(b"\r\n\r\n", 1)
            lines = head.decode().split("\r\n")
            headers = dict(line.split(": ", 1) for line in lines[1:])
            headers = {k.lower(): v for k, v in headers.items()}
            while len(body) < int(headers.get("content-length", 0)):
                body += conn.recv(65536)
            self.requests.append((lines[0].split()[1], headers, body, time.monotonic()))
            behaviour = self.behaviours.pop(0) if self.behaviours else "ok"
            if behaviour == "hang":
                conn.settimeout(60)
                while conn.recv(1024):  # until the sender's timeout closes it
                    pass
                self.hang_ended.append(time.monotonic())
            elif behaviour == "cut-head":
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Ty")
            elif behaviour == "cut-body":
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"par")
            elif behaviour == "redirect":
                elsewhere = self.url.replace("/hook", "/elsewhere")
                conn.sendall(b"HTTP/1.1 302 Found\r\nLocation: " + elsewhere.encode()
                             + b"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            else:
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n"
                             b"Connection: close\r\n\r\n")

    def wait(self, count: int, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.requests) < count:
            assert time.monotonic() < deadline, f"{len(self.requests)} of {count} received"
            time.sleep(0.02)

    def close(self) -> None:
        self.listener.close()


def attempts_logged(log_stream: TrapStream, message_id: str) -> list[dict[str, Any]]:
    found = []
    for line in list(log_stream.lines):
        if "webhook_attempt" in line and message_id in line:
            entry = orjson.loads(line)
            if entry.get("event") == "webhook_attempt":
                found.append(entry)
    return found


# webhooks.timeout: long enough to see another key's event delivered while one attempt hangs
# (about 2 s from create to delivery on a loaded 2-core machine).
TIMEOUT = 6.0


def test_hostile_receivers_cost_a_retry_each_and_never_hold_up_others(
    start_simulator: SimulatorFactory, start_gateway: GatewayFactory, tmp_path: Path,
    log_stream: TrapStream,
) -> None:
    sim = start_simulator(delay=0.2)
    gateway = webhook_gateway(start_gateway, sim, f"sqlite:///{tmp_path}/t.db",
                              timeout=TIMEOUT, retry_schedule=[0.3] * 6)
    hostile = HostileReceiver(["hang", "cut-head", "cut-body", "redirect"])
    healthy = Receiver()
    healthy.server.start()
    try:
        kim, kim_secret = key_with_webhook(gateway, hostile.url, "kim")
        lee, _ = key_with_webhook(gateway, healthy.url, "lee")
        httpx.post(f"{gateway.url}/v1/videos", headers={"Authorization": f"Bearer {kim}"},
                   json=VIDEO).raise_for_status()
        hostile.wait(1)  # kim's first attempt now hangs for TIMEOUT seconds
        created = time.monotonic()
        httpx.post(f"{gateway.url}/v1/videos", headers={"Authorization": f"Bearer {lee}"},
                   json=VIDEO).raise_for_status()
        _, _, arrived = healthy.wait(1)[0]
        # Lee's event went out while kim's attempt still hung (the deliverer did not wait).
        assert not hostile.hang_ended, arrived - created
        hostile.wait(5, timeout=TIMEOUT + 20)
        time.sleep(0.6)
        assert len(hostile.requests) == 5  # delivered by the fifth: no more attempts
        assert [path for path, *_ in hostile.requests] == ["/hook"] * 5  # 302 not followed
        ids = {headers["webhook-id"] for _, headers, _, _ in hostile.requests}
        assert len(ids) == 1
        for _, headers, body, _ in hostile.requests:
            assert Webhook(kim_secret).verify(body, headers)["type"] == "video.completed"
        hang_at, after_hang = hostile.requests[0][3], hostile.requests[1][3]
        assert after_hang - hang_at >= TIMEOUT - 0.2  # the attempt's own timeout ended it
        logged = attempts_logged(log_stream, ids.pop())
        assert [e["outcome"] for e in logged] == ["retry"] * 4 + ["delivered"]
        errors = [e["error"] for e in logged]
        assert all(errors[:4]) and errors[3] == "HTTP 302" and errors[4] is None, errors
        # The deliverer is alive: another message still goes out at once.
        httpx.post(f"{gateway.url}/v1/videos", headers={"Authorization": f"Bearer {lee}"},
                   json=VIDEO).raise_for_status()
        healthy.wait(2)
    finally:
        hostile.close()
        healthy.server.stop()
