"""Sending a create upstream: which upstream and key take it.

Kept apart from the pipeline so the choice of key (and failing over to another) has one home.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import orjson

from gateway.services import Services
from gateway.tasks.answers import created_id
from gateway.upstream import UpstreamReply

if TYPE_CHECKING:
    from gateway.tasks.pipeline import NewTask


@dataclass(frozen=True, slots=True)
class Sent:
    """A create the upstream accepted: where it went and what it answered."""

    task_id: str
    upstream: str
    key: str  # the upstream key's name: polls, cancels and downloads reuse it
    upstream_model: str
    reply: UpstreamReply


async def send_create(services: Services, task: NewTask, *, request_id: str | None) -> Sent:
    spec = task.spec
    upstream = services.upstream_for(spec)
    key = upstream.next_key()
    body = task.raw if task.raw is not None else orjson.dumps(task.body)
    reply = await upstream.create_task(body, key=key, client_request_id=request_id)
    return Sent(created_id(reply), upstream.name, key, spec.upstream_model, reply)
