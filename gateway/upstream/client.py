"""Calls to one Ark-compatible upstream: its task API, with the upstream key injected here."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

import aiohttp
from yarl import URL

from gateway.config import UpstreamConfig
from gateway.errors import GatewayError, UpstreamBadResponse
from gateway.observability.logs import get_logger
from gateway.observability.metrics import Metrics
from gateway.observability.middleware import note
from gateway.upstream.failures import classify
from gateway.upstream.files import UpstreamFile, open_file
from gateway.upstream.keypool import KeyPool
from gateway.upstream.session import USER_AGENT, ProxyChoice, open_session, tls_context

TASKS_PATH = "/contents/generations/tasks"
# Ark's task answers are a few KB; past this an answer is not one, and is not buffered.
MAX_ANSWER_BYTES = 8 * 1024 * 1024
LARGE_BODY_BYTES = 1 << 20  # creates with inline media also get the write timeout
log = get_logger("gateway.upstream")


@dataclass(frozen=True, slots=True)
class UpstreamReply:
    status: int
    body: bytes
    request_id: str | None  # the upstream's x-request-id
    retry_after: str | None = None  # passed on to the caller as is


class Upstream:
    """One configured upstream. Built once per app; opened and closed in its lifespan.

    The upstream key is chosen here, after translation, and only here: the caller passes a key
    *name* and never sees the secret.
    """

    def __init__(self, config: UpstreamConfig, *, metrics: Metrics) -> None:
        self.name = config.name
        self.validation = config.validation
        self._config = config
        self._metrics = metrics
        self._tasks_url = URL(config.base_url + TASKS_PATH)
        self._auth = {k.name: f"Bearer {k.secret.get_secret_value()}" for k in config.keys}
        self.keys = KeyPool(config.name, [k.name for k in config.keys],
                            probe_interval=config.key_probe_interval,
                            cooldown=config.key_cooldown, metrics=metrics)
        t = config.timeouts
        connect = dict(connect=t.pool + t.connect, sock_connect=t.connect)
        # `read` bounds the whole answer (sock_read alone would let a server drip forever).
        self._call_timeout = aiohttp.ClientTimeout(total=t.pool + t.connect + t.read,
                                                   sock_read=t.read, **connect)
        self._upload_timeout = aiohttp.ClientTimeout(
            total=t.pool + t.connect + t.read + t.write, sock_read=t.read + t.write, **connect)
        # Files stream as long as bytes keep coming; `read` is the longest silence.
        self._file_timeout = aiohttp.ClientTimeout(total=None, sock_read=t.read, **connect)
        self._session: aiohttp.ClientSession | None = None
        self._proxies: ProxyChoice | None = None
        self._tasks_proxy: URL | None = None

    async def open(self) -> None:
        config = self._config
        proxy = config.proxy.get_secret_value() if config.proxy is not None else None
        self._proxies = ProxyChoice(proxy, use_environment=config.env_proxy)
        self._tasks_proxy = self._proxies.for_url(self._tasks_url)
        self._session = open_session(max_connections=config.max_connections,
                                     tls=tls_context(config.ca_file))

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def has_key(self, name: str) -> bool:
        return name in self._auth

    async def watch_keys(self, *, tick: float = 1.0) -> None:
        """Runs for the app's life: probes quarantined keys when due and keeps the key-state
        gauge current (a cooldown ends without a call). An error is logged, never fatal."""
        while True:
            try:
                self.keys.refresh()
                await self.probe_due_keys()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("upstream_key_watch_failed", upstream=self.name)
            await asyncio.sleep(tick)

    async def probe_due_keys(self) -> None:
        """Probes each quarantined key whose probe is due: a 200 (or a 429) brings it back."""
        for key in self.keys.due_probes():
            try:
                reply = await self.probe_key(key)
            except GatewayError:
                continue  # no answer: the key stays out until its next probe
            self.keys.report(key, reply.status, reply.retry_after)

    async def probe_key(self, key: str) -> UpstreamReply:
        """The cheapest authenticated call: one task of the key's list."""
        query = [("page_num", "1"), ("page_size", "1")]
        return await self._call("probe", "GET", self._tasks_url.with_query(query), key, None,
                                None)

    async def create_task(
        self, body: bytes, *, key: str, client_request_id: str | None
    ) -> UpstreamReply:
        return await self._call("create", "POST", self._tasks_url, key, client_request_id, body)

    async def get_task(
        self, task_id: str, *, key: str, client_request_id: str | None
    ) -> UpstreamReply:
        return await self._call("get", "GET", self._tasks_url / task_id, key,
                                client_request_id, None)

    async def list_tasks(
        self, query: Sequence[tuple[str, str]], *, key: str, client_request_id: str | None
    ) -> UpstreamReply:
        """Ark's list: `query` is its parameters (page_num, page_size, filter.task_ids repeated,
        filter.model, filter.status, …); the answer is {"items": [...], "total": n}."""
        return await self._call("list", "GET", self._tasks_url.with_query(list(query)), key,
                                client_request_id, None)

    async def delete_task(
        self, task_id: str, *, key: str, client_request_id: str | None
    ) -> UpstreamReply:
        return await self._call("delete", "DELETE", self._tasks_url / task_id, key,
                                client_request_id, b"{}")

    @asynccontextmanager
    async def open_file(
        self, url: str, *, headers: Mapping[str, str]
    ) -> AsyncIterator[UpstreamFile]:
        """Stream a signed result URL (no Authorization); the caller reads `chunks()`."""
        start = time.perf_counter()
        try:
            target = URL(url, encoded=True)
            file = await open_file(self._opened(), target, headers=headers,
                                   proxy=self._proxy_for(target), timeout=self._file_timeout)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise self._failed("download", exc, start, is_create=False) from None
        self._observe("download", str(file.status), start)
        try:
            yield file
        finally:
            file.release()

    def _opened(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError(f"upstream {self.name} is used before open()")
        return self._session

    def _proxy_for(self, url: URL) -> URL | None:
        assert self._proxies is not None
        return self._proxies.for_url(url)

    async def _call(
        self, operation: str, method: str, url: URL, key: str, client_request_id: str | None,
        body: bytes | None,
    ) -> UpstreamReply:
        headers = {"Authorization": self._auth[key], "Accept": "application/json",
                   "User-Agent": USER_AGENT}
        if body is not None:
            headers["Content-Type"] = "application/json"
        if client_request_id:
            headers["X-Client-Request-Id"] = client_request_id
        is_create = operation == "create"
        timeout = (self._upload_timeout if body and len(body) > LARGE_BODY_BYTES
                   else self._call_timeout)
        start = time.perf_counter()
        try:
            with self.keys.busy(key):
                reply = await self._exchange(method, url, body, headers, timeout,
                                             may_exist=is_create)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise self._failed(operation, exc, start, is_create=is_create) from None
        except UpstreamBadResponse:
            self._observe(operation, "error", start)
            raise
        self._observe(operation, str(reply.status), start)
        if 300 <= reply.status < 400:
            raise UpstreamBadResponse(
                f"upstream {self.name} redirected the task API (HTTP {reply.status}); its "
                "base_url must be the final address, e.g. https://host/api/v3",
                may_exist=is_create)
        return reply

    async def _exchange(self, method: str, url: URL, body: bytes | None,
                        headers: dict[str, str], timeout: aiohttp.ClientTimeout, *,
                        may_exist: bool) -> UpstreamReply:
        async with self._opened().request(
            method, url, data=body, headers=headers, proxy=self._tasks_proxy,
            timeout=timeout, allow_redirects=False,
        ) as response:
            answer = await _read_answer(response, self.name, may_exist=may_exist)
            return UpstreamReply(response.status, answer, response.headers.get("x-request-id"),
                                 response.headers.get("retry-after"))

    def _failed(self, operation: str, exc: BaseException, start: float, *,
                is_create: bool) -> GatewayError:
        target = "the result file" if operation == "download" else f"upstream {self.name}"
        failure = classify(exc, target=target, sent_may_create=is_create)
        self._observe(operation, failure.metric_status, start)
        note(upstream_error=failure.reason)
        log.warning("upstream_call_failed", upstream=self.name, operation=operation,
                    reason=failure.reason)
        return failure.error

    def _observe(self, operation: str, status: str, start: float) -> None:
        elapsed = time.perf_counter() - start
        self._metrics.upstream_call(self.name, operation, status, elapsed)
        note(upstream_status=status, upstream_ms=round(elapsed * 1000, 3))


async def _read_answer(response: aiohttp.ClientResponse, upstream: str, *,
                       may_exist: bool) -> bytes:
    """The whole answer, refusing one over MAX_ANSWER_BYTES without buffering past it (the
    limit counts decoded bytes: a small gzip answer may decode to a large one)."""
    declared = response.content_length
    if declared is not None and declared > MAX_ANSWER_BYTES:
        raise _too_large(upstream, may_exist)
    if declared is not None and "Content-Encoding" not in response.headers:
        return await response.read()  # the parser stops at Content-Length
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_any():
        size += len(chunk)
        if size > MAX_ANSWER_BYTES:
            raise _too_large(upstream, may_exist)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(upstream: str, may_exist: bool) -> UpstreamBadResponse:
    return UpstreamBadResponse(
        f"upstream {upstream} sent an answer over {MAX_ANSWER_BYTES // (1024 * 1024)} MB, "
        "which is no task API answer", may_exist=may_exist)
