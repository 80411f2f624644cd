"""Awkward servers for the upstream side, on raw asyncio sockets: every byte is the test's.

- :class:`RawServer`: runs a handler per accepted connection (plain or TLS, IPv4 or IPv6) and
  records the requests it read;
- answers built by hand: Content-Length, chunked, close-delimited, gzip, interim 1xx;
- :class:`ConnectProxy` (CONNECT tunnels) and :class:`ForwardProxy` (absolute-form requests);
- :func:`tls_pair`: a private CA (trustme) and a certificate for chosen names.
"""

from __future__ import annotations

import asyncio
import gzip
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import trustme

Handler = Callable[["RawServer", asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


# --------------------------------------------------------------------------- requests


@dataclass
class SeenRequest:
    method: str
    target: str  # as on the request line (origin-form, or absolute-form through a proxy)
    headers: dict[str, str]  # lower-case names; a repeated header keeps its last value
    body: bytes = b""
    raw_head: bytes = b""

    @property
    def path(self) -> str:
        """The path, also for an absolute-form target."""
        target = self.target
        if "://" in target:
            target = "/" + target.split("://", 1)[1].partition("/")[2]
        return target


async def read_request(reader: asyncio.StreamReader) -> SeenRequest | None:
    """One request (head + Content-Length body), or None when the peer closed."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
        return None
    lines = head.decode("latin-1").split("\r\n")
    method, target, _ = lines[0].split(" ", 2)
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    try:
        body = await reader.readexactly(length) if length else b""
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    return SeenRequest(method, target, headers, body, head)


# --------------------------------------------------------------------------- answers


def answer(body: bytes = b"{}", *headers: str, status: str = "200 OK") -> bytes:
    """A Content-Length answer."""
    lines = "".join(f"{h}\r\n" for h in headers)
    return f"HTTP/1.1 {status}\r\n{lines}Content-Length: {len(body)}\r\n\r\n".encode() + body


def json_answer(data: Any, *headers: str, status: str = "200 OK") -> bytes:
    return answer(orjson.dumps(data), "Content-Type: application/json", *headers, status=status)


def chunked_answer(*chunks: bytes, headers: tuple[str, ...] = (), end: bool = True) -> bytes:
    lines = "".join(f"{h}\r\n" for h in headers)
    out = f"HTTP/1.1 200 OK\r\n{lines}Transfer-Encoding: chunked\r\n\r\n".encode()
    for chunk in chunks:
        out += b"%x\r\n%s\r\n" % (len(chunk), chunk)
    return out + (b"0\r\n\r\n" if end else b"")


def close_delimited_head(*headers: str) -> bytes:
    """The head of an answer whose body ends when the server closes the connection."""
    lines = "".join(f"{h}\r\n" for h in headers)
    return f"HTTP/1.1 200 OK\r\n{lines}Connection: close\r\n\r\n".encode()


def gzipped(body: bytes) -> bytes:
    return gzip.compress(body, mtime=0)


INTERIM = {
    100: b"HTTP/1.1 100 Continue\r\n\r\n",
    103: b"HTTP/1.1 103 Early Hints\r\nLink: </hints.css>; rel=preload; as=style\r\n\r\n",
}


# --------------------------------------------------------------------------- servers


class RawServer:
    """Runs `handler` once per accepted connection; counts connections, keeps requests."""

    def __init__(self, handler: Handler, *, host: str = "127.0.0.1",
                 tls: ssl.SSLContext | None = None) -> None:
        self._handler = handler
        self.host = host
        self._tls = tls
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._writers: list[asyncio.StreamWriter] = []
        self.port = 0
        self.accepted = 0
        self.requests: list[SeenRequest] = []
        self.errors: list[BaseException] = []
        self.state: dict[str, Any] = {}  # for handlers that count or remember things

    @property
    def origin(self) -> str:
        scheme = "https" if self._tls is not None else "http"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{host}:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._on_connect, self.host, 0, ssl=self._tls)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _on_connect(self, reader: asyncio.StreamReader,
                          writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.append(writer)
        self.accepted += 1
        try:
            await self._handler(self, reader, writer)
        except (asyncio.CancelledError, ConnectionError, ssl.SSLError):
            pass
        except Exception as exc:  # a broken test server must fail the test, not hide
            self.errors.append(exc)
        finally:
            writer.close()
            with suppress(ConnectionError, ssl.SSLError):
                await writer.wait_closed()

    async def next_request(self, reader: asyncio.StreamReader) -> SeenRequest | None:
        request = await read_request(reader)
        if request is not None:
            self.requests.append(request)
        return request

    def seen(self, method: str) -> list[SeenRequest]:
        return [r for r in self.requests if r.method == method]

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
async def raw_server(handler: Handler, *, host: str = "127.0.0.1",
                     tls: ssl.SSLContext | None = None) -> AsyncIterator[RawServer]:
    server = RawServer(handler, host=host, tls=tls)
    await server.start()
    try:
        yield server
    finally:
        await server.aclose()
    assert not server.errors, server.errors


def answer_each(respond: Callable[[RawServer, SeenRequest], bytes]) -> Handler:
    """Keep-alive: answer every request on the connection with `respond(server, request)`."""

    async def handler(server: RawServer, reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter) -> None:
        while (request := await server.next_request(reader)) is not None:
            writer.write(respond(server, request))
            await writer.drain()

    return handler


# --------------------------------------------------------------------------- proxies


@dataclass
class ProxyLog:
    heads: list[SeenRequest] = field(default_factory=list)  # CONNECT or absolute-form requests

    def targets(self) -> list[str]:
        return [f"{h.method} {h.target}" for h in self.heads]


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with suppress(ConnectionError, asyncio.CancelledError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    with suppress(ConnectionError, OSError):
        writer.write_eof()


async def _splice(a: tuple[asyncio.StreamReader, asyncio.StreamWriter],
                  b: tuple[asyncio.StreamReader, asyncio.StreamWriter]) -> None:
    try:
        await asyncio.gather(_pipe(a[0], b[1]), _pipe(b[0], a[1]))
    finally:
        await _close(b[1])


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with suppress(ConnectionError, OSError, asyncio.CancelledError):
        await writer.wait_closed()


def connect_proxy(log: ProxyLog) -> Handler:
    """An HTTP proxy that only tunnels: `CONNECT host:port`, then bytes both ways."""

    async def handler(server: RawServer, reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter) -> None:
        head = await read_request(reader)
        if head is None:
            return
        log.heads.append(head)
        if head.method != "CONNECT":
            writer.write(answer(b"CONNECT only", status="405 Method Not Allowed"))
            return
        host, _, port = head.target.rpartition(":")
        upstream = await asyncio.open_connection(host.strip("[]"), int(port))
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        await writer.drain()
        await _splice((reader, writer), upstream)

    return handler


def forward_proxy(log: ProxyLog) -> Handler:
    """An HTTP proxy for plain http:// targets: absolute-form requests, each forwarded on a
    new connection to the origin in origin-form, its answer relayed back."""

    async def handler(server: RawServer, reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter) -> None:
        while (request := await read_request(reader)) is not None:
            log.heads.append(request)
            if "://" not in request.target:
                writer.write(answer(b"absolute-form only", status="400 Bad Request"))
                return
            authority = request.target.split("://", 1)[1].partition("/")[0]
            host, _, port = authority.rpartition(":")
            upstream_reader, upstream_writer = await asyncio.open_connection(
                host.strip("[]"), int(port))
            try:
                upstream_writer.write(_origin_form(request) + request.body)
                await upstream_writer.drain()
                reply = await read_answer(upstream_reader)
            finally:
                await _close(upstream_writer)
            writer.write(reply)
            await writer.drain()

    return handler


def _origin_form(request: SeenRequest) -> bytes:
    """The request as the proxy sends it on: origin-form, its own headers dropped."""
    lines = request.raw_head.decode("latin-1").split("\r\n")
    lines[0] = lines[0].replace(request.target, request.path, 1)
    kept = [line for line in lines if not line.lower().startswith("proxy-")]
    return "\r\n".join(kept).encode("latin-1")


async def read_answer(reader: asyncio.StreamReader) -> bytes:
    """One Content-Length answer, as raw bytes."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return head + await reader.readexactly(length)


# --------------------------------------------------------------------------- TLS


@dataclass(frozen=True)
class TlsPair:
    server: ssl.SSLContext  # for the test server
    ca_file: Path  # the private CA's certificate, for `ca_file:`


def tls_pair(directory: Path, *names: str) -> TlsPair:
    """A new private CA and a server certificate it signed for `names`."""
    ca = trustme.CA()
    certificate = ca.issue_cert(*names)
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    certificate.configure_cert(server)
    ca_file = directory / f"ca-{names[0]}.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    return TlsPair(server, ca_file)
