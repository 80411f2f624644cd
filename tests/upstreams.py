"""An `Upstream` (gateway/upstream/) opened on its own, for tests of that module's interface."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Any

from gateway.config import UpstreamConfig
from gateway.observability.metrics import Metrics
from gateway.upstream import Upstream, UpstreamReply
from tests.leaks import CANARY_UPSTREAM_KEY

# Two upstream keys, so tests can tell whose answer is whose; the first is a leak canary.
KEY_SECRETS = {"one": CANARY_UPSTREAM_KEY, "two": "second-upstream-key-Zr4t"}


def upstream_config(base_url: str, *, keys: Iterable[str] = ("one",),
                    env: dict[str, str] | None = None, **settings: Any) -> UpstreamConfig:
    """Secrets as ${ENV} references, as a team's config would have them."""
    names = list(keys)
    data = {"name": "ark", "base_url": base_url,
            "keys": [{"name": k, "secret": f"${{KEY_{k.upper()}}}"} for k in names], **settings}
    environment = {f"KEY_{k.upper()}": KEY_SECRETS[k] for k in names} | (env or {})
    return UpstreamConfig.model_validate(data, context={"env": environment})


@asynccontextmanager
async def opened(base_url: str, **settings: Any) -> AsyncIterator[Upstream]:
    upstream = Upstream(upstream_config(base_url, **settings), metrics=Metrics(()))
    await upstream.open()
    try:
        yield upstream
    finally:
        await upstream.aclose()


async def call(upstream: Upstream, operation: str, *, key: str = "one",
               task_id: str = "cgt-1", body: bytes = b'{"model":"m"}') -> UpstreamReply:
    """One task call by name: create, get or delete."""
    if operation == "create":
        return await upstream.create_task(body, key=key, client_request_id=None)
    if operation == "get":
        return await upstream.get_task(task_id, key=key, client_request_id=None)
    return await upstream.delete_task(task_id, key=key, client_request_id=None)


async def read_file(upstream: Upstream, url: str, headers: dict[str, str] | None = None
                    ) -> tuple[int, dict[str, str], bytes]:
    async with upstream.open_file(url, headers=headers or {}) as file:
        body = b"".join([chunk async for chunk in file.chunks()])
        return file.status, file.headers, body
