"""GET /v1/videos/{id}/content: streams the result file from its signed URL, Range included.

The file is relayed chunk by chunk as the upstream sends it, so memory stays flat whatever its
size, with the upstream's framing: its Content-Length when it gave one, chunked otherwise. A
file that ends short is cut off for the client too, never finished as if it were whole. The
URL comes from the task's poll (gateway/tasks/polls.py), which refreshes one about to expire;
one the file host refuses all the same is refreshed once by a GET of the task that no
freshness holds back.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import AsyncExitStack
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from gateway.errors import GatewayError, UpstreamUnavailable
from gateway.observability.logs import get_logger
from gateway.observability.middleware import note
from gateway.results.links import FILE_NAMES
from gateway.results.serving import archived_file
from gateway.services import caller_of, request_id_of, services_of
from gateway.store.base import TaskRecord
from gateway.surfaces.http import error_response, with_errors
from gateway.surfaces.videos import PREFIX, owned_video
from gateway.tasks import pipeline as tasks
from gateway.upstream import UpstreamFile
from gateway.upstream.files import FileTruncated

VARIANT_URLS = {"video": "video_url", "thumbnail": "last_frame_url"}
ARCHIVED_NAMES = {variant: FILE_NAMES[field] for variant, field in VARIANT_URLS.items()}
FORWARDED_REQUEST_HEADERS = ("range", "if-range")
EXPIRED_STATUSES = (401, 403, 404, 410)  # what object stores answer for a stale signature
RELAYED_STATUSES = (200, 206, 304)
log = get_logger("gateway.downloads")


class UpstreamFileResponse(Response):
    """Relays an open upstream file; stops (and closes it) as soon as the client goes away.

    Starlette's Response would add `content-length: 0` to a body it does not hold, so the
    headers are exactly the upstream's relayed ones.
    """

    def __init__(self, upstream: UpstreamFile, stack: AsyncExitStack, *,
                 on_bytes: Callable[[int], None] | None = None) -> None:
        self.upstream = upstream
        self.stack = stack
        self.on_bytes = on_bytes
        self.status_code = upstream.status
        self.background = None
        self.raw_headers = [(k.encode("latin-1"), v.encode("latin-1"))
                            for k, v in upstream.headers.items()]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await send({"type": "http.response.start", "status": self.status_code,
                        "headers": self.raw_headers})
            if scope["method"] != "HEAD" and self.status_code != 304:
                relay = asyncio.ensure_future(self._relay(send))
                watcher = asyncio.ensure_future(_disconnected(receive))
                try:
                    await asyncio.wait((relay, watcher), return_when=asyncio.FIRST_COMPLETED)
                finally:
                    watcher.cancel()
                    if not relay.done():  # the client left: stop pulling the file
                        relay.cancel()
                if relay.cancelled():
                    return
                if not relay.result():
                    return  # truncated: end without the final message, so the client sees it
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            await self.stack.aclose()

    async def _relay(self, send: Send) -> bool:
        """Relay the body; False when the upstream cut it short."""
        sent = 0
        try:
            async for chunk in self.upstream.chunks():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
                sent += len(chunk)
        except FileTruncated as exc:
            note(download_truncated=True)
            log.warning("download_truncated", bytes_sent=sent, reason=str(exc))
            return False
        finally:
            if self.on_bytes is not None:
                self.on_bytes(sent)
        return True


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def video_content(request: Request) -> Response:
    services = services_of(request)
    identity = await caller_of(request, services)
    record = await owned_video(services, identity, request.path_params["video_id"])
    variant = request.query_params.get("variant") or "video"
    if variant == "spritesheet":
        raise GatewayError(404, "variant_not_available",
                           "The spritesheet variant is not available: Seedance produces no "
                           "spritesheet. Use variant=video or variant=thumbnail.", param="variant")
    if variant not in VARIANT_URLS:
        raise GatewayError(400, "invalid_value", "variant must be one of video, thumbnail, "
                           "spritesheet.", param="variant")
    headers = {k: v for k in FORWARDED_REQUEST_HEADERS if (v := request.headers.get(k))}
    if services.archive is not None and record.status == "succeeded":
        manifest = await services.archive.archived(record.task_id)
        if manifest is not None:  # served by the gateway itself, the upstream is not asked
            served = await archived_file(services.archive, request, manifest,
                                         ARCHIVED_NAMES[variant], "openai")
            if served is not None:
                return served

    # The record answers while its URLs are not about to expire (gateway/tasks/freshness.py).
    polled = await tasks.poll(services, record, request_id=request_id_of(request),
                              surface="openai")
    refreshed = polled.reply is not None
    url = _file_url(record, polled.task(), variant)
    while True:
        stack = AsyncExitStack()
        upstream = await stack.enter_async_context(
            services.upstream_of(record).open_file(url, headers=headers))
        if upstream.status not in EXPIRED_STATUSES or refreshed:
            break
        await stack.aclose()  # a stale signature: ask the upstream for a fresh URL, once
        polled = await tasks.refresh(services, record, request_id=request_id_of(request),
                                     surface="openai")
        url, refreshed = _file_url(record, polled.task(), variant), True
    if upstream.status == 416:
        response = _range_not_satisfiable(upstream, request.headers.get("range"))
        await stack.aclose()
        return response
    if upstream.status not in RELAYED_STATUSES:
        status = upstream.status
        await stack.aclose()
        raise UpstreamUnavailable(f"the result file could not be fetched (HTTP {status})",
                                  may_exist=False)
    counter = services.metrics.download_bytes.labels(variant)
    return UpstreamFileResponse(upstream, stack, on_bytes=counter.inc)


def _range_not_satisfiable(upstream: UpstreamFile, sent: str | None) -> Response:
    """416 in OpenAI's error shape, keeping `content-range: bytes */<size>`."""
    size = upstream.headers.get("content-range")
    error = GatewayError(416, "range_not_satisfiable",
                         f"The requested range ({sent}) is outside the file"
                         + (f" ({size})." if size else "."), param="range")
    response = error_response(error, "openai")
    if size:
        response.headers["content-range"] = size
    return response


def _file_url(record: TaskRecord, task: dict[str, Any], variant: str) -> str:
    status = task.get("status")
    if status != "succeeded":
        if status in ("queued", "running"):
            message = f"Video {record.task_id} is not ready yet; its status is {status}."
        else:
            message = f"Video {record.task_id} has no content: it ended {status}."
        raise GatewayError(404, "video_not_ready", message, param="video_id")
    content = task.get("content")
    url = content.get(VARIANT_URLS[variant]) if isinstance(content, dict) else None
    if not isinstance(url, str) or not url:
        what = "a thumbnail" if variant == "thumbnail" else "a video file"
        raise GatewayError(404, "variant_not_available",
                           f"Video {record.task_id} has no {what}"
                           + (" (it was created without return_last_frame)."
                              if variant == "thumbnail" else "."),
                           param="variant")
    return url


def routes() -> list[Route]:
    return [Route(PREFIX + "/{video_id}/content", with_errors("openai", video_content),
                  methods=["GET", "HEAD"])]
