"""Calls to one Ark-compatible upstream: pooled connections, injected upstream key, errors."""

from __future__ import annotations

import itertools
import ssl
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass

from gateway.config import UpstreamConfig
from gateway.connection_pool import (
    ConnectFailed,
    ConnectionBroken,
    ConnectionPool,
    ConnectTimeout,
    PoolTimeout,
    ResponseTimeout,
)
from gateway.errors import UpstreamTimeout, UpstreamUnavailable
from gateway.file_fetch import FetchFailed, FetchTimeout, FileResponse, fetch
from gateway.metrics import Metrics
from gateway.middleware import note

TASKS_PATH = "/contents/generations/tasks"


@dataclass(frozen=True, slots=True)
class UpstreamReply:
    status: int
    body: bytes
    request_id: str | None  # upstream's x-request-id


class Upstream:
    """One configured upstream. Built once per app; all requests share its connection pool.

    The upstream key is chosen here, after translation, and only here: the caller passes a key
    *name* and never sees the secret.
    """

    def __init__(self, config: UpstreamConfig, *, metrics: Metrics) -> None:
        self.name = config.name
        self._metrics = metrics
        self.validation = config.validation
        t = config.timeouts
        self._read_timeout = t.read
        self._write_timeout = t.write
        self._pool = ConnectionPool(config.base_url, max_connections=config.max_connections,
                                    connect_timeout=t.connect, pool_timeout=t.pool)
        self._connect_timeout = t.connect
        self._tls: ssl.SSLContext | None = None
        self._auth = {
            k.name: f"Authorization: Bearer {k.secret.get_secret_value()}\r\n".encode("latin-1")
            for k in config.keys
        }
        self._key_cycle = itertools.cycle([k.name for k in config.keys])

    def next_key(self) -> str:
        """The upstream key name for a new task (round robin spreads rate limits)."""
        return next(self._key_cycle)

    def has_key(self, name: str) -> bool:
        return name in self._auth

    async def aclose(self) -> None:
        self._pool.close()

    async def create_task(
        self, body: bytes, *, key: str, client_request_id: str | None
    ) -> UpstreamReply:
        head = self._pool.request_head("POST", TASKS_PATH)
        return await self._send("create", head, key, client_request_id, body, is_create=True)

    async def get_task(
        self, task_id: str, *, key: str, client_request_id: str | None
    ) -> UpstreamReply:
        head = self._pool.request_head("GET", f"{TASKS_PATH}/{task_id}")
        return await self._send("get", head, key, client_request_id, None)

    async def delete_task(
        self, task_id: str, *, key: str, client_request_id: str | None
    ) -> UpstreamReply:
        head = self._pool.request_head("DELETE", f"{TASKS_PATH}/{task_id}")
        return await self._send("delete", head, key, client_request_id, b"{}")

    @asynccontextmanager
    async def open_file(
        self, url: str, *, headers: Mapping[str, str]
    ) -> AsyncIterator[FileResponse]:
        """Stream a signed result URL (no Authorization); the caller reads `chunks()`."""
        start = time.perf_counter()
        try:
            response = await fetch(url, headers=headers, connect_timeout=self._connect_timeout,
                                   read_timeout=self._read_timeout, tls=self._tls_context)
        except FetchTimeout:
            self._observe("download", "timeout", start)
            raise UpstreamTimeout("timed out fetching the result file", may_exist=False) from None
        except FetchFailed:
            self._observe("download", "error", start)
            raise UpstreamUnavailable("could not fetch the result file", may_exist=False) from None
        self._observe("download", str(response.status), start)
        try:
            yield response
        finally:
            response.close()

    def _tls_context(self) -> ssl.SSLContext:
        if self._tls is None:  # loading the CA store takes ~10 ms: only when first needed
            self._tls = ssl.create_default_context()
        return self._tls

    def _observe(self, operation: str, status: str, start: float) -> float:
        elapsed = time.perf_counter() - start
        self._metrics.upstream_call(self.name, operation, status, elapsed)
        note(upstream_status=status, upstream_ms=round(elapsed * 1000, 3))
        return elapsed

    async def _send(
        self, operation: str, head: bytes, key: str, client_request_id: str | None,
        body: bytes | None, *, is_create: bool = False,
    ) -> UpstreamReply:
        headers = self._auth[key] + _COMMON_HEADERS
        if body is not None:
            headers += b"Content-Type: application/json\r\n"
        if client_request_id:
            headers += b"X-Client-Request-Id: " + client_request_id.encode("latin-1") + b"\r\n"
        # Large bodies (base64 media) also get the write timeout to go out.
        timeout = self._read_timeout + (self._write_timeout if body and len(body) > 1 << 20
                                        else 0.0)
        start = time.perf_counter()
        try:
            raw = await self._pool.send(head, headers, body, timeout=timeout)
        except (ConnectTimeout, PoolTimeout, ResponseTimeout) as exc:
            self._observe(operation, "timeout", start)
            raise self._timeout(exc, is_create) from None
        except (ConnectFailed, ConnectionBroken) as exc:
            self._observe(operation, "error", start)
            raise self._unavailable(exc, is_create) from None
        self._observe(operation, str(raw.status), start)
        return UpstreamReply(raw.status, raw.body, raw.request_id)

    def _timeout(self, exc: Exception, is_create: bool) -> UpstreamTimeout:
        if isinstance(exc, ResponseTimeout):
            return UpstreamTimeout(f"upstream {self.name} did not answer in time",
                                   may_exist=is_create)
        # Nothing reached the upstream: no task can exist, a retry is safe.
        return UpstreamTimeout(f"timed out connecting to upstream {self.name}", may_exist=False)

    def _unavailable(self, exc: Exception, is_create: bool) -> UpstreamUnavailable:
        if isinstance(exc, ConnectionBroken):
            return UpstreamUnavailable(f"upstream {self.name} closed the connection",
                                       may_exist=is_create)
        return UpstreamUnavailable(f"could not connect to upstream {self.name}", may_exist=False)


_COMMON_HEADERS = b"Accept: application/json\r\nUser-Agent: seedance-gateway\r\n"
