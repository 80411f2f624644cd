"""Archived files over HTTP: the OpenAI download, the native signed links, and native answers
whose URLs point at those links.

A stored file answers like a file host: Content-Length, Accept-Ranges, an ETag and
Last-Modified, one `Range` (206, or 416 with `content-range: bytes */size`), `If-Range`
(a validator that does not match gets the whole file).
"""

from __future__ import annotations

import re
from email.utils import formatdate
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from gateway.errors import GatewayError, Surface
from gateway.results.archiver import Archiver, Manifest
from gateway.results.links import FILE_NAMES
from gateway.services import services_of
from gateway.store.base import TaskRecord
from gateway.surfaces.http import error_response, with_errors
from gateway.tasks.answers import stored_task

MEDIA_TYPES = {"video.mp4": "video/mp4", "last_frame.png": "image/png"}
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def base_url(request: Request) -> str:
    """Where clients reach this gateway: server.public_url, else the request's own origin."""
    configured = services_of(request).config.server.public_url
    return (configured or str(request.base_url)).rstrip("/")


async def archived_file(archive: Archiver, request: Request, manifest: Manifest, name: str,
                        surface: Surface) -> Response | None:
    """The stored file as a download; None when it is not (or no longer) stored."""
    size = manifest.files.get(name)
    if size is None:
        return None
    etag = f'"{manifest.task_id}-{name}-{size}"'
    modified = formatdate(manifest.archived_at, usegmt=True)
    headers = {"accept-ranges": "bytes", "etag": etag, "last-modified": modified}
    wanted = request.headers.get("range")
    validator = request.headers.get("if-range")
    if wanted is not None and validator is not None and validator not in (etag, modified):
        wanted = None  # the client's copy is another file: send the whole of this one
    span = _span(wanted, size) if wanted is not None else None
    if span == "unsatisfiable":
        error = GatewayError(416, "range_not_satisfiable" if surface == "openai"
                             else "InvalidRange",
                             f"The requested range ({wanted}) is outside the file "
                             f"(bytes */{size}).", param="range" if surface == "openai" else None)
        response = error_response(error, surface)
        response.headers["content-range"] = f"bytes */{size}"
        return response
    start, end = span if isinstance(span, tuple) else (0, size - 1)
    headers["content-length"] = str(max(end - start + 1, 0))
    status = 200
    if isinstance(span, tuple):
        status = 206
        headers["content-range"] = f"bytes {start}-{end}/{size}"
    if request.method == "HEAD":
        return Response(status_code=status, headers=headers, media_type=MEDIA_TYPES[name])
    stored = await archive.results.read(f"{manifest.task_id}/{name}", start=start, end=end)
    if stored is None:
        return None
    return StreamingResponse(stored.chunks, status, headers, media_type=MEDIA_TYPES[name])


def _span(header: str, size: int) -> tuple[int, int] | str | None:
    """One byte range of a `size`-byte file; None for a header to ignore (several ranges, a
    unit other than bytes), "unsatisfiable" for one outside the file."""
    match = _RANGE.match(header.strip())
    if match is None:
        return None
    first, last = match.group(1), match.group(2)
    if not first:
        if not last or int(last) == 0:
            return "unsatisfiable" if last else None
        return max(size - int(last), 0), size - 1
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if last and int(last) < start:
        return None
    if start >= size:
        return "unsatisfiable"
    return start, end


async def signed_file(request: Request) -> Response:
    """GET /files/{task_id}/{name}?expires=…&sig=…: no Authorization, the link is the key."""
    services = services_of(request)
    archive = services.archive
    task_id, name = request.path_params["task_id"], request.path_params["name"]
    if archive is None or archive.signer is None or name not in MEDIA_TYPES:
        raise GatewayError(404, "NotFound", "The specified file does not exist.")
    query = request.query_params
    if not archive.signer.valid(task_id, name, query.get("expires"), query.get("sig"),
                                now=services.clock()):
        raise GatewayError(403, "AccessDenied",
                           "The file link is invalid or has expired; get a fresh one by "
                           "retrieving the task again.")
    manifest = await archive.archived(task_id)
    response = None
    if manifest is not None and not archive.aged_out(manifest.created_at):
        response = await archived_file(archive, request, manifest, name, "native")
    if response is None:
        raise GatewayError(404, "NotFound", "The specified file does not exist.")
    return response


async def native_view(archive: Archiver, request: Request, record: TaskRecord,
                      view: dict[str, Any]) -> dict[str, Any]:
    """`view` (a native task object) with its result URLs pointing at the archive, when the
    task is archived and the config asks for it; else `view` unchanged."""
    if (not archive.config.rewrite_native_urls or record.status != "succeeded"
            or archive.signer is None):
        return view
    manifest = await archive.archived(record.task_id)
    content = view.get("content")
    if manifest is None or not isinstance(content, dict):
        return view
    base, now = base_url(request), archive.clock()
    for field, name in FILE_NAMES.items():
        if name in manifest.files and field in content:
            content[field] = archive.signer.link(base, record.task_id, name, now=now)
    return view


async def native_body(archive: Archiver, request: Request, record: TaskRecord) -> bytes | None:
    """The native GET answer of an archived task (its links rewritten): the record answers,
    the upstream is not asked (the archive's links do not expire with Ark's). None when the
    task is not archived or its URLs are Ark's to keep."""
    if (not archive.config.rewrite_native_urls or record.status != "succeeded"
            or record.task_json is None):
        return None
    if await archive.archived(record.task_id) is None:
        return None
    task = stored_task(record)
    if task is None:
        return None
    return orjson.dumps(await native_view(archive, request, record, task))


def routes() -> list[Route]:
    return [Route("/files/{task_id}/{name}", with_errors("native", signed_file),
                  methods=["GET", "HEAD"])]
