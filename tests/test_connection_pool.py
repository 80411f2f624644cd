"""The upstream connection pool over real sockets on 127.0.0.1.

Most servers here are raw `asyncio.start_server` servers written in the test, so every byte on
the wire is under the test's control; one test runs against a real uvicorn server.
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from typing import Any

import pytest

from gateway import connection_pool as cp
from gateway.connection_pool import (
    ConnectFailed,
    ConnectionBroken,
    ConnectionPool,
    ConnectTimeout,
    PoolTimeout,
    RawResponse,
    ResponseTimeout,
)
from tests.servers import ServerThread

pytestmark = pytest.mark.anyio

Handler = Callable[["RawServer", asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


# --------------------------------------------------------------------------- raw test servers


def ok(body: bytes = b"{}", *headers: str, status: str = "200 OK") -> bytes:
    """A Content-Length response."""
    lines = "".join(f"{h}\r\n" for h in headers)
    return (f"HTTP/1.1 {status}\r\n{lines}Content-Length: {len(body)}\r\n\r\n").encode() + body


def chunked(*chunks: bytes, headers: tuple[str, ...] = ()) -> bytes:
    lines = "".join(f"{h}\r\n" for h in headers)
    out = f"HTTP/1.1 200 OK\r\n{lines}Transfer-Encoding: chunked\r\n\r\n".encode()
    for chunk in chunks:
        out += b"%x\r\n%s\r\n" % (len(chunk), chunk)
    return out + b"0\r\n\r\n"


async def read_request(reader: asyncio.StreamReader) -> bytes | None:
    """One request (head + Content-Length body), or None when the client closed the connection."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return head + (await reader.readexactly(length) if length else b"")


