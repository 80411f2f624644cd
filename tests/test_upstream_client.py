"""The upstream client's everyday behaviour over real sockets: keep-alive, limits, timeouts,
broken answers and the bytes it sends (what the hand-written pool's tests held it to)."""

from __future__ import annotations

import asyncio
import socket
import struct
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import pytest

from gateway.errors import GatewayError
from gateway.upstream.files import FileTruncated
from tests.hostile import (
    Handler,
    RawServer,
    SeenRequest,
    answer,
    answer_each,
    chunked_answer,
    json_answer,
    raw_server,
)
from tests.servers import ServerThread
from tests.upstreams import KEY_SECRETS, call, opened, read_file

pytestmark = pytest.mark.anyio


async def eventually(condition: Callable[[], bool], timeout: float = 2.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.002)


def path_answer(server: RawServer, request: SeenRequest) -> bytes:
    return json_answer({"path": request.path, "connection": server.accepted})


# --------------------------------------------------------------------------- keep-alive


async def test_sequential_calls_share_one_connection() -> None:
    async with raw_server(answer_each(path_answer)) as server:
        async with opened(server.origin) as upstream:
            replies = [await call(upstream, "get", task_id=f"cgt-{i}") for i in range(5)]
    assert [orjson.loads(r.body)["path"].rsplit("/", 1)[1] for r in replies] == [
        f"cgt-{i}" for i in range(5)]
    assert server.accepted == 1


async def test_answers_in_any_framing_with_request_id_and_retry_after() -> None:
    wires = [
        answer(b'{"id":"cgt-1"}', "X-Request-Id: req-1"),
        chunked_answer(b'{"id":', b'"cgt-2"', b"}", headers=("x-REQUEST-id: req-2",)),
        answer(b"", status="204 No Content"),
        answer(b'{"error":{}}', "X-Request-Id: req-4", "Retry-After: 42",
               status="429 Too Many Requests"),
    ]

    async def dribble(server: RawServer, reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter) -> None:
        while await server.next_request(reader) is not None:
            for byte in wires.pop(0):  # one byte per write
                writer.write(bytes([byte]))
                await writer.drain()

    async with raw_server(dribble) as server:
        async with opened(server.origin) as upstream:
            got = [await call(upstream, "get") for _ in range(4)]
    assert [(r.status, r.body, r.request_id, r.retry_after) for r in got] == [
        (200, b'{"id":"cgt-1"}', "req-1", None),
        (200, b'{"id":"cgt-2"}', "req-2", None),
        (204, b"", None, None),
        (429, b'{"error":{}}', "req-4", "42"),
    ]
    assert server.accepted == 1


@pytest.mark.parametrize("first", [
    answer(b'{"n":1}', "Connection: close"),
    b"HTTP/1.0 200 OK\r\nContent-Length: 7\r\n\r\n{\"n\":1}",
], ids=["connection-close", "http-1.0"])
async def test_connection_close_answer_is_not_reused(first: bytes) -> None:
    async with raw_server(answer_each(
            lambda s, r: first if s.accepted == 1 else json_answer({"n": 2}))) as server:
        async with opened(server.origin) as upstream:
            bodies = [orjson.loads((await call(upstream, "get")).body) for _ in range(3)]
    assert bodies == [{"n": 1}, {"n": 2}, {"n": 2}]
    assert server.accepted == 2


async def test_connection_the_server_closed_while_idle_is_not_reused() -> None:
    async def one_answer(server: RawServer, reader: asyncio.StreamReader,
                         writer: asyncio.StreamWriter) -> None:
        request = await server.next_request(reader)
        if request is not None:
            writer.write(path_answer(server, request))
            await writer.drain()  # then the server's idle timeout closes the connection

    async with raw_server(one_answer) as server:
        async with opened(server.origin, max_connections=1) as upstream:
            assert (await call(upstream, "create")).status == 200
            await asyncio.sleep(0.1)  # the FIN arrives
            assert (await call(upstream, "create")).status == 200
    assert len(server.seen("POST")) == 2 and server.accepted == 2


# --------------------------------------------------------------------------- broken answers


async def _close_before_answering(server: RawServer, reader: asyncio.StreamReader,
                                  writer: asyncio.StreamWriter) -> None:
    await server.next_request(reader)


