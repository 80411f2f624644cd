"""The OpenAI surface: /v1/videos create, retrieve, list, delete (content: downloads.py)."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.errors import GatewayError
from gateway.keys.auth import ClientIdentity
from gateway.services import Services, caller_of, request_id_of, services_of
from gateway.store.base import ListQuery, TaskRecord
from gateway.surfaces.form import text_fields
from gateway.surfaces.http import (
    MAX_JSON_DEPTH,
    check_depth,
    json_response,
    parse_json,
    read_body,
    with_errors,
)
from gateway.tasks import pipeline as tasks
from gateway.tasks.answers import stored_task
from gateway.tasks.idempotency import REPLAYED_HEADER, idempotency_key
from gateway.translate.openai_form import unflatten_form
from gateway.translate.openai_request import UploadedFile, translate_create
from gateway.translate.openai_video import deleted_video, poll_after_ms, video_from_task

PREFIX = "/v1/videos"
MAX_LIST_LIMIT = 100
DEFAULT_LIST_LIMIT = 20
UNSUPPORTED = {
    "remix": "Remixing a video is not supported by this gateway (Seedance has no remix); "
             "create a new video instead.",
    "edits": "Video edits are not supported by this gateway yet.",
    "extensions": "Video extensions are not supported by this gateway yet.",
    "characters": "Sora characters are not supported by this gateway; send reference images "
                  "in images[] with mode 'r2v' instead.",
}


def video_not_found(video_id: str) -> GatewayError:
    return GatewayError(404, "video_not_found", f"No video found with id '{video_id}'.",
                        param="video_id")


async def owned_video(services: Services, identity: ClientIdentity, video_id: str) -> TaskRecord:
    return await tasks.owned(services, identity, video_id, missing=video_not_found)


async def create_video(request: Request) -> Response:
    services = services_of(request)
    identity = await caller_of(request, services)
    key = idempotency_key(request.headers.getlist("idempotency-key"), "openai")
    server = services.config.server
    fields, files = await _create_fields(request, server.max_body_bytes, server.body_timeout)
    policy = services.config.openai
    if fields.get("model") in (None, ""):
        fields["model"] = policy.default_model
    named = services.catalogue.resolve(str(fields["model"]))
    if named is not None:  # the key's permission comes before the fields are looked at
        identity.require_model(named.name)
    create = translate_create(fields, files=files, catalogue=services.catalogue,
                              size_policy=policy.size_policy,
                              duration_policy=policy.duration_policy)
    check_depth(create.body)  # a `tools` JSON string from a form can nest deep enough too
    new_task = tasks.NewTask(
        spec=create.spec, body=create.body, surface="openai", prompt=create.prompt,
        requested_size=create.requested_size, requested_seconds=create.requested_seconds,
        idempotency_key=key,
    )
    created = await tasks.create(services, identity, new_task, request_id=request_id_of(request))
    record = created.record
    task = stored_task(record)  # a replayed task may have moved on since its create
    video = video_from_task(record, task, now=int(services.clock()), family=create.spec.family)
    headers = _poll_headers(services, record, task)
    if created.replayed:
        headers.update(REPLAYED_HEADER)
    return json_response(video, headers=headers)


async def _create_fields(
    request: Request, limit: int, timeout: float
) -> tuple[dict[str, Any], dict[str, UploadedFile]]:
    """Multipart (with or without file parts) and JSON bodies are equivalent."""
    content_type = request.headers.get("content-type", "").lower()
    body = await read_body(request, limit, timeout=timeout)
    if content_type.startswith("multipart/form-data"):
        simple = text_fields(request.headers["content-type"], body)
        if simple is not None:
            return unflatten_form(simple, max_depth=MAX_JSON_DEPTH), {}
        return await _multipart_fields(request, body)
    if content_type.startswith("application/json") or not content_type:
        data = parse_json(body) if body.strip() else {}
        if not isinstance(data, dict):
            raise GatewayError(400, "invalid_json", "The request body must be a JSON object.")
        return data, {}
    raise GatewayError(415, "unsupported_content_type",
                       "Send the video request as multipart/form-data or application/json.")


async def _multipart_fields(
    request: Request, body: bytes
) -> tuple[dict[str, Any], dict[str, UploadedFile]]:
    async def once() -> AsyncGenerator[bytes, None]:
        yield body

    parser = MultiPartParser(request.headers, once(), max_files=16, max_fields=1000,
                             max_part_size=len(body) + 1)
    try:
        form = await parser.parse()
    except MultiPartException as exc:
        raise GatewayError(400, "invalid_multipart", f"Malformed multipart body: {exc.message}") \
            from None
    text: list[tuple[str, str]] = []
    files: dict[str, UploadedFile] = {}
    for name, value in form.multi_items():
        if isinstance(value, UploadFile):
            files[name] = UploadedFile(value.filename, value.content_type, await value.read())
            await value.close()
        else:
            text.append((name, value))
    await form.close()
    return unflatten_form(text, max_depth=MAX_JSON_DEPTH), files


async def retrieve_video(request: Request) -> Response:
    services = services_of(request)
    identity = await caller_of(request, services)
    record = await owned_video(services, identity, request.path_params["video_id"])
    polled = await tasks.poll(services, record, request_id=request_id_of(request),
                              surface="openai")
    task = polled.task()
    video = video_from_task(record, task, now=int(services.clock()),
                            family=_family(services, record))
    return json_response(video, headers=_poll_headers(services, record, task))


def _family(services: Services, record: TaskRecord) -> str | None:
    """The model family picks Ark's pixel table; custom endpoint ids don't reveal it."""
    spec = services.catalogue.resolve(record.model)
    return spec.family if spec is not None else None


def _poll_headers(
    services: Services, record: TaskRecord, task: dict[str, Any] | None
) -> dict[str, str]:
    if poll_after_ms(record, task) is None:
        return {}
    return {"openai-poll-after-ms": str(services.config.openai.poll_after_ms)}


async def list_videos(request: Request) -> Response:
    services = services_of(request)
    identity = await caller_of(request, services)
    await tasks.admit(services, identity)
    params = request.query_params
    limit = _list_limit(params.get("limit"))
    order = params.get("order") or "desc"
    if order not in ("asc", "desc"):
        raise GatewayError(400, "invalid_value", "order must be 'asc' or 'desc'.", param="order")
    after = params.get("after") or None
    if after is not None and await services.store.get(after, identity.name) is None:
        raise GatewayError(400, "invalid_value", f"No video found with id '{after}' to list "
                           "after.", param="after")
    query = ListQuery(owner=identity.name, newest_first=order == "desc", limit=limit + 1,
                      after_id=after)
    records, _ = await services.store.list(query) if limit else ([], 0)
    now = int(services.clock())
    data = [video_from_task(r, stored_task(r), now=now, family=_family(services, r))
            for r in records[:limit]]
    return json_response({
        "object": "list",
        "data": data,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "has_more": len(records) > limit,
    })


def _list_limit(raw: str | None) -> int:
    if raw is None or raw == "":
        return DEFAULT_LIST_LIMIT
    if not raw.isdigit() or int(raw) > MAX_LIST_LIMIT:
        raise GatewayError(400, "invalid_value",
                           f"limit must be an integer from 0 to {MAX_LIST_LIMIT}.", param="limit")
    return int(raw)


async def delete_video(request: Request) -> Response:
    services = services_of(request)
    identity = await caller_of(request, services)
    record = await owned_video(services, identity, request.path_params["video_id"])
    try:
        await tasks.cancel(services, record, request_id=request_id_of(request))
    except tasks.UpstreamError as error:
        if error.status in (400, 409) and record.status in ("running", "cancelled"):
            raise _refused_delete(record, error) from None
        raise
    return json_response(deleted_video(record.task_id))


def _refused_delete(record: TaskRecord, error: GatewayError) -> GatewayError:
    if record.status == "cancelled":
        reason = "it was already cancelled; cancelled videos are removed after 24 hours"
    else:
        reason = ("it is being generated and Seedance cannot cancel a running task; "
                  "delete it once it has completed or failed")
    return GatewayError(400, "video_not_deletable",
                        f"Video {record.task_id} cannot be deleted now: {reason}. "
                        f"(upstream: {error.message})", param="video_id")


def _unsupported(operation: str) -> Any:
    async def endpoint(request: Request) -> Response:
        services = services_of(request)
        await tasks.admit(services, await caller_of(request, services))
        raise GatewayError(400, "unsupported_operation",
                           f"'{operation}': {UNSUPPORTED[operation]}")

    return with_errors("openai", endpoint)


def routes() -> list[Route]:
    # Literal segments before /{video_id}, as OpenAI's routes share that prefix.
    return [
        Route(PREFIX + "/edits", _unsupported("edits"), methods=["POST"]),
        Route(PREFIX + "/extensions", _unsupported("extensions"), methods=["POST"]),
        Route(PREFIX + "/characters", _unsupported("characters"), methods=["POST"]),
        Route(PREFIX + "/characters/{character_id}", _unsupported("characters"),
              methods=["GET"]),
        Route(PREFIX + "/{video_id}/remix", _unsupported("remix"), methods=["POST"]),
        Route(PREFIX, with_errors("openai", create_video), methods=["POST"]),
        Route(PREFIX, with_errors("openai", list_videos), methods=["GET"]),
        Route(PREFIX + "/{video_id}", with_errors("openai", retrieve_video), methods=["GET"]),
        Route(PREFIX + "/{video_id}", with_errors("openai", delete_video), methods=["DELETE"]),
    ]
