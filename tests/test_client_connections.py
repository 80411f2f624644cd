"""Client connections that stall are closed, so they cannot use up the gateway's open files.

Every test runs the real gateway, `python -m gateway serve --config …`, in its own process and
talks to it over raw sockets: silent connections, half-sent heads, one byte after a response,
bodies that stop arriving, and 1,100 silent connections against the open-files limit.
"""

from __future__ import annotations

import functools
import json
import os
import resource
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.leaks import LeakTrap
from tests.servers import FAKE_ALICE_KEY, FAKE_UPSTREAM_KEY, CliProcess, free_port

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="sets the gateway's RLIMIT_NOFILE before it starts")

HEADER_TIMEOUT = 2.0
KEEPALIVE_TIMEOUT = 1  # shorter than the head deadline, so the two can be told apart
BODY_TIMEOUT = 1.0
SLACK = 0.8  # scheduling on a busy 2-CPU machine
ENV = {"UPSTREAM_KEY": FAKE_UPSTREAM_KEY, "ALICE_KEY": FAKE_ALICE_KEY}
AUTH = f"Authorization: Bearer {FAKE_ALICE_KEY}\r\n".encode()
TASKS = "/api/v3/contents/generations/tasks"
SILENT = 1100
CREATE_BODIES = {
    TASKS: {"model": "doubao-seedance-2-0-260128",
            "content": [{"type": "text", "text": "a slow upload"}]},
    "/v1/videos": {"model": "doubao-seedance-2-0-260128", "prompt": "a slow upload"},
}


class GatewayProcess(CliProcess):
    """`python -m gateway serve`, started under an open-files limit `(soft, hard)` the way a
    service manager would (CliProcess's own constructor takes no preexec_fn)."""

    def __init__(self, config: Path, *, log: Path, nofile: tuple[int, int]) -> None:
        self.trap = LeakTrap()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log
        self._log = log.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gateway", "serve", "--config", str(config),
             "--port", str(self.port)],
            stdout=self._log, stderr=subprocess.STDOUT, env={**os.environ, **ENV},
            preexec_fn=functools.partial(resource.setrlimit, resource.RLIMIT_NOFILE, nofile),
        )


def write_config(tmp_path: Path, upstream_url: str, **server: Any) -> Path:
    data = {  # secrets are env references, like a team's config
        "server": {"host": "127.0.0.1", **server},
        "upstreams": [{"name": "ark", "base_url": upstream_url,
                       "keys": [{"name": "main", "secret": "${UPSTREAM_KEY}"}]}],
        "client_keys": [{"name": "alice", "secret": "${ALICE_KEY}"}],
        "store": {"url": f"sqlite:///{tmp_path}/tasks.db"},
        "tracker": {"enabled": False},
    }
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def simulator_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    sim = CliProcess(["simulate", "--port", str(port), "--upstream-key", FAKE_UPSTREAM_KEY,
                      "--delay", "0.2"], port=port,
                     log=tmp_path_factory.mktemp("sim") / "sim.log")
    try:
        sim.wait_ready("/_sim/faults")
        yield sim.url + "/api/v3"
    finally:
        sim.stop()