async def _reset_before_answering(server: RawServer, reader: asyncio.StreamReader,
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
    _close_before_answering,
    _reset_before_answering,
    _send_then_close(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"partial\":"),
    _send_then_close(b"HTTP/1.1 200 OK\r\nContent-Le"),
    _send_then_close(chunked_answer(b"abc", end=False)),
    _send_and_keep_open(b"this is not http\r\n\r\n"),
    _send_and_keep_open(b"HTTP/1.1 2x0 OK\r\nContent-Length: 0\r\n\r\n"),
    _send_and_keep_open(b"HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\n"),
], ids=["close-before-answer", "reset-before-answer", "close-mid-body", "close-mid-head",
        "close-mid-chunked", "garbage", "bad-status", "bad-length"])
async def test_broken_answer_to_a_create_is_a_502_that_forbids_a_retry(broken: Handler) -> None:
    async def handler(server: RawServer, reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter) -> None:
        if server.accepted == 1:
            await broken(server, reader, writer)
        else:
            await answer_each(path_answer)(server, reader, writer)

    async with raw_server(handler) as server:
        # One connection: a slot or a connection leaked by the failure would break the next.
        async with opened(server.origin, max_connections=1,
                          timeouts={"pool": 0.5}) as upstream:
            started = time.monotonic()
            with pytest.raises(GatewayError) as failed:
                await call(upstream, "create")
            assert time.monotonic() - started < 1.0  # at once, not at a timeout
            assert (await call(upstream, "create")).status == 200
    assert failed.value.status == 502
    assert failed.value.headers.get("x-should-retry") == "false"  # it may have been created
    assert len(server.seen("POST")) == 2 and server.accepted == 2


# --------------------------------------------------------------------------- timeouts


async def test_answer_timeout_is_a_504_and_the_connection_is_dropped() -> None:
    async def handler(server: RawServer, reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter) -> None:
        if server.accepted == 1:
            await server.next_request(reader)  # never answered
            await server.next_request(reader)  # returns when the client hangs up
            writer.write(json_answer({"late": True}))  # must reach nobody
        else:
            await answer_each(path_answer)(server, reader, writer)

    async with raw_server(handler) as server:
        async with opened(server.origin, max_connections=1,
                          timeouts={"read": 0.2}) as upstream:
            started = time.monotonic()
            with pytest.raises(GatewayError) as failed:
                await call(upstream, "create")
            assert 0.19 <= time.monotonic() - started < 1.0
            reply = await call(upstream, "get")
    assert failed.value.status == 504 and failed.value.headers["x-should-retry"] == "false"
    assert reply.status == 200 and orjson.loads(reply.body)["connection"] == 2


async def test_cancelled_call_does_not_leave_its_connection_in_use() -> None:
    async def handler(server: RawServer, reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter) -> None:
        if server.accepted == 1:
            await server.next_request(reader)
            await server.next_request(reader)
        else:
            await answer_each(path_answer)(server, reader, writer)

    async with raw_server(handler) as server:
        async with opened(server.origin, max_connections=1) as upstream:
            pending = asyncio.ensure_future(call(upstream, "get"))
            await eventually(lambda: len(server.requests) == 1)
            pending.cancel()
            with pytest.raises(asyncio.CancelledError):
                await pending
            reply = await call(upstream, "get")
    assert orjson.loads(reply.body)["connection"] == 2


async def test_connection_refused_is_a_502_safe_to_retry() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))  # bound, never listening
        port = sock.getsockname()[1]
        async with opened(f"http://127.0.0.1:{port}") as upstream:
            with pytest.raises(GatewayError) as failed:
                await call(upstream, "create")
    assert failed.value.status == 502 and "x-should-retry" not in failed.value.headers


