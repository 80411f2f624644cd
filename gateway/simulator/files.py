"""Result file downloads: pre-signed (no auth), streamed, with single-range and HEAD support."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator, Mapping
from types import MappingProxyType

import anyio
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from gateway.simulator.media import StoredObject
from gateway.simulator.signing import Signature
from gateway.simulator.state import SimulatorState, simulator_of

VIDEO_FILE = "video.mp4"
LAST_FRAME_FILE = "last_frame.png"
_MEDIA_TYPES: Mapping[str, str] = MappingProxyType(
    {VIDEO_FILE: "video/mp4", LAST_FRAME_FILE: "image/png"})
_CHUNKS_PER_TURN = 16
_SINGLE_RANGE = re.compile(r"bytes=(?P<first>[0-9]*)-(?P<last>[0-9]*)")


class RangeNotSatisfiable(Exception):
    pass


def file_path(task_id: str, filename: str) -> str:
    return f"/files/{task_id}/{filename}"


def signed_url(sim: SimulatorState, base_url: str, task_id: str, filename: str) -> str:
    path = file_path(task_id, filename)
    query = sim.signer.query(path, now=sim.clock(), ttl=sim.faults.url_ttl)
    return f"{base_url.rstrip('/')}{path}?{query}"


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """``[start, stop)`` for a single ``bytes=`` range, or None to send the whole file.

    Multiple or malformed ranges are ignored (RFC 9110 lets a server do that); a range that
    starts past the end raises :class:`RangeNotSatisfiable`.
    """
    match = None if header is None else _SINGLE_RANGE.fullmatch(header.strip())
    if match is None or match["first"] == match["last"] == "":
        return None
    if not match["first"]:  # suffix range: the last N bytes
        if int(match["last"]) == 0 or size == 0:
            raise RangeNotSatisfiable
        return max(size - int(match["last"]), 0), size
    start = int(match["first"])
    if match["last"] and int(match["last"]) < start:
        return None
    if start >= size:
        raise RangeNotSatisfiable
    return start, size if not match["last"] else min(int(match["last"]) + 1, size)


async def video_file(request: Request) -> Response:
    return _serve(request, VIDEO_FILE)


async def last_frame_file(request: Request) -> Response:
    return _serve(request, LAST_FRAME_FILE)


def _serve(request: Request, filename: str) -> Response:
    sim = simulator_of(request)
    task_id = request.path_params["task_id"]
    signature = sim.signer.check(
        file_path(task_id, filename), request.query_params, now=sim.clock())
    if signature is Signature.EXPIRED:
        return _tos_error(403, "AccessDenied", "Request has expired")
    if signature is Signature.INVALID:
        return _tos_error(403, "AccessDenied", "The request signature does not match")
    # Deleted tasks still count: a signed result outlives the task record, as on TOS.
    task = sim.tasks.get(task_id)
    if task is None:
        return _tos_error(404, "NoSuchKey", "The specified key does not exist.")
    if filename == VIDEO_FILE:
        stored = sim.media.video(sim.faults.video_bytes)
    else:
        stored = sim.media.last_frame(task.submission.width, task.submission.height)
    return _ranged(request, stored, _MEDIA_TYPES[filename], sim.media.zeros,
                   sim.faults.file_bytes_per_second)


def _ranged(request: Request, stored: StoredObject, media_type: str, zeros: bytes,
            bytes_per_second: int = 0) -> Response:
    try:
        span = byte_range(request.headers.get("range"), stored.size)
    except RangeNotSatisfiable:
        return Response(status_code=416, headers={
            "accept-ranges": "bytes", "content-range": f"bytes */{stored.size}"})
    headers = {"accept-ranges": "bytes", "content-type": media_type}
    start, stop = span or (0, stored.size)
    if span is not None:
        headers["content-range"] = f"bytes {start}-{stop - 1}/{stored.size}"
    headers["content-length"] = str(stop - start)
    status = 200 if span is None else 206
    if request.method == "HEAD":
        return Response(status_code=status, headers=headers)
    return StreamingResponse(_stream(stored.chunks(start, stop, zeros), bytes_per_second),
                             status, headers)


async def _stream(chunks: Iterator[bytes], bytes_per_second: int = 0) -> AsyncIterator[bytes]:
    # The chunks are ready-made (no blocking I/O), so no thread pool is needed; but a reader that
    # keeps up never makes `send` wait, so give other requests a turn every few MiB.
    for count, chunk in enumerate(chunks, start=1):
        yield chunk
        if bytes_per_second:
            await anyio.sleep(len(chunk) / bytes_per_second)
        elif count % _CHUNKS_PER_TURN == 0:
            await anyio.sleep(0)


def _tos_error(status: int, code: str, message: str) -> Response:
    # TOS is S3-like: errors are XML and carry no task data.
    body = f"<Error><Code>{code}</Code><Message>{message}</Message></Error>"
    return Response(body, status_code=status, media_type="application/xml")


def file_routes() -> list[Route]:
    return [
        Route(file_path("{task_id}", VIDEO_FILE), video_file, methods=["GET", "HEAD"]),
        Route(file_path("{task_id}", LAST_FRAME_FILE), last_frame_file, methods=["GET", "HEAD"]),
    ]
