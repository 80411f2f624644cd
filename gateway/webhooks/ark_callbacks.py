"""The optional fast path: Ark's own callbacks as hints to look at a task now.

With `webhooks.ark_callbacks: true` and `server.public_url` set, every create asks Ark to call
`{public_url}/ark/callbacks/{owner}` on status changes. A callback only names a task: its body
is never trusted. The gateway polls that task (the poll's window bounds how often callbacks,
forged or not, can make it ask the upstream), and what the upstream answers drives the record,
the usage and the webhooks, as if the tracker had looked.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING
from urllib.parse import quote

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.observability.logs import get_logger
from gateway.services import Services, services_of
from gateway.tasks.polls import poll

if TYPE_CHECKING:  # the pipeline imports this module
    from gateway.tasks.pipeline import NewTask

PATH = "/ark/callbacks/{owner}"
MAX_CALLBACK_BODY = 256 * 1024
log = get_logger("gateway.webhooks")


def with_ark_callback(services: Services, owner: str, task: NewTask) -> NewTask:
    """The create with the gateway's callback_url, when the fast path is on."""
    public_url = services.config.server.public_url
    if not services.config.webhooks.ark_callbacks or not public_url:
        return task
    url = public_url.rstrip("/") + PATH.format(owner=quote(owner, safe=""))
    return dataclasses.replace(task, body={**task.body, "callback_url": url}, raw=None)


async def ark_callback(request: Request) -> Response:
    services = services_of(request)
    owner = request.path_params["owner"]
    body = await request.body()
    task_id = None
    if len(body) <= MAX_CALLBACK_BODY:
        try:
            parsed = orjson.loads(body)
            task_id = parsed.get("id") if isinstance(parsed, dict) else None
        except orjson.JSONDecodeError:
            pass
    if isinstance(task_id, str) and len(task_id) <= 128:
        try:
            record = await services.store.get(task_id, owner)
            if record is not None and not record.terminal:
                await poll(services, record, request_id=None, surface="tracker")
        except Exception as exc:  # a hint: the tracker looks anyway
            log.info("ark_callback_poll_failed", task_id=task_id, error=type(exc).__name__)
    # Always 200: Ark has nothing to retry, and a prober learns nothing about task ids.
    return Response(b"{}", media_type="application/json")


def routes() -> list[Route]:
    return [Route(PATH, ark_callback, methods=["POST"])]