async def test_tls_handshake_that_never_answers_is_a_connect_timeout() -> None:
    seen: list[bytes] = []

    async def silent(server: RawServer, reader: asyncio.StreamReader,
                     writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            seen.append(data)

    async with raw_server(silent) as server:
        async with opened(f"https://127.0.0.1:{server.port}",
                          timeouts={"connect": 0.2}) as upstream:
            started = time.monotonic()
            with pytest.raises(GatewayError) as failed:
                await call(upstream, "create")
            assert 0.19 <= time.monotonic() - started < 1.5
    assert failed.value.status == 504 and "x-should-retry" not in failed.value.headers
    assert seen and seen[0][:1] == b"\x16"  # a TLS handshake record, never an HTTP request
    assert b"HTTP/1.1" not in b"".join(seen)


# --------------------------------------------------------------------------- limits


def _gated(gate: asyncio.Event) -> Handler:
    async def handler(server: RawServer, reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter) -> None:
        while (request := await server.next_request(reader)) is not None:
            server.state["waiting"] = server.state.get("waiting", 0) + 1
            await gate.wait()
            server.state["waiting"] -= 1
            writer.write(path_answer(server, request))
            await writer.drain()

    return handler


async def test_never_more_than_max_connections() -> None:
    gate = asyncio.Event()
    async with raw_server(_gated(gate)) as server:
        async with opened(server.origin, max_connections=2) as upstream:
            calls = [asyncio.ensure_future(call(upstream, "get", task_id=f"cgt-{i}"))
                     for i in range(5)]
            await eventually(lambda: server.state.get("waiting") == 2)
            await asyncio.sleep(0.05)  # room for a third connection, which must not come
            assert server.accepted == 2
            gate.set()
            replies = await asyncio.gather(*calls)
    assert [orjson.loads(r.body)["path"][-5:] for r in replies] == [
        f"cgt-{i}" for i in range(5)]
    assert server.accepted == 2


async def test_full_pool_is_a_504_without_sending() -> None:
    gate = asyncio.Event()
    async with raw_server(_gated(gate)) as server:
        async with opened(server.origin, max_connections=1,
                          timeouts={"pool": 0.05}) as upstream:
            first = asyncio.ensure_future(call(upstream, "get", task_id="first"))
            await eventually(lambda: server.state.get("waiting") == 1)
            with pytest.raises(GatewayError) as failed:
                await call(upstream, "create")
            gate.set()
            assert (await first).status == 200
            assert (await call(upstream, "get", task_id="third")).status == 200
    assert failed.value.status == 504 and "x-should-retry" not in failed.value.headers
    assert [r.path.rsplit("/", 1)[1] for r in server.requests] == ["first", "third"]


# --------------------------------------------------------------------------- the wire


async def test_request_bytes_on_the_wire() -> None:
    async with raw_server(answer_each(lambda s, r: json_answer({}))) as server:
        async with opened(server.origin + "/api/v3/", keys=("one", "two")) as upstream:
            await upstream.create_task(b'{"model":"m"}', key="two", client_request_id="req-7")
            await upstream.get_task("cgt-1", key="one", client_request_id=None)
            await upstream.delete_task("cgt-1", key="one", client_request_id="req-8")
    post, get, delete = server.requests
    assert (post.method, post.target, post.body) == (
        "POST", "/api/v3/contents/generations/tasks", b'{"model":"m"}')
    assert (get.method, get.target, get.body) == (
        "GET", "/api/v3/contents/generations/tasks/cgt-1", b"")
    assert (delete.method, delete.target, delete.body) == (
        "DELETE", "/api/v3/contents/generations/tasks/cgt-1", b"{}")
    assert post.headers["authorization"] == f"Bearer {KEY_SECRETS['two']}"
    assert get.headers["authorization"] == delete.headers["authorization"] == (
        f"Bearer {KEY_SECRETS['one']}")
    assert post.headers["content-type"] == "application/json"
    assert (post.headers["x-client-request-id"], delete.headers["x-client-request-id"]) == (
        "req-7", "req-8")
    assert "x-client-request-id" not in get.headers
    assert {r.headers["host"] for r in server.requests} == {f"127.0.0.1:{server.port}"}
    assert {r.headers["user-agent"] for r in server.requests} == {"seedance-gateway"}
    assert all("cookie" not in r.headers for r in server.requests)


async def test_cookies_set_by_the_upstream_never_travel_with_later_calls() -> None:
    wire = json_answer({}, "Set-Cookie: lb=node-7; Path=/")
    async with raw_server(answer_each(lambda s, r: wire)) as server:
        async with opened(server.origin, keys=("one", "two")) as upstream:
            await call(upstream, "get", key="one")
            await call(upstream, "get", key="two")
    assert all("cookie" not in r.headers for r in server.requests)


# --------------------------------------------------------------------------- result files


FILE = bytes(range(256)) * 4096


async def test_range_is_kept_across_redirects() -> None:
    def respond(server: RawServer, request: SeenRequest) -> bytes:
        if request.path.startswith("/signed"):
            return answer(b"", f"Location: {server.origin}/moved/v.mp4?sig=2",
                          status="302 Found")
        first, last = request.headers["range"].removeprefix("bytes=").split("-")
        part = FILE[int(first):int(last) + 1]
        return answer(part, f"Content-Range: bytes {first}-{last}/{len(FILE)}",
                      status="206 Partial Content")

    async with raw_server(answer_each(respond)) as server:
        async with opened(server.origin) as upstream:
            status, headers, body = await read_file(upstream, server.origin + "/signed?sig=1",
                                                    {"range": "bytes=10-19"})
    assert [r.headers.get("range") for r in server.requests] == ["bytes=10-19"] * 2
    assert (status, body, headers["content-range"]) == (206, FILE[10:20],
                                                        f"bytes 10-19/{len(FILE)}")


async def test_stalled_answers_time_out_and_a_stalled_file_is_truncated() -> None:
    async def handler(server: RawServer, reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter) -> None:
        request = await server.next_request(reader)
        if request is None:
            return
        declared = b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"
        writer.write(declared + (b"x" * 400 if request.path.endswith(".mp4")
                                 else b'{"id": "cgt-'))
        await writer.drain()
        await asyncio.sleep(30)  # and then nothing

    async with raw_server(handler) as server:
        async with opened(server.origin, timeouts={"read": 0.3}) as upstream:
            started = time.monotonic()
            with pytest.raises(GatewayError) as stalled:
                await call(upstream, "create")
            assert 0.25 < time.monotonic() - started < 2.0
            assert stalled.value.status == 504
            assert stalled.value.headers.get("x-should-retry") == "false"

            started = time.monotonic()
            received = b""
            with pytest.raises(FileTruncated):
                async with upstream.open_file(server.origin + "/v.mp4", headers={}) as file:
                    assert file.headers["content-length"] == "1000"
                    async for chunk in file.chunks():
                        received += chunk
            assert 0.25 < time.monotonic() - started < 2.0
    assert received == b"x" * 400


async def test_truncated_file_is_reported_not_passed_off_as_whole() -> None:
    async def handler(server: RawServer, reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter) -> None:
        await server.next_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + b"y" * 600)
        await writer.drain()

    async with raw_server(handler) as server:
        async with opened(server.origin) as upstream:
            with pytest.raises(FileTruncated):
                await read_file(upstream, server.origin + "/v.mp4")