class RawServer:
    """Counts connections and records requests; `handler` runs once per accepted connection."""

    def __init__(self, handler: Handler) -> None:
        self._handler = handler
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._writers: list[asyncio.StreamWriter] = []
        self.port = 0
        self.accepted = 0  # connections accepted so far
        self.open = 0  # connections open right now
        self.max_open = 0
        self.in_flight = 0  # requests read and not yet answered (maintained by handlers)
        self.requests: list[bytes] = []
        self.client_closed = 0  # connections on which the server read EOF from the client
        self.errors: list[BaseException] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._on_connect, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _on_connect(self, reader: asyncio.StreamReader,
                          writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.append(writer)
        self.accepted += 1
        self.open += 1
        self.max_open = max(self.max_open, self.open)
        try:
            await self._handler(self, reader, writer)
        except asyncio.CancelledError:
            pass
        except Exception as exc:  # a broken test server must fail the test, not hide
            self.errors.append(exc)
        finally:
            self.open -= 1
            writer.close()
            with suppress(ConnectionError):
                await writer.wait_closed()

    async def next_request(self, reader: asyncio.StreamReader) -> bytes | None:
        request = await read_request(reader)
        if request is None:
            self.client_closed += 1
        else:
            self.requests.append(request)
        return request

    async def aclose(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()


@asynccontextmanager
async def raw_server(handler: Handler) -> AsyncIterator[RawServer]:
    server = RawServer(handler)
    await server.start()
    try:
        yield server
    finally:
        await server.aclose()
    assert not server.errors, server.errors


def answer_each(respond: Callable[[int, bytes], bytes]) -> Handler:
    """Keep-alive: answer every request with `respond(connection_number, request)` until EOF."""

    async def handler(server: RawServer, reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter) -> None:
        number = server.accepted
        while (request := await server.next_request(reader)) is not None:
            writer.write(respond(number, request))
            await writer.drain()

    return handler


def always(response: bytes) -> Handler:
    return answer_each(lambda _number, _request: response)


@contextmanager
def pool_for(url: str, *, max_connections: int = 4, connect_timeout: float = 2.0,
             pool_timeout: float = 2.0) -> Iterator[ConnectionPool]:
    pool = ConnectionPool(url, max_connections=max_connections, connect_timeout=connect_timeout,
                          pool_timeout=pool_timeout)
    try:
        yield pool
    finally:
        pool.close()


async def get(pool: ConnectionPool, path: str = "/x", *, timeout: float = 2.0) -> RawResponse:
    return await pool.send(pool.request_head("GET", path), b"", None, timeout=timeout)


async def eventually(condition: Callable[[], bool], timeout: float = 2.0) -> None:
    """Wait (without a fixed sleep) until `condition()` holds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.002)


def idle_closed(pool: ConnectionPool) -> bool:
    return all(connection.closed for connection in pool._idle)


# --------------------------------------------------------------------------- 1. keep-alive


async def test_sequential_requests_share_one_connection() -> None:
    async with raw_server(answer_each(
            lambda _n, request: ok(request.split(b" ")[1]))) as server:
        with pool_for(server.url) as pool:
            bodies = [(await get(pool, f"/tasks/{i}")).body for i in range(5)]
        assert bodies == [f"/tasks/{i}".encode() for i in range(5)]
        assert server.accepted == 1
        assert len(server.requests) == 5


# --------------------------------------------------------------------------- 2. parsing


async def test_content_length_and_chunked_responses_and_request_id() -> None:
    responses = [
        ok(b'{"id":"cgt-1"}', "X-Request-Id: req-1"),
        chunked(b'{"id":', b'"cgt-2"', b"}", headers=("x-REQUEST-id: req-2",)),
        ok(b"", status="204 No Content"),  # no request id: none carried over from before
        ok(b'{"error":"nope"}', "X-REQUEST-ID: req-4", status="404 Not Found"),
    ]
    async with raw_server(answer_each(lambda _n, _r: responses.pop(0))) as server:
        with pool_for(server.url) as pool:
            got = [await get(pool) for _ in range(4)]
    assert got == [
        RawResponse(200, b'{"id":"cgt-1"}', "req-1"),
        RawResponse(200, b'{"id":"cgt-2"}', "req-2"),
        RawResponse(204, b"", None),
        RawResponse(404, b'{"error":"nope"}', "req-4"),
    ]
    assert server.accepted == 1


async def test_response_split_into_one_byte_writes(monkeypatch: pytest.MonkeyPatch) -> None:
    received: list[bytes] = []
    arrived = asyncio.Event()
    original = cp._Connection.data_received

    def spy(self: cp._Connection, data: bytes) -> None:
        received.append(data)
        arrived.set()
        original(self, data)

    monkeypatch.setattr(cp._Connection, "data_received", spy)
    responses = [ok(b'{"status":"queued"}', "X-Request-Id: split-1"),
                 chunked(b"ab", b"cdef", headers=("x-request-id: split-2",))]

    async def handler(server: RawServer, reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter) -> None:
        while await server.next_request(reader) is not None:
            data = responses.pop(0)
            for i in range(len(data)):
                arrived.clear()
                writer.write(data[i:i + 1])
                await asyncio.wait_for(arrived.wait(), 2)  # the client has read this byte

    async with raw_server(handler) as server:
        with pool_for(server.url) as pool:
            first = await get(pool)
            second = await get(pool)
    assert first == RawResponse(200, b'{"status":"queued"}', "split-1")
    assert second == RawResponse(200, b"abcdef", "split-2")
    assert all(len(data) == 1 for data in received)  # really one byte per read
    assert server.accepted == 1


# --------------------------------------------------------------------------- 3. Connection: close


@pytest.mark.parametrize("first", [
    ok(b"bye", "Connection: close"),
    b"HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nbye",  # HTTP/1.0 without keep-alive
], ids=["connection-close", "http-1.0"])
async def test_connection_close_response_is_not_reused(first: bytes) -> None:
    async with raw_server(answer_each(
            lambda n, _r: first if n == 1 else ok(b"fresh"))) as server:
        with pool_for(server.url) as pool:
            assert (await get(pool)).body == b"bye"
            assert (await get(pool)).body == b"fresh"
            assert (await get(pool)).body == b"fresh"
        # The server left connection 1 open: the client closed it itself.
        await eventually(lambda: server.client_closed >= 1)
        assert server.accepted == 2
        assert len(server.requests) == 3


# --------------------------------------------------------------------------- 4. idle connections


async def test_server_closing_an_idle_connection_is_detected() -> None:
    async def handler(server: RawServer, reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter) -> None:
        # A keep-alive response, then the server's idle timeout closes the connection.
        if await server.next_request(reader) is not None:
            writer.write(ok(b"n%d" % server.accepted))
            await writer.drain()

    async with raw_server(handler) as server:
        with pool_for(server.url, max_connections=1) as pool:
            assert (await get(pool)).body == b"n1"
            await eventually(lambda: idle_closed(pool))  # the client saw the FIN
            assert (await get(pool)).body == b"n2"
        assert server.accepted == 2


async def test_connection_idle_past_keepalive_expiry_is_not_reused(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cp, "KEEPALIVE_EXPIRY", 0.1)
    async with raw_server(answer_each(lambda n, _r: ok(b"c%d" % n))) as server:
        with pool_for(server.url) as pool:
            assert (await get(pool)).body == b"c1"
            await asyncio.sleep(0.12)  # the server keeps it open; the pool must not trust it
            assert (await get(pool)).body == b"c2"  # past it: a new connection
        # ... and the expired one was closed by the client, not left open.
        await eventually(lambda: server.client_closed >= 1)
        assert server.accepted == 2


# --------------------------------------------------------------------------- 5. broken connections


async def _close_before_responding(server: RawServer, reader: asyncio.StreamReader,
                                   writer: asyncio.StreamWriter) -> None:
    await server.next_request(reader)


async def _reset_before_responding(server: RawServer, reader: asyncio.StreamReader,
                                   writer: asyncio.StreamWriter) -> None:
    await server.next_request(reader)
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


def _send_then_close(data: bytes) -> Handler:
    async def handler(server: RawServer, reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter) -> None:
        await server.next_request(reader)
        writer.write(data)
        await writer.drain()

    return handler


def _send_and_keep_open(data: bytes) -> Handler:
    async def handler(server: RawServer, reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter) -> None:
        await server.next_request(reader)
        writer.write(data)
        await server.next_request(reader)  # until the client gives up on this connection

    return handler


@pytest.mark.parametrize("broken", [
    _close_before_responding,
    _reset_before_responding,
    _send_then_close(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"partial\":"),
    _send_then_close(b"HTTP/1.1 200 OK\r\nContent-Le"),
    _send_then_close(chunked(b"abc")[:-7]),  # chunked body cut before the last chunk
    _send_and_keep_open(b"this is not http\r\n\r\n"),
    _send_and_keep_open(b"HTTP/1.1 2x0 OK\r\nContent-Length: 0\r\n\r\n"),
    _send_and_keep_open(b"HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\n"),
], ids=["close-before-response", "reset-before-response", "close-mid-body",
        "close-mid-headers", "close-mid-chunked", "garbage", "bad-status", "bad-length"])
async def test_broken_or_malformed_response_raises_connection_broken(broken: Handler) -> None:
    async def handler(server: RawServer, reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter) -> None:
        if server.accepted == 1:
            await broken(server, reader, writer)
        else:
            await always(ok(b"recovered"))(server, reader, writer)

    async with raw_server(handler) as server:
        # One slot: a slot or a connection leaked by the failure would break the next request.
        with pool_for(server.url, max_connections=1, pool_timeout=0.5) as pool:
            started = time.monotonic()
            with pytest.raises(ConnectionBroken):
                await get(pool, timeout=2.0)
            assert time.monotonic() - started < 1.0  # reported at once, not at the timeout
            assert (await get(pool)).body == b"recovered"
        assert server.accepted == 2


# --------------------------------------------------------------------------- 6. response timeout


async def test_response_timeout_discards_the_connection() -> None:
    async def handler(server: RawServer, reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter) -> None:
        if server.accepted == 1:
            await server.next_request(reader)  # never answered
            await server.next_request(reader)  # returns when the client closes
            writer.write(ok(b"too late"))  # must not reach anyone
        else:
            await always(ok(b"second"))(server, reader, writer)

    async with raw_server(handler) as server:
        with pool_for(server.url, max_connections=1) as pool:
            started = time.monotonic()
            with pytest.raises(ResponseTimeout):
                await get(pool, timeout=0.2)
            elapsed = time.monotonic() - started
            assert 0.19 <= elapsed < 1.0
            await eventually(lambda: server.client_closed == 1)  # the client hung up
            assert (await get(pool)).body == b"second"
        assert server.accepted == 2
        assert len(server.requests) == 2


async def test_cancelled_request_does_not_leave_its_connection_open() -> None:
    """A caller cancelled mid-request (shutdown, a timeout around the call): the connection,
    whose answer may still come, is closed, and the next request gets its own answer."""
    async def handler(server: RawServer, reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter) -> None:
        if server.accepted == 1:
            await server.next_request(reader)
            await server.next_request(reader)  # returns when the client closes
        else:
            await always(ok(b"mine"))(server, reader, writer)

    async with raw_server(handler) as server:
        with pool_for(server.url, max_connections=1) as pool:
            request = asyncio.ensure_future(get(pool, timeout=5.0))
            await eventually(lambda: len(server.requests) == 1)
            request.cancel()
            with pytest.raises(asyncio.CancelledError):
                await request
            await eventually(lambda: server.client_closed == 1)
            assert (await get(pool)).body == b"mine"
        assert server.accepted == 2


# --------------------------------------------------------------------------- 7. connect errors


async def test_connection_refused_is_connect_failed() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
        port = sock.getsockname()[1]
        with pool_for(f"http://127.0.0.1:{port}") as pool:
            with pytest.raises(ConnectFailed) as caught:
                await get(pool)
            assert not isinstance(caught.value, ConnectTimeout)
            # The failure released its slot and left nothing in the pool.
            assert not pool._slots.locked() and not pool._idle


async def test_connect_timeout_when_tls_handshake_never_answers() -> None:
    """TCP connects, but the server never answers the TLS ClientHello: the connect timeout
    covers the handshake, and no HTTP request is sent."""
    seen: list[bytes] = []

    async def silent(server: RawServer, reader: asyncio.StreamReader,
                     writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            seen.append(data)
        server.client_closed += 1

    async with raw_server(silent) as server:
        with pool_for(f"https://127.0.0.1:{server.port}", max_connections=1,
                      connect_timeout=0.2) as pool:
            started = time.monotonic()
            with pytest.raises(ConnectTimeout):
                await get(pool, timeout=5.0)
            assert 0.19 <= time.monotonic() - started < 1.0
            await eventually(lambda: server.client_closed == 1)  # the attempt was closed
            assert not pool._slots.locked()
    assert seen and seen[0][:1] == b"\x16"  # a TLS handshake record, never "GET ..."
    assert b"HTTP/1.1" not in b"".join(seen)


# --------------------------------------------------------------------------- 8. pool limits


def _gated(gate: asyncio.Event) -> Handler:
    async def handler(server: RawServer, reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter) -> None:
        while (request := await server.next_request(reader)) is not None:
            server.in_flight += 1
            await gate.wait()
            server.in_flight -= 1
            writer.write(ok(request.split(b" ")[1]))
            await writer.drain()

    return handler


async def test_pool_never_opens_more_than_max_connections() -> None:
    gate = asyncio.Event()
    async with raw_server(_gated(gate)) as server:
        with pool_for(server.url, max_connections=2) as pool:
            requests = [asyncio.ensure_future(get(pool, f"/{i}")) for i in range(5)]
            await eventually(lambda: server.in_flight == 2)
            await asyncio.sleep(0.05)  # room for a wrong pool to open a third connection
            assert server.accepted == 2 and server.in_flight == 2
            gate.set()
            responses = await asyncio.gather(*requests)
            assert len(pool._idle) == 2
        assert [r.body for r in responses] == [f"/{i}".encode() for i in range(5)]
        assert server.accepted == 2
        assert server.max_open == 2


async def test_full_pool_raises_pool_timeout_without_sending() -> None:
    gate = asyncio.Event()
    async with raw_server(_gated(gate)) as server:
        with pool_for(server.url, max_connections=1, pool_timeout=0.05) as pool:
            first = asyncio.ensure_future(get(pool, "/first"))
            await eventually(lambda: server.in_flight == 1)
            started = time.monotonic()
            with pytest.raises(PoolTimeout):
                await get(pool, "/second")
            assert time.monotonic() - started < 1.0
            gate.set()
            assert (await first).body == b"/first"
            assert (await get(pool, "/third")).body == b"/third"  # the slot is free again
        assert [r.split(b" ")[1] for r in server.requests] == [b"/first", b"/third"]
        assert server.accepted == 1


# --------------------------------------------------------------------------- 9. bytes on the wire


async def test_request_bytes_on_the_wire() -> None:
    async with raw_server(always(ok())) as server:
        with pool_for(server.url + "/api/v3/") as pool:
            head = pool.request_head("POST", "/contents/generations/tasks")
            headers = (b"Authorization: Bearer fake-key\r\n"
                       b"Content-Type: application/json\r\n")
            await pool.send(head, headers, b'{"model":"m"}', timeout=2.0)
            await pool.send(pool.request_head("GET", "/contents/generations/tasks/cgt-1"),
                            b"Accept: application/json\r\n", None, timeout=2.0)
            await pool.send(pool.request_head("DELETE", "/contents/generations/tasks/cgt-1"),
                            b"", b"", timeout=2.0)
    host = f"127.0.0.1:{server.port}"
    assert server.requests == [
        (b"POST /api/v3/contents/generations/tasks HTTP/1.1\r\n"
         b"Host: " + host.encode() + b"\r\n"
         b"Authorization: Bearer fake-key\r\n"
         b"Content-Type: application/json\r\n"
         b"Content-Length: 13\r\n"
         b"\r\n"
         b'{"model":"m"}'),
        (b"GET /api/v3/contents/generations/tasks/cgt-1 HTTP/1.1\r\n"
         b"Host: " + host.encode() + b"\r\n"
         b"Accept: application/json\r\n"
         b"\r\n"),
        (b"DELETE /api/v3/contents/generations/tasks/cgt-1 HTTP/1.1\r\n"
         b"Host: " + host.encode() + b"\r\n"
         b"Content-Length: 0\r\n"
         b"\r\n"),
    ]


@pytest.mark.parametrize(("base_url", "target", "host"), [
    ("https://ark.cn-beijing.volces.com/api/v3", "/api/v3/t", "ark.cn-beijing.volces.com"),
    ("https://ark.example:443/api/v3", "/api/v3/t", "ark.example"),
    ("https://ark.example:8443", "/t", "ark.example:8443"),
    ("http://ark.example", "/t", "ark.example"),
    ("http://ark.example:80/", "/t", "ark.example"),
    ("http://ark.example:443/v3", "/v3/t", "ark.example:443"),
    ("http://127.0.0.1:8080/api/v3/", "/api/v3/t", "127.0.0.1:8080"),
    ("http://[::1]:8080/api", "/api/t", "[::1]:8080"),
    ("https://[2001:db8::1]/api", "/api/t", "[2001:db8::1]"),
])
def test_request_head_host_and_base_path(base_url: str, target: str, host: str) -> None:
    pool = ConnectionPool(base_url, max_connections=1, connect_timeout=1.0, pool_timeout=1.0)
    assert pool.request_head("GET", "/t") == f"GET {target} HTTP/1.1\r\nHost: {host}\r\n".encode()


# --------------------------------------------------------------------------- 10. close()


async def test_close_closes_idle_connections() -> None:
    gate = asyncio.Event()
    gate.set()
    async with raw_server(_gated(gate)) as server:
        with pool_for(server.url) as pool:
            await asyncio.gather(get(pool), get(pool))  # two connections, both idle after
            assert server.accepted == 2 and len(pool._idle) == 2
            pool.close()
            assert not pool._idle
            await eventually(lambda: server.client_closed == 2)
            assert server.open == 0
            assert (await get(pool)).status == 200  # still usable: a new connection
        assert server.accepted == 3


# --------------------------------------------------------------------------- a real uvicorn server


async def _echo_app(scope: dict[str, Any], receive: Callable[[], Awaitable[dict[str, Any]]],
                    send: Callable[[dict[str, Any]], Awaitable[None]]) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    echo = json.dumps({
        "method": scope["method"], "path": scope["path"], "body": body.decode(),
        "host": dict(scope["headers"]).get(b"host", b"").decode(),
        "client_port": scope["client"][1],
    }).encode()
    # No Content-Length: uvicorn answers chunked.
    await send({"type": "http.response.start", "status": 201,
                "headers": [(b"x-request-id", b"uv-" + scope["path"][-1:].encode())]})
    await send({"type": "http.response.body", "body": echo[:10], "more_body": True})
    await send({"type": "http.response.body", "body": echo[10:]})


async def test_against_uvicorn_keepalive_and_its_idle_timeout() -> None:
    server = ServerThread(_echo_app)
    server.server.config.timeout_keep_alive = 0.2  # type: ignore[assignment]
    server.start()
    try:
        with pool_for(server.url + "/api/v3") as pool:
            replies = []
            for i in range(3):
                raw = await pool.send(pool.request_head("POST", f"/tasks/{i}"),
                                      b"Content-Type: application/json\r\n", b'{"n":%d}' % i,
                                      timeout=2.0)
                assert raw.status == 201 and raw.request_id == f"uv-{i}"
                replies.append(json.loads(raw.body))
            assert [r["path"] for r in replies] == [f"/api/v3/tasks/{i}" for i in range(3)]
            assert [r["body"] for r in replies] == [f'{{"n":{i}}}' for i in range(3)]
            assert {r["host"] for r in replies} == {f"127.0.0.1:{server.port}"}
            assert len({r["client_port"] for r in replies}) == 1  # one connection
            # uvicorn closes the idle connection after its keep-alive timeout ...
            await eventually(lambda: idle_closed(pool) and bool(pool._idle))
            raw = await get(pool, "/tasks/9")
            # ... and the next request goes out on a new connection and succeeds.
            assert raw.status == 201
            assert json.loads(raw.body)["client_port"] != replies[0]["client_port"]
    finally:
        server.stop()
