"""A lean HTTP/1.1 keep-alive client for the upstream's small JSON task calls.

Every proxied request pays for this call, and httpx's request pipeline costs 0.6–0.8 ms of CPU
per request on this kind of machine (aiohttp 0.16 ms) against a 0.3 ms budget for the whole
gateway. This pool writes prebuilt request bytes on an asyncio transport and parses the answer
with httptools (the C parser uvicorn uses): about 0.035 ms. It does only what Ark's task API
needs: small bodies, Content-Length or chunked responses, keep-alive, TLS. Result files, which
may be large and live on other hosts, still go through httpx (see upstream.py).
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections import deque
from dataclasses import dataclass
from typing import cast
from urllib.parse import urlsplit

import httptools

# Idle connections older than this are not reused: servers close keep-alive connections after
# a few seconds (uvicorn: 5 s), and a create must never be sent on a connection being closed.
KEEPALIVE_EXPIRY = 4.0


class PoolTimeout(Exception):
    """No connection became free in time."""


class ConnectFailed(Exception):
    """The connection could not be opened: nothing was sent."""


class ConnectTimeout(ConnectFailed):
    pass


class ResponseTimeout(Exception):
    """The request was sent but the answer did not come in time."""


class ConnectionBroken(Exception):
    """The connection closed or sent garbage after the request was (maybe) sent."""


@dataclass(frozen=True, slots=True)
class RawResponse:
    status: int
    body: bytes
    request_id: str | None


class _Connection(asyncio.Protocol):
    """One keep-alive connection; carries one request at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future[RawResponse] | None = None
        self.body: list[bytes] = []
        self.request_id: str | None = None
        self.closed = False
        self.idle_since = 0.0

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(ConnectionBroken(f"malformed response: {exc}"))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail(ConnectionBroken("connection closed before the response was complete"))

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() == b"x-request-id":
            self.request_id = value.decode("latin-1")

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        waiter, self.waiter = self.waiter, None
        response = RawResponse(self.parser.get_status_code(), b"".join(self.body),
                               self.request_id)
        self.body, self.request_id = [], None
        if not self.parser.should_keep_alive():
            self.close()
        if waiter is not None and not waiter.done():
            waiter.set_result(response)

    def _fail(self, error: Exception) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(error)

    def usable(self, now: float) -> bool:
        return (not self.closed and self.transport is not None
                and not self.transport.is_closing() and now - self.idle_since < KEEPALIVE_EXPIRY)

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    async def exchange(self, request: bytes, timeout: float) -> RawResponse:
        assert self.transport is not None
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[RawResponse] = loop.create_future()
        self.waiter = waiter
        self.transport.write(request)
        # A bare timer handle: asyncio.timeout() costs several times more per request.
        timer = loop.call_later(timeout, self._expire, waiter)
        try:
            return await waiter
        except asyncio.CancelledError:
            # The caller gave up; the answer may still come: never reuse this connection.
            self.waiter = None
            self.close()
            raise
        finally:
            timer.cancel()

    def _expire(self, waiter: asyncio.Future[RawResponse]) -> None:
        if not waiter.done():
            waiter.set_exception(ResponseTimeout())
            self.waiter = None
            self.close()


class ConnectionPool:
    """Keep-alive connections to one origin, most recently used first."""

    def __init__(self, base_url: str, *, max_connections: int, connect_timeout: float,
                 pool_timeout: float) -> None:
        parts = urlsplit(base_url)
        self.host = parts.hostname or "localhost"
        self.tls = parts.scheme == "https"
        self.port = parts.port or (443 if self.tls else 80)
        self.base_path = parts.path.rstrip("/")
        default_port = (443 if self.tls else 80)
        host = f"[{self.host}]" if ":" in self.host else self.host  # an IPv6 literal
        self.host_header = host if self.port == default_port else f"{host}:{self.port}"
        self._ssl = ssl.create_default_context() if self.tls else None
        self._connect_timeout = connect_timeout
        self._pool_timeout = pool_timeout
        self._idle: deque[_Connection] = deque()
        self._slots = asyncio.Semaphore(max_connections)

    def request_head(self, method: str, path: str) -> bytes:
        return (f"{method} {self.base_path}{path} HTTP/1.1\r\n"
                f"Host: {self.host_header}\r\n").encode("latin-1")

    async def send(self, head: bytes, headers: bytes, body: bytes | None, *,
                   timeout: float) -> RawResponse:
        """Send one request. `head` is from request_head(); `headers` are CRLF-ended lines."""
        length = b"" if body is None else b"Content-Length: %d\r\n" % len(body)
        request = b"".join((head, headers, length, b"\r\n", body or b""))
        if self._slots.locked():  # only a full pool pays for a timeout
            try:
                async with asyncio.timeout(self._pool_timeout):
                    await self._slots.acquire()
            except TimeoutError:
                raise PoolTimeout() from None
        else:
            await self._slots.acquire()
        try:
            connection = await self._checkout()
            response = await connection.exchange(request, timeout)
            if not connection.closed:
                connection.idle_since = time.monotonic()
                self._idle.append(connection)
            return response
        finally:
            self._slots.release()

    async def _checkout(self) -> _Connection:
        now = time.monotonic()
        while self._idle:
            connection = self._idle.pop()
            if connection.usable(now):
                return connection
            connection.close()
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self._connect_timeout):
                _, connection = await loop.create_connection(
                    _Connection, self.host, self.port, ssl=self._ssl,
                    server_hostname=self.host if self.tls else None)
        except TimeoutError:
            raise ConnectTimeout() from None
        except OSError as exc:
            raise ConnectFailed(str(exc)) from None
        return connection

    def close(self) -> None:
        while self._idle:
            self._idle.pop().close()