# --------------------------------------------------------------------------- a real uvicorn


async def _echo_app(scope: dict[str, Any], receive: Callable[[], Awaitable[dict[str, Any]]],
                    send: Callable[[dict[str, Any]], Awaitable[None]]) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            done = ("lifespan.startup.complete" if message["type"] == "lifespan.startup"
                    else "lifespan.shutdown.complete")
            await send({"type": done})
            if done == "lifespan.shutdown.complete":
                return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    echo = orjson.dumps({"path": scope["path"], "body": body.decode(),
                         "client_port": scope["client"][1]})
    await send({"type": "http.response.start", "status": 201,  # chunked: no Content-Length
                "headers": [(b"x-request-id", b"uv-" + scope["path"][-1:].encode())]})
    await send({"type": "http.response.body", "body": echo[:10], "more_body": True})
    await send({"type": "http.response.body", "body": echo[10:]})


async def test_against_uvicorn_and_its_keepalive_timeout() -> None:
    server = ServerThread(_echo_app)
    server.server.config.timeout_keep_alive = 1
    server.start()
    try:
        async with opened(server.url + "/api/v3") as upstream:
            replies = []
            for i in range(3):
                reply = await upstream.create_task(b'{"n":%d}' % i, key="one",
                                                   client_request_id=None)
                assert (reply.status, reply.request_id) == (201, "uv-s")
                replies.append(orjson.loads(reply.body))
            assert [r["body"] for r in replies] == [f'{{"n":{i}}}' for i in range(3)]
            assert len({r["client_port"] for r in replies}) == 1  # one connection
            await asyncio.sleep(1.3)  # uvicorn closes the idle connection ...
            reply = await upstream.create_task(b"{}", key="one", client_request_id=None)
            # ... and the next create goes out on a new one, once.
            assert reply.status == 201
            assert orjson.loads(reply.body)["client_port"] != replies[0]["client_port"]
    finally:
        server.stop()
