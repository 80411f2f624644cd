"""The upstream module against hostile servers on 127.0.0.1 and ::1, byte by byte.

Each case here is something a real network does that the hand-written pool before it got
wrong: interim answers, framings, compression, a connection closed under a request, proxies,
private CAs, IPv6, stalls, oversized heads and answers, a dead first address.
"""

from __future__ import annotations

import asyncio
import base64
import socket
import time
from pathlib import Path

import orjson
import pytest

from gateway.errors import GatewayError
from tests.hostile import (
    INTERIM,
    ProxyLog,
    RawServer,
    SeenRequest,
    answer,
    answer_each,
    chunked_answer,
    close_delimited_head,
    connect_proxy,
    forward_proxy,
    gzipped,
    json_answer,
    raw_server,
    tls_pair,
)
from tests.upstreams import KEY_SECRETS, call, opened, read_file

pytestmark = pytest.mark.anyio

METHODS = {"create": "POST", "get": "GET", "delete": "DELETE"}
FILE = bytes(range(256)) * 4096  # 1 MiB that no decoder would leave unchanged


@pytest.fixture(autouse=True)
def no_proxy_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests set the proxy variables they mean; none leaks in from the machine."""
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)


def echo(server: RawServer, request: SeenRequest) -> bytes:
    """The answer says which request it answers: method, path, key, and its number."""
    return json_answer({"method": request.method, "path": request.path,
                        "auth": request.headers.get("authorization"),
                        "n": len(server.requests)})


# --------------------------------------------------------------------------- interim answers


@pytest.mark.parametrize("code", [100, 103])
async def test_interim_answers_before_every_answer_stay_with_their_request(code: int) -> None:
    """A 1xx before every answer, two keys interleaved on one keep-alive connection: every
    request gets its own final answer (the old pool handed the 1xx over as the answer, and
    every later request got the previous one's)."""
    async with raw_server(answer_each(lambda s, r: INTERIM[code] + echo(s, r))) as server:
        async with opened(server.origin + "/api/v3", keys=("one", "two"),
                          max_connections=1) as upstream:
            calls = [("create", "one"), ("get", "two"), ("create", "two"), ("get", "one"),
                     ("delete", "two"), ("get", "one")]
            for n, (operation, key) in enumerate(calls, start=1):
                reply = await call(upstream, operation, key=key, task_id=f"cgt-{n}")
                assert reply.status == 200, (operation, key, reply)
                got = orjson.loads(reply.body)
                assert got == {"method": METHODS[operation], "n": n,
                               "auth": f"Bearer {KEY_SECRETS[key]}",
                               "path": "/api/v3/contents/generations/tasks"
                               + ("" if operation == "create" else f"/cgt-{n}")}
    assert server.accepted == 1


# --------------------------------------------------------------------------- framings


async def test_task_answer_ending_at_connection_close() -> None:
    async def handler(server: RawServer, reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter) -> None:
        await server.next_request(reader)
        writer.write(close_delimited_head("Content-Type: application/json")
                     + b'{"id": "cgt-close", ' + b'"status": "queued"}')
        await writer.drain()  # and the handler returns: the server closes

    async with raw_server(handler) as server:
        async with opened(server.origin) as upstream:
            reply = await call(upstream, "get")
    assert (reply.status, orjson.loads(reply.body)) == (200, {"id": "cgt-close",
                                                              "status": "queued"})


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
async def test_gzip_task_answer_is_decoded(framing: str) -> None:
    task = orjson.dumps({"id": "cgt-gz", "status": "running", "padding": "x" * 5000})
    packed = gzipped(task)
    wire = (answer(packed, "Content-Encoding: gzip", "Content-Type: application/json")
            if framing == "content-length"
            else chunked_answer(packed[:len(packed) // 2], packed[len(packed) // 2:],
                                headers=("Content-Encoding: gzip",)))
    async with raw_server(answer_each(lambda s, r: wire)) as server:
        async with opened(server.origin) as upstream:
            reply = await call(upstream, "get")
    assert (reply.status, reply.body) == (200, task)


async def test_result_file_ending_at_connection_close_is_read_whole() -> None:
    async def handler(server: RawServer, reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter) -> None:
        await server.next_request(reader)
        writer.write(close_delimited_head("Content-Type: video/mp4"))
        for start in range(0, len(FILE), 100_000):
            writer.write(FILE[start:start + 100_000])
            await writer.drain()

    async with raw_server(handler) as server:
        async with opened(server.origin) as upstream:
            status, headers, body = await read_file(upstream, server.origin + "/v.mp4?sig=1")
    assert status == 200 and body == FILE
    assert "content-length" not in headers  # none was given: none is made up


async def test_gzip_result_file_is_asked_as_identity_and_relayed_decoded() -> None:
    packed = gzipped(FILE)
    wire = answer(packed, "Content-Type: video/mp4", "Content-Encoding: gzip")
    async with raw_server(answer_each(lambda s, r: wire)) as server:
        async with opened(server.origin) as upstream:
            status, headers, body = await read_file(upstream, server.origin + "/v.mp4")
    assert server.requests[0].headers["accept-encoding"] == "identity"
    assert status == 200 and body == FILE
    # The upstream's length was the compressed one: it must not be relayed with the bytes.
    assert headers == {"content-type": "video/mp4"}


# --------------------------------------------------------------------------- closed under a request


async def test_keepalive_connection_closed_as_a_request_arrives() -> None:
    """The server reads each connection's second request and closes without answering. A GET
    is idempotent: it is retried once on a new connection. A create may have been acted on:
    it is never sent again, and its 502 tells the SDKs not to retry."""
    async def handler(server: RawServer, reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter) -> None:
        first = await server.next_request(reader)
        if first is None:
            return
        writer.write(echo(server, first))
        await writer.drain()
        await server.next_request(reader)  # ... and close without a word

    async with raw_server(handler) as server:
        async with opened(server.origin, max_connections=1) as upstream:
            assert (await call(upstream, "get")).status == 200
            got = await call(upstream, "get", task_id="cgt-2")
            assert got.status == 200 and orjson.loads(got.body)["path"].endswith("/cgt-2")

            assert (await call(upstream, "get", task_id="cgt-3")).status == 200
            with pytest.raises(GatewayError) as refused:
                await call(upstream, "create")
    assert refused.value.status == 502
    assert refused.value.headers.get("x-should-retry") == "false"
    assert len(server.seen("POST")) == 1  # never sent twice
    assert [r.path.rsplit("/", 1)[1] for r in server.seen("GET")] == [
        "cgt-1", "cgt-2", "cgt-2", "cgt-3", "cgt-3"]


# --------------------------------------------------------------------------- proxies


@pytest.mark.parametrize("source", ["env", "config"])
async def test_https_upstream_through_a_connect_proxy(
        source: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pair = tls_pair(tmp_path, "localhost", "127.0.0.1")
    log = ProxyLog()
    async with raw_server(answer_each(echo), tls=pair.server) as origin, \
            raw_server(connect_proxy(log)) as proxy:
        settings: dict[str, object] = {"ca_file": str(pair.ca_file)}
        if source == "env":
            monkeypatch.setenv("HTTPS_PROXY", proxy.origin)
        else:
            settings |= {"proxy": "${EGRESS_PROXY}", "env": {"EGRESS_PROXY": proxy.origin}}
        async with opened(f"https://localhost:{origin.port}/api/v3", **settings) as upstream:
            reply = await call(upstream, "create")
            status, _, body = await read_file(upstream, f"{origin.origin}/v.mp4")
    assert reply.status == 200 and orjson.loads(reply.body)["method"] == "POST"
    assert log.targets()[:2] == [f"CONNECT localhost:{origin.port}",
                                 f"CONNECT 127.0.0.1:{origin.port}"]
    assert status == 200 and orjson.loads(body)["path"] == "/v.mp4"


@pytest.mark.parametrize("source", ["env", "config"])
async def test_http_upstream_through_an_absolute_form_proxy_with_credentials(
        source: str, monkeypatch: pytest.MonkeyPatch) -> None:
    log = ProxyLog()
    async with raw_server(answer_each(echo)) as origin, \
            raw_server(forward_proxy(log)) as proxy:
        proxy_url = f"http://egress:s3cret-proxy-pw@127.0.0.1:{proxy.port}"
        settings: dict[str, object] = {}
        if source == "env":
            monkeypatch.setenv("HTTP_PROXY", proxy_url)
        else:
            settings = {"proxy": "http://egress:${PROXY_PASSWORD}@127.0.0.1:" + str(proxy.port),
                        "env": {"PROXY_PASSWORD": "s3cret-proxy-pw"}}
        async with opened(origin.origin + "/api/v3", **settings) as upstream:
            reply = await call(upstream, "get", task_id="cgt-9")
    assert reply.status == 200
    assert log.targets() == [
        f"GET {origin.origin}/api/v3/contents/generations/tasks/cgt-9"]
    credentials = base64.b64encode(b"egress:s3cret-proxy-pw").decode()
    assert log.heads[0].headers["proxy-authorization"] == f"Basic {credentials}"
    assert "proxy-authorization" not in origin.requests[0].headers

    # A host NO_PROXY lists goes direct, whichever way the proxy was set.
    monkeypatch.setenv("NO_PROXY", "example.com, 127.0.0.1")
    async with raw_server(answer_each(echo)) as origin:
        async with opened(origin.origin, **settings) as upstream:
            assert (await call(upstream, "get")).status == 200
    assert len(log.heads) == 1 and len(origin.requests) == 1


async def test_env_proxy_off_ignores_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """`env_proxy: false` (the demo's embedded simulator): HTTP_PROXY does not apply."""
    log = ProxyLog()
    async with raw_server(answer_each(echo)) as origin, \
            raw_server(forward_proxy(log)) as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.origin)
        async with opened(origin.origin, env_proxy=False) as upstream:
            assert (await call(upstream, "get")).status == 200
        async with opened(origin.origin) as upstream:
            assert (await call(upstream, "get")).status == 200
    assert len(log.heads) == 1 and len(origin.requests) == 2


# --------------------------------------------------------------------------- TLS


async def test_private_ca_from_ca_file_is_trusted_beside_the_system_store(
        tmp_path: Path) -> None:
    pair = tls_pair(tmp_path, "localhost")
    async with raw_server(answer_each(echo), tls=pair.server) as origin:
        url = f"https://localhost:{origin.port}/api/v3"
        async with opened(url, ca_file=str(pair.ca_file)) as upstream:
            assert (await call(upstream, "get")).status == 200
        async with opened(url) as upstream:  # without it: refused, and the reason is named
            with pytest.raises(GatewayError) as refused:
                await call(upstream, "get")
    assert refused.value.status == 502
    assert "certificate" in refused.value.message and "issuer" in refused.value.message


async def test_certificate_for_another_host_is_refused(tmp_path: Path) -> None:
    pair = tls_pair(tmp_path, "ark.example.com")
    async with raw_server(answer_each(echo), tls=pair.server) as origin:
        async with opened(f"https://localhost:{origin.port}",
                          ca_file=str(pair.ca_file)) as upstream:
            with pytest.raises(GatewayError) as refused:
                await call(upstream, "create")
    assert refused.value.status == 502
    assert "localhost" in refused.value.message and "certificate" in refused.value.message
    assert refused.value.headers.get("x-should-retry") != "false"  # nothing was sent
    assert origin.requests == []


# --------------------------------------------------------------------------- IPv6


async def test_ipv6_upstream_and_ipv6_literal_file_url() -> None:
    async with raw_server(answer_each(echo), host="::1") as origin:
        async with opened(origin.origin + "/api/v3") as upstream:
            reply = await call(upstream, "get")
            status, _, body = await read_file(upstream, f"{origin.origin}/file.mp4?sig=x")
    assert reply.status == 200 and status == 200
    assert orjson.loads(body)["path"] == "/file.mp4?sig=x"
    assert {r.headers["host"] for r in origin.requests} == {f"[::1]:{origin.port}"}


# --------------------------------------------------------------------------- oversized


@pytest.mark.parametrize("head", [
    "X-Huge: " + "h" * 70_000,
    "\r\n".join(f"X-Many-{i}: {'v' * 50}" for i in range(400)),
], ids=["one-huge-header", "many-headers"])
async def test_oversized_answer_heads_are_refused(head: str) -> None:
    wire = f"HTTP/1.1 200 OK\r\n{head}\r\nContent-Length: 2\r\n\r\n{{}}".encode()
    async with raw_server(answer_each(lambda s, r: wire)) as server:
        async with opened(server.origin) as upstream:
            started = time.monotonic()
            with pytest.raises(GatewayError) as refused:
                await call(upstream, "get")
    assert refused.value.status == 502 and refused.value.code == "UpstreamBadResponse"
    assert time.monotonic() - started < 2.0


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
async def test_task_answer_over_8_mb_is_refused_without_reading_it_all(framing: str) -> None:
    size, piece = 40 * 1024 * 1024, b"z" * (1024 * 1024)

    async def handler(server: RawServer, reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter) -> None:
        await server.next_request(reader)
        server.state["written"] = 0
        if framing == "content-length":
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size)
        else:
            writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        for _ in range(size // len(piece)):
            writer.write(piece if framing == "content-length"
                         else b"%x\r\n%s\r\n" % (len(piece), piece))
            await writer.drain()
            server.state["written"] += len(piece)

    async with raw_server(handler) as server:
        async with opened(server.origin) as upstream:
            with pytest.raises(GatewayError) as refused:
                await call(upstream, "get")
            await asyncio.sleep(0.2)
    assert refused.value.status == 502 and "8 MB" in refused.value.message
    assert server.state["written"] < size // 2  # the rest was never read


# --------------------------------------------------------------------------- addresses


async def test_dead_first_address_costs_a_fraction_of_the_connect_timeout(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """`ark.test` resolves to an address that never answers a SYN, then to a live one:
    Happy Eyeballs starts the second attempt after 250 ms instead of waiting out the first."""
    blackhole = socket.socket()
    blackhole.bind(("127.0.0.3", 0))
    blackhole.listen(0)
    filler = socket.create_connection(blackhole.getsockname())  # the backlog is now full
    loop = asyncio.get_running_loop()
    async with raw_server(answer_each(echo)) as live:
        addresses = [blackhole.getsockname(), ("127.0.0.1", live.port)]

        async def resolve(host: str, port: object, *args: object, **kwargs: object
                          ) -> list[tuple[socket.AddressFamily, socket.SocketKind, int, str,
                                          tuple[str, int]]]:
            assert host == "ark.test"
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", a) for a in addresses]

        monkeypatch.setattr(loop, "getaddrinfo", resolve)
        try:
            async with opened("http://ark.test/api/v3", timeouts={"connect": 5.0}) as upstream:
                started = time.monotonic()
                reply = await call(upstream, "get")
                elapsed = time.monotonic() - started
        finally:
            filler.close()
            blackhole.close()
    assert reply.status == 200 and elapsed < 1.5
