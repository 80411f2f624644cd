"""Calls to one Ark-compatible upstream: pooled client, injected upstream key, error mapping."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx

from gateway.config import UpstreamConfig
from gateway.errors import GatewayError, UpstreamTimeout, UpstreamUnavailable

TASKS_PATH = "/contents/generations/tasks"
_JSON = "application/json"


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

    def __init__(
        self, config: UpstreamConfig, *, transport: httpx.AsyncBaseTransport | None
    ) -> None:
        self.name = config.name
        self.validation = config.validation
        t = config.timeouts
        self._client = httpx.AsyncClient(
            base_url=config.base_url,
            transport=transport,
            timeout=httpx.Timeout(connect=t.connect, read=t.read, write=t.write, pool=t.pool),
            limits=httpx.Limits(max_connections=config.max_connections,
                                max_keepalive_connections=config.max_connections),
            headers={"accept": _JSON, "user-agent": "seedance-gateway"},
            follow_redirects=False,
            trust_env=False,
        )
        # Files (signed result URLs) are fetched with no Authorization at all.
        self._files = httpx.AsyncClient(
            transport=transport,
            timeout=httpx.Timeout(connect=t.connect, read=t.read, write=t.write, pool=t.pool),
            follow_redirects=True,
            trust_env=False,
        )
        self._auth = {k.name: f"Bearer {k.secret.get_secret_value()}" for k in config.keys}
        self._key_cycle = itertools.cycle([k.name for k in config.keys])

    def next_key(self) -> str:
        """The upstream key name for a new task (round robin spreads rate limits)."""
        return next(self._key_cycle)

    def has_key(self, name: str) -> bool:
        return name in self._auth

    async def aclose(self) -> None:
        await self._client.aclose()
        await self._files.aclose()

    async def create_task(
        self, body: bytes, *, key: str, client_request_id: str | None
    ) -> UpstreamReply:
        headers = self._headers(key, client_request_id, content_type=_JSON)
        return await self._send("POST", TASKS_PATH, headers=headers, content=body, is_create=True)

    async def get_task(
        self, task_id: str, *, key: str, client_request_id: str | None
    ) -> UpstreamReply:
        headers = self._headers(key, client_request_id)
        return await self._send("GET", f"{TASKS_PATH}/{task_id}", headers=headers)

    async def delete_task(
        self, task_id: str, *, key: str, client_request_id: str | None
    ) -> UpstreamReply:
        headers = self._headers(key, client_request_id, content_type=_JSON)
        return await self._send("DELETE", f"{TASKS_PATH}/{task_id}", headers=headers,
                                content=b"{}")

    @asynccontextmanager
    async def open_file(
        self, url: str, *, headers: Mapping[str, str]
    ) -> AsyncIterator[httpx.Response]:
        """Stream a signed result URL; the response body is read by the caller chunk by chunk."""
        try:
            request = self._files.build_request("GET", url, headers=headers)
            response = await self._files.send(request, stream=True)
        except httpx.TimeoutException:
            raise UpstreamTimeout("timed out fetching the result file", may_exist=False) from None
        except httpx.HTTPError:
            raise UpstreamUnavailable("could not fetch the result file", may_exist=False) from None
        try:
            yield response
        finally:
            await response.aclose()

    def _headers(
        self, key: str, client_request_id: str | None, *, content_type: str | None = None
    ) -> dict[str, str]:
        headers = {"authorization": self._auth[key]}
        if content_type is not None:
            headers["content-type"] = content_type
        if client_request_id:
            headers["x-client-request-id"] = client_request_id
        return headers

    async def _send(
        self, method: str, path: str, *, headers: dict[str, str], content: bytes | None = None,
        is_create: bool = False,
    ) -> UpstreamReply:
        try:
            response = await self._client.request(method, path, headers=headers, content=content)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            # Nothing reached the upstream: no task can exist, a retry is safe.
            kind = "timed out connecting to" if isinstance(exc, httpx.TimeoutException) else \
                "could not connect to"
            error: GatewayError = (
                UpstreamTimeout(f"{kind} upstream {self.name}", may_exist=False)
                if isinstance(exc, httpx.TimeoutException)
                else UpstreamUnavailable(f"{kind} upstream {self.name}", may_exist=False)
            )
            raise error from None
        except httpx.TimeoutException:
            raise UpstreamTimeout(
                f"upstream {self.name} did not answer in time", may_exist=is_create
            ) from None
        except httpx.HTTPError:
            raise UpstreamUnavailable(
                f"upstream {self.name} closed the connection", may_exist=is_create
            ) from None
        return UpstreamReply(response.status_code, response.content,
                             response.headers.get("x-request-id"))