@pytest.fixture(scope="module")
def gateway(simulator_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[CliProcess]:
    tmp_path = tmp_path_factory.mktemp("gateway")
    config = write_config(tmp_path, simulator_url, header_timeout=HEADER_TIMEOUT,
                          keepalive_timeout=KEEPALIVE_TIMEOUT, body_timeout=BODY_TIMEOUT)
    port = free_port()
    process = CliProcess(["serve", "--config", str(config), "--port", str(port)], port=port,
                         log=tmp_path / "gateway.log", env=ENV)
    try:
        process.wait_ready()
        yield process
    finally:
        process.stop()


class RawConnection:
    """A client connection driven byte by byte; responses are read one after another."""

    def __init__(self, gateway: CliProcess) -> None:
        self.sock = socket.create_connection(("127.0.0.1", gateway.port), timeout=5)
        self.buffer = b""

    def __enter__(self) -> RawConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _receive(self, timeout: float) -> bool:
        """False once the gateway has closed the connection."""
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(65536)
        except ConnectionResetError:
            return False
        self.buffer += data
        return bool(data)

    def response(self, timeout: float = 10) -> tuple[int, dict[str, str], bytes]:
        """The next response (status, headers, body); the gateway always sends a length."""
        while b"\r\n\r\n" not in self.buffer:
            if not self._receive(timeout):
                raise ConnectionError(f"closed without an answer: {self.buffer[:200]!r}")
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        status_line, *lines = head.decode("latin-1").split("\r\n")
        headers = {name.strip().lower(): value.strip()
                   for name, _, value in (line.partition(":") for line in lines)}
        length = int(headers["content-length"])
        while len(self.buffer) < length:
            if not self._receive(timeout):
                raise ConnectionError("closed in the middle of a body")
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        return int(status_line.split()[1]), headers, body

    def closed_after(self, start: float, limit: float) -> tuple[float | None, bytes]:
        """Seconds from `start` until the gateway closed the connection (None if it was still
        open `limit` seconds after `start`), and whatever it sent that was not read yet."""
        while (left := start + limit - time.monotonic()) > 0:
            try:
                if not self._receive(left):
                    return time.monotonic() - start, self.buffer
            except TimeoutError:
                break
        return None, self.buffer


def request_head(method: str, path: str, *extra: bytes) -> bytes:
    return b"".join([f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n".encode(), *extra,
                     b"\r\n"])


def test_a_silent_connection_is_closed_after_header_timeout(gateway: CliProcess) -> None:
    start = time.monotonic()
    with RawConnection(gateway) as silent:
        elapsed, sent = silent.closed_after(start, HEADER_TIMEOUT + 3)
    assert elapsed is not None, "a connection that sent nothing was still open"
    assert HEADER_TIMEOUT - 0.2 < elapsed < HEADER_TIMEOUT + SLACK
    assert sent == b""


def test_a_half_sent_head_is_closed_after_header_timeout_even_if_bytes_trickle(
    gateway: CliProcess,
) -> None:
    start = time.monotonic()
    elapsed = None
    with RawConnection(gateway) as slowloris:
        slowloris.send(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        while elapsed is None and time.monotonic() - start < HEADER_TIMEOUT + 3:
            try:
                slowloris.send(b"z")  # a byte every 0.25 s
            except OSError:
                elapsed = time.monotonic() - start
                break
            if slowloris.closed_after(time.monotonic(), 0.25)[0] is not None:
                elapsed = time.monotonic() - start
        sent = slowloris.buffer
    assert elapsed is not None, "a connection trickling half a head was still open"
    assert HEADER_TIMEOUT - 0.2 < elapsed < HEADER_TIMEOUT + SLACK
    assert sent == b""


def test_an_idle_keep_alive_connection_is_closed_after_keepalive_timeout(
    gateway: CliProcess,
) -> None:
    with RawConnection(gateway) as client:
        client.send(request_head("GET", "/healthz"))
        status, headers, _ = client.response()
        assert status == 200 and headers.get("connection") != "close"
        elapsed, sent = client.closed_after(time.monotonic(), HEADER_TIMEOUT + 3)
    assert elapsed is not None, "an idle keep-alive connection was still open"
    assert KEEPALIVE_TIMEOUT - 0.2 < elapsed < KEEPALIVE_TIMEOUT + SLACK
    assert sent == b""


def test_one_byte_after_a_response_does_not_keep_the_connection_open(
    gateway: CliProcess,
) -> None:
    with RawConnection(gateway) as client:
        client.send(request_head("GET", "/healthz"))
        assert client.response()[0] == 200
        answered = time.monotonic()
        client.send(b"G")  # cancels uvicorn's keep-alive timer; the head deadline remains
        elapsed, sent = client.closed_after(answered, HEADER_TIMEOUT + 3)
    assert elapsed is not None, "a connection that sent one byte after a response stayed open"
    assert HEADER_TIMEOUT - 0.3 < elapsed < HEADER_TIMEOUT + SLACK
    assert sent == b""


def test_a_slow_head_is_served_if_complete_within_the_deadline_and_cut_if_not(
    gateway: CliProcess,
) -> None:
    """The deadline counts from the connection opening (or the previous response), not from
    the last byte: the same pieces at the same pace are served or cut by when they end."""
    head = request_head("GET", TASKS + "?page_size=5", AUTH)
    step = len(head) // 4 + 1
    pieces = [head[i:i + step] for i in range(0, len(head), step)]
    gap = (HEADER_TIMEOUT - 0.6) / (len(pieces) - 1)  # the last piece lands 0.6 s early
    with RawConnection(gateway) as on_time, RawConnection(gateway) as late:
        start = time.monotonic()
        for i, piece in enumerate(pieces):
            on_time.send(piece)
            late.send(piece if i < len(pieces) - 1 else piece[:-2])
            if i < len(pieces) - 1:
                time.sleep(gap)
        status, _, body = on_time.response()
        served_in = time.monotonic() - start
        assert status == 200, body
        assert json.loads(body) == {"items": [], "total": 0}
        # The keep-alive connection is usable again, under a fresh deadline.
        on_time.send(request_head("GET", "/healthz"))
        assert on_time.response()[0] == 200

        time.sleep(max(0.0, start + HEADER_TIMEOUT + 0.3 - time.monotonic()))
        try:
            late.send(b"\r\n")  # completes the head, but after the deadline
        except OSError:
            pass
        elapsed, sent = late.closed_after(start, HEADER_TIMEOUT + 3)
    assert served_in < HEADER_TIMEOUT
    assert elapsed is not None and sent == b"", f"a late head was answered: {sent[:200]!r}"


def test_pipelined_requests_slower_than_the_head_deadline_are_all_answered(
    gateway: CliProcess, simulator_url: str
) -> None:
    """Heads already parsed (pipelined) get no deadline while they wait or run; the idle
    connection is then closed after keepalive_timeout."""
    auth = {"Authorization": f"Bearer {FAKE_ALICE_KEY}"}
    created = httpx.post(gateway.url + TASKS, headers=auth, json=CREATE_BODIES[TASKS])
    assert created.status_code == 200, created.text
    task = f"{TASKS}/{created.json()['id']}"
    faults = simulator_url.removesuffix("/api/v3") + "/_sim/faults"
    httpx.post(faults, json={"latency": HEADER_TIMEOUT + 0.5}).raise_for_status()
    try:
        with RawConnection(gateway) as client:
            client.send(request_head("GET", "/healthz") + request_head("GET", task, AUTH)
                        + request_head("GET", "/healthz"))
            statuses = [client.response()[0] for _ in range(3)]
            elapsed, _ = client.closed_after(time.monotonic(), HEADER_TIMEOUT + 3)
    finally:
        httpx.post(faults, json={"latency": 0}).raise_for_status()
    assert statuses == [200, 200, 200]
    assert elapsed is not None and elapsed < KEEPALIVE_TIMEOUT + SLACK


def test_with_two_workers_every_silent_connection_is_closed(
    simulator_url: str, tmp_path: Path
) -> None:
    """The deadline reaches each worker process (the uvicorn config is pickled to them)."""
    config = write_config(tmp_path, simulator_url, header_timeout=HEADER_TIMEOUT)
    port = free_port()
    gateway = CliProcess(["serve", "--config", str(config), "--port", str(port), "--workers", "2"],
                         port=port, log=tmp_path / "gateway.log", env=ENV)
    try:
        gateway.wait_ready()
        start = time.monotonic()
        silent = [RawConnection(gateway) for _ in range(8)]
        closed = [connection.closed_after(start, HEADER_TIMEOUT + 3)[0] for connection in silent]
        for connection in silent:
            connection.sock.close()
    finally:
        gateway.stop()
    assert all(c is not None and c < HEADER_TIMEOUT + SLACK for c in closed), closed


def stalled_body(gateway: CliProcess, path: str, body: bytes) -> tuple[float, int, dict[str, Any]]:
    """Sends a request whose body stops half-way; the answer, and how long it took."""
    with RawConnection(gateway) as client:
        client.send(request_head("POST", path, AUTH, b"Content-Type: application/json\r\n",
                                 f"Content-Length: {len(body)}\r\n".encode()))
        client.send(body[:len(body) // 2])
        start = time.monotonic()
        status, headers, answer = client.response()
        elapsed = time.monotonic() - start
        assert headers.get("connection") == "close"
        assert client.closed_after(time.monotonic(), 2)[0] is not None, \
            "the connection stayed open after the 408"
    return elapsed, status, json.loads(answer)


def steady_body(gateway: CliProcess, path: str, body: bytes) -> tuple[int, bytes]:
    """Sends a body in pieces, each gap shorter than body_timeout, the whole longer."""
    with RawConnection(gateway) as client:
        client.send(request_head("POST", path, AUTH, b"Content-Type: application/json\r\n",
                                 f"Content-Length: {len(body)}\r\n".encode()))
        step = len(body) // 4 + 1
        for i in range(0, len(body), step):
            client.send(body[i:i + step])
            time.sleep(BODY_TIMEOUT * 0.6)
        status, _, answer = client.response()
    return status, answer


@pytest.mark.parametrize("path", [TASKS, "/v1/videos"])
def test_a_body_that_stops_arriving_gets_408_in_the_surface_envelope(
    gateway: CliProcess, path: str
) -> None:
    body = json.dumps(CREATE_BODIES[path]).encode()
    status, answer = steady_body(gateway, path, body)
    assert status == 200, answer  # slow is fine as long as it keeps coming

    elapsed, status, error = stalled_body(gateway, path, body)
    assert status == 408
    assert BODY_TIMEOUT - 0.2 < elapsed < BODY_TIMEOUT + SLACK
    assert error["error"]["code"] == "RequestTimeout"
    if path == TASKS:  # Ark's envelope
        assert set(error["error"]) == {"code", "message", "param", "type"}
        assert error["error"]["type"] == "RequestTimeout"
    else:  # OpenAI's
        assert set(error["error"]) == {"message", "type", "param", "code"}
        assert error["error"]["type"] == "invalid_request_error"
        assert error["error"]["param"] is None


def open_silent(port: int, count: int) -> list[socket.socket]:
    """`count` connections that never send a byte; some may not even be accepted."""
    opened = []
    for _ in range(count):
        sock = socket.socket()
        sock.settimeout(2)
        try:
            sock.connect(("127.0.0.1", port))
        except OSError:
            sock.close()
            continue
        opened.append(sock)
    return opened


def serves_within(gateway: CliProcess, seconds: float) -> float:
    """Seconds until /healthz and an authenticated task list both answer 200."""
    start = time.monotonic()
    headers = {"Authorization": f"Bearer {FAKE_ALICE_KEY}"}
    while True:
        left = start + seconds - time.monotonic()
        assert left > 0, f"the gateway did not answer within {seconds} s"
        try:
            with httpx.Client(base_url=gateway.url, timeout=left) as client:
                health = client.get("/healthz")
                listed = client.get(TASKS, headers=headers)
            if health.status_code == 200 and listed.status_code == 200:
                return time.monotonic() - start
        except httpx.HTTPError:
            time.sleep(0.05)


@pytest.fixture
def own_open_files() -> Iterator[None]:
    """This process holds the 1,100 client sockets: its soft limit is raised for the test."""
    need = 4 * SILENT
    saved = soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < need:
        if hard != resource.RLIM_INFINITY and hard < need:
            pytest.skip(f"this process may open only {hard} files")
        resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, saved)


def peak_open_files(pid: int, seconds: float) -> int:
    """The most files `pid` had open, sampled for `seconds`."""
    peak = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        peak = max(peak, len(os.listdir(f"/proc/{pid}/fd")))
        time.sleep(0.02)
    return peak


@pytest.mark.usefixtures("own_open_files")
def test_1100_silent_connections_do_not_stop_the_gateway(
    simulator_url: str, tmp_path: Path
) -> None:
    """Started with a soft limit of 256 (hard 4096): the gateway raises it to the hard one."""
    config = write_config(tmp_path, simulator_url)
    gateway = GatewayProcess(config, log=tmp_path / "gateway.log", nofile=(256, 4096))
    silent: list[socket.socket] = []
    try:
        gateway.wait_ready()
        silent = open_silent(gateway.port, SILENT)
        assert len(silent) == SILENT
        time.sleep(0.5)  # let the gateway accept them all
        assert serves_within(gateway, 2.0) < 2.0
        limit_line = [line for line in gateway.output().splitlines()
                      if "open_files_limit" in line]
        assert len(limit_line) == 1 and '"was":256' in limit_line[0] \
            and '"now":4096' in limit_line[0], limit_line
    finally:
        for sock in silent:
            sock.close()
        gateway.stop()


@pytest.mark.usefixtures("own_open_files")
def test_the_gateway_serves_again_once_silent_connections_at_the_hard_limit_are_closed(
    simulator_url: str, tmp_path: Path
) -> None:
    """A hard limit of 1,024: 1,100 silent connections exhaust it, and the head deadline
    frees the files."""
    config = write_config(tmp_path, simulator_url, header_timeout=1)
    gateway = GatewayProcess(config, log=tmp_path / "gateway.log", nofile=(1024, 1024))
    silent: list[socket.socket] = []
    try:
        gateway.wait_ready()
        silent = open_silent(gateway.port, SILENT)
        assert peak_open_files(gateway.proc.pid, 0.5) >= 1000  # at the limit: it cannot accept
        serves_within(gateway, 6.0)
    finally:
        for sock in silent:
            sock.close()
        gateway.stop()
