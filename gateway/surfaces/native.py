"""The native Ark surface: /api/v3/contents/generations/tasks create, get, list, delete."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.errors import GatewayError, model_not_found
from gateway.observability.middleware import is_sane_id
from gateway.results import serving as results_serving
from gateway.services import caller_of, request_id_of, services_of
from gateway.store.base import ARK_RETENTION_SECONDS, ListQuery, TaskRecord
from gateway.surfaces.http import (
    error_response,
    json_response,
    parse_json,
    raw_json_response,
    read_body,
    with_errors,
)
from gateway.tasks import pipeline as tasks
from gateway.tasks.idempotency import REPLAYED_HEADER, idempotency_key
from gateway.translate.seedance_validation import parse_list_params, require_model
from gateway.upstream import UpstreamReply
from gateway.webhooks.callbacks import take_callback

PREFIX = "/api/v3/contents/generations/tasks"


def _client_request_id(request: Request) -> str | None:
    """Sent upstream: the Ark SDK's own id when it sent one, else the gateway's request id."""
    sent = request.headers.get("x-client-request-id")
    return sent if sent and is_sane_id(sent) else request_id_of(request)


def _reply_headers(request: Request, reply: UpstreamReply | None) -> dict[str, str]:
    headers: dict[str, str] = {}
    if reply is not None and reply.request_id:
        headers["x-upstream-request-id"] = reply.request_id
    client_id = request.headers.get("x-client-request-id")
    if client_id:
        headers["x-client-request-id"] = client_id
    return headers


async def create_task(request: Request) -> Response:
    services = services_of(request)
    identity = await caller_of(request, services)
    key = idempotency_key(request.headers.getlist("idempotency-key"), "native")
    server = services.config.server
    raw = await read_body(request, server.max_body_bytes, timeout=server.body_timeout)
    body = parse_json(raw)
    name = require_model(body)
    spec = services.catalogue.resolve(name)
    if spec is None:
        raise model_not_found(name)
    # The gateway delivers callbacks itself (signed): Ark never sees the URL.
    callback = await take_callback(services, identity.name, body)
    passthrough = spec.upstream_model == name and callback is None  # caller's bytes as they are
    body["model"] = spec.upstream_model
    new_task = tasks.NewTask(spec=spec, body=body, surface="native",
                             prompt=tasks.first_prompt(body), raw=raw if passthrough else None,
                             idempotency_key=key)
    try:
        created = await tasks.create(services, identity, new_task,
                                     request_id=_client_request_id(request))
    except tasks.UpstreamError as error:
        return _forward_error(request, error)
    if callback is not None:
        await services.store.set_task_callback(created.record.task_id, callback)
    headers = _reply_headers(request, created.reply)
    if created.replayed:
        headers.update(REPLAYED_HEADER)
    return raw_json_response(created.reply.body, 200, headers)


async def get_task(request: Request) -> Response:
    services = services_of(request)
    identity = await caller_of(request, services)
    record = await tasks.owned(services, identity, request.path_params["task_id"])
    if services.archive is not None:  # archived: the archive's links, no upstream call
        archived = await results_serving.native_body(services.archive, request, record)
        if archived is not None:
            return raw_json_response(archived, 200, _reply_headers(request, None))
    try:
        polled = await tasks.poll(services, record, request_id=_client_request_id(request),
                                  surface="native")
    except tasks.UpstreamError as error:
        return _forward_error(request, error)
    # The upstream's last bytes either way; x-upstream-request-id only when a GET brought them.
    return raw_json_response(polled.body, 200, _reply_headers(request, polled.reply))


async def delete_task(request: Request) -> Response:
    services = services_of(request)
    identity = await caller_of(request, services)
    raw = await read_body(request, 64 * 1024, timeout=services.config.server.body_timeout)
    if raw.strip() and not isinstance(parse_json(raw), dict):
        raise GatewayError(400, "InvalidParameter", "The request body must be a JSON object.")
    record = await tasks.owned(services, identity, request.path_params["task_id"])
    try:
        reply = await tasks.cancel(services, record, request_id=_client_request_id(request))
    except tasks.UpstreamError as error:
        return _forward_error(request, error)
    return raw_json_response(reply.body or b"{}", 200, _reply_headers(request, reply))


async def list_tasks(request: Request) -> Response:
    services = services_of(request)
    identity = await caller_of(request, services)
    await tasks.admit(services, identity)
    params = parse_list_params(request.query_params.multi_items())
    query = ListQuery(
        owner=identity.name, statuses=params.statuses, task_ids=params.task_ids,
        model=params.model, service_tier=params.service_tier,
        offset=(params.page_num - 1) * params.page_size, limit=params.page_size,
        created_after=int(services.clock()) - ARK_RETENTION_SECONDS,  # as Ark lists
    )
    records, total = await services.store.list(query)
    items = [ark_task_view(r) for r in records]
    if services.archive is not None:
        items = [await results_serving.native_view(services.archive, request, r, item)
                 for r, item in zip(records, items, strict=True)]
    return json_response({"items": items, "total": total},
                         headers=_reply_headers(request, None))


def ark_task_view(record: TaskRecord) -> dict[str, Any]:
    """The last task body the upstream returned, completed from the record where unknown."""
    view: dict[str, Any] = {
        "id": record.task_id, "model": record.upstream_model, "status": record.status,
        "error": None, "content": {}, "created_at": record.created_at,
        "updated_at": record.updated_at, "service_tier": record.service_tier,
    }
    if record.task_json:
        try:
            known = orjson.loads(record.task_json)
        except orjson.JSONDecodeError:
            known = None
        if isinstance(known, dict):
            view.update(known)
    view["status"] = record.status  # the record may know of a cancel the body predates
    return view


def _forward_error(request: Request, error: tasks.UpstreamError) -> Response:
    """Upstream errors reach native clients verbatim: status, body, upstream request id."""
    reply = error.reply
    headers = {**_reply_headers(request, reply), **error.headers}
    if reply.body.lstrip().startswith(b"{"):
        return raw_json_response(reply.body, reply.status, headers)
    response = error_response(error, "native")
    response.headers.update(headers)
    return response


def routes() -> list[Route]:
    return [
        Route(PREFIX, with_errors("native", create_task), methods=["POST"]),
        Route(PREFIX, with_errors("native", list_tasks), methods=["GET"]),
        Route(PREFIX + "/{task_id}", with_errors("native", get_task), methods=["GET"]),
        Route(PREFIX + "/{task_id}", with_errors("native", delete_task), methods=["DELETE"]),
    ]
