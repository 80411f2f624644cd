"""The task pipeline: every task request of either surface runs through here.

A create goes: key permission → validation → policy (rate, in-flight, budget) → idempotency →
upstream (key choice and failover) → record → metrics. The surfaces only translate: their
request into a :class:`NewTask` (naming the model resolves it), and the results back into
their own shape. Polls, cancels and listings pass the same rate policy first.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gateway.catalog import ModelSpec
from gateway.errors import GatewayError, Surface, not_found_task
from gateway.keys.auth import ClientIdentity
from gateway.keys.policy import estimate_tokens
from gateway.observability.middleware import note
from gateway.services import Services
from gateway.store.base import TaskRecord
from gateway.tasks import dispatch
from gateway.tasks.answers import (
    UpstreamError,
    learn,
    task_of,
    upstream_failure,
    with_status,
)
from gateway.translate.seedance_validation import validate_create
from gateway.upstream import UpstreamReply

__all__ = ["Created", "NewTask", "UpstreamError", "admit", "cancel", "create", "owned",
           "refresh"]


@dataclass(frozen=True, slots=True)
class NewTask:
    """A create, translated into the native body the upstream will receive."""

    spec: ModelSpec
    body: dict[str, Any]  # the native create body, "model" = spec.upstream_model
    surface: Surface
    prompt: str | None
    raw: bytes | None = None  # the caller's own bytes, sent as they are when the body is theirs
    requested_size: str | None = None
    requested_seconds: str | None = None

    @property
    def service_tier(self) -> str:
        tier = self.body.get("service_tier")
        return tier if isinstance(tier, str) else "default"


@dataclass(frozen=True, slots=True)
class Created:
    record: TaskRecord
    reply: UpstreamReply  # the upstream's answer to the create


def first_prompt(body: dict[str, Any]) -> str | None:
    content = body.get("content")
    if isinstance(content, list):
        for item in content:
            if isinstance(item, dict) and item.get("type") == "text":
                text = item.get("text")
                return text if isinstance(text, str) else None
    return None


async def admit(services: Services, identity: ClientIdentity) -> None:
    """The rate policy every task request passes: counts it against the key's rpm."""
    await services.policy.check_rate(identity)


async def create(services: Services, identity: ClientIdentity, task: NewTask, *,
                 request_id: str | None) -> Created:
    spec = task.spec
    note(model=spec.name)
    identity.require_model(spec.name)
    if services.upstream_for(spec).validation:
        validate_create(task.body, spec)
    await admit(services, identity)
    reservation = await services.policy.hold(identity, spec, estimate_tokens(spec, task.body))
    try:
        sent = await dispatch.send_create(services, task, request_id=request_id)
    except BaseException:
        # No task to wait for: give the slot and the tokens back. (A create whose answer was
        # lost may still exist upstream; the gateway cannot follow it without an id.)
        if reservation.held:
            await services.store.release(reservation.ref)
        raise
    now = int(services.clock())
    record = TaskRecord(
        task_id=sent.task_id, owner=identity.name, upstream=sent.upstream, upstream_key=sent.key,
        model=spec.name, upstream_model=sent.upstream_model, surface=task.surface,
        created_at=now, updated_at=now, prompt=task.prompt, service_tier=task.service_tier,
        requested_size=task.requested_size, requested_seconds=task.requested_seconds,
    )
    await services.store.add(record, next_poll_at=now + services.config.tracker.first_poll,
                             usage=reservation)
    services.metrics.tasks_created.labels(services.metrics.model(record.model), task.surface).inc()
    note(task_id=record.task_id)
    return Created(record, sent.reply)


async def owned(services: Services, identity: ClientIdentity, task_id: str, *,
                missing: Callable[[str], GatewayError] = not_found_task) -> TaskRecord:
    """The caller's task, or `missing(task_id)`: another key's task does not exist for them.
    Passes the rate policy first."""
    await admit(services, identity)
    record = await services.store.get(task_id, identity.name)
    if record is None:
        raise missing(task_id)
    note(task_id=task_id, model=record.model)
    return record


async def refresh(
    services: Services, record: TaskRecord, *, request_id: str | None
) -> tuple[dict[str, Any], UpstreamReply]:
    """GET the task upstream with the key that created it and remember what changed."""
    upstream = services.upstream_of(record)
    reply = await upstream.get_task(record.task_id, key=record.upstream_key,
                                    client_request_id=request_id)
    if reply.status == 404:
        # Maybe a glitch: the store hides the task only once its loss is confirmed, and never
        # a finished one (gateway.store.base.upstream_404_verdict). This caller gets the 404.
        await services.store.note_upstream_404(record.task_id, now=services.clock())
    if reply.status != 200:
        raise upstream_failure(reply)
    task = task_of(reply)
    await learn(services, record, task, reply.body)
    return task, reply


async def cancel(
    services: Services, record: TaskRecord, *, request_id: str | None
) -> UpstreamReply:
    """Ark DELETE: cancels a queued task, deletes a finished one, refuses a running one."""
    upstream = services.upstream_of(record)
    reply = await upstream.delete_task(record.task_id, key=record.upstream_key,
                                       client_request_id=request_id)
    if reply.status == 404:
        # The same rule as a GET's 404, except that a finished task goes at once: its owner
        # asked for that, and the upstream no longer has it. The 404 is still forwarded.
        await services.store.note_upstream_404(record.task_id, now=services.clock(),
                                               deleting=True)
    if reply.status != 200:
        raise upstream_failure(reply)
    if record.terminal:
        await services.store.mark_deleted(record.task_id)
    else:
        now = int(services.clock())
        await services.store.settle(record.task_id, 0)  # cancelled while queued: no bill
        record.status = "cancelled"
        await services.store.update_status(
            record.task_id, status="cancelled", updated_at=now, usage_tokens=None,
            task_json=with_status(record.task_json, "cancelled", now),
        )
    return reply
