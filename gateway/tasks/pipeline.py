"""The task pipeline: every task request of either surface runs through here.

A create goes: key permission → validation → rate policy → idempotency (a replay stops here)
→ in-flight and budget policy → upstream (key choice and failover) → record → metrics. The
surfaces only translate: their request into a :class:`NewTask` (naming the model resolves
it), and the results back into their own shape. Polls, cancels and listings pass the same
rate policy first.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from gateway.catalog import ModelSpec
from gateway.errors import GatewayError, Surface, not_found_task
from gateway.keys.auth import ClientIdentity
from gateway.keys.policy import estimate_tokens
from gateway.keys.prices import has_video_input, price_per_million
from gateway.observability.logs import get_logger
from gateway.observability.middleware import note
from gateway.services import Services
from gateway.store.base import TaskRecord
from gateway.tasks import dispatch, finished, idempotency
from gateway.tasks.answers import (
    UpstreamError,
    learn,
    upstream_failure,
    with_status,
)
from gateway.tasks.lost_creates import Adopted, id_reply
from gateway.tasks.polls import Polled, poll, refresh  # a poll (GET) of a task, coalesced
from gateway.translate.seedance_validation import validate_create
from gateway.upstream import UpstreamReply
from gateway.webhooks.ark_callbacks import with_ark_callback  # the optional fast path

log = get_logger("gateway.tasks")

__all__ = ["Created", "NewTask", "Polled", "UpstreamError", "admit", "cancel", "create",
           "owned", "poll", "refresh"]


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
    idempotency_key: str | None = None  # the caller's Idempotency-Key header

    @property
    def service_tier(self) -> str:
        tier = self.body.get("service_tier")
        return tier if isinstance(tier, str) else "default"


@dataclass(frozen=True, slots=True)
class Created:
    record: TaskRecord
    reply: UpstreamReply  # the upstream's answer to the create ({"id": ...} for a replay)
    replayed: bool = False  # an earlier request with the same Idempotency-Key made the task


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
    claim: idempotency.Claim | None = None
    if task.idempotency_key is not None:
        # Before the hold: answering a task again takes no in-flight slot or budget.
        claimed = await idempotency.claim(services, identity.name, task)
        if isinstance(claimed, idempotency.Replay):
            return _replayed(services, task, claimed.record)
        claim = claimed
    try:
        # Priced as Ark will bill it: the model's price, its video-input price if the content
        # holds a video (gateway/keys/prices.py).
        price = price_per_million(services.config.prices, spec.upstream_model,
                                  video_input=has_video_input(task.body))
        reservation = await services.policy.hold(identity, spec, estimate_tokens(spec, task.body),
                                                 price=price)
    except BaseException:
        if claim is not None:
            await claim.give_up(None)
        raise
    try:
        # A lost earlier attempt's task, found upstream, is taken instead of creating another.
        adopted = None if claim is None else await claim.recover(task, request_id=request_id)
        origin: Adopted | dispatch.Sent = adopted or await dispatch.send_create(
            services, with_ark_callback(services, identity.name, task), request_id=request_id)
    except BaseException as error:
        # No task to wait for: give the slot and the tokens back. (A create whose answer was
        # lost may still exist upstream: only a retry with an Idempotency-Key looks for it.)
        if reservation.held:
            await services.store.release(reservation.ref)
        if claim is not None:
            await claim.give_up(error)
        raise
    now = int(services.clock())
    record = TaskRecord(
        task_id=origin.task_id, owner=identity.name, upstream=origin.upstream,
        upstream_key=origin.key, model=spec.name, upstream_model=origin.upstream_model,
        surface=task.surface, created_at=now, updated_at=now, prompt=task.prompt,
        service_tier=task.service_tier, requested_size=task.requested_size,
        requested_seconds=task.requested_seconds,
    )
    try:
        if claim is not None:
            await claim.sent(record.task_id, record.upstream_key)
        await services.store.add(record, next_poll_at=now + services.config.tracker.first_poll,
                                 usage=reservation)
    except BaseException as error:
        if claim is not None:
            await claim.give_up(error)  # the task exists: a retry adopts it
        raise
    if adopted is not None and adopted.task is not None and adopted.body is not None:
        await learn(services, record, adopted.task, adopted.body)  # it may have moved on
    if claim is not None:
        await claim.done()
    services.metrics.tasks_created.labels(services.metrics.model(record.model), task.surface).inc()
    note(task_id=record.task_id)
    if adopted is not None:
        services.metrics.idempotent_replays.labels(task.surface, "adopted").inc()
    return Created(record, origin.reply, replayed=adopted is not None)


def _replayed(services: Services, task: NewTask, record: TaskRecord) -> Created:
    services.metrics.idempotent_replays.labels(task.surface, "replayed").inc()
    note(task_id=record.task_id, idempotent_replay=True)
    return Created(record, id_reply(record.task_id), replayed=True)


async def owned(services: Services, identity: ClientIdentity, task_id: str, *,
                missing: Callable[[str], GatewayError] = not_found_task) -> TaskRecord:
    """The caller's task, or `missing(task_id)`: another key's task does not exist for them.
    Passes the rate policy first."""
    await admit(services, identity)
    record = await services.store.get(task_id, identity.name)
    if record is None:
        raise missing(task_id)
    if services.archive is not None and record.terminal \
            and services.archive.aged_out(record.created_at):
        raise missing(task_id)  # past results.retention_days: forgotten, as Ark forgets
    note(task_id=task_id, model=record.model)
    return record


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
        if record.terminal:  # the gateway's own copy goes with the record
            await _forget_archive(services, record.task_id)
    if reply.status != 200:
        raise upstream_failure(reply)
    if record.terminal:
        await services.store.mark_deleted(record.task_id)
        await _forget_archive(services, record.task_id)
    else:
        now = int(services.clock())
        await services.store.settle(record.task_id, 0)  # cancelled while queued: no bill
        record.status = "cancelled"
        task_json = with_status(record.task_json, "cancelled", now)
        await services.store.update_status(
            record.task_id, status="cancelled", updated_at=now, usage_tokens=None,
            task_json=task_json,
        )
        record.task_json = task_json
        await finished.task_finished(services, record, orjson.loads(task_json))
    return reply


async def _forget_archive(services: Services, task_id: str) -> None:
    """A deleted video is not served from the archive. The task is deleted already: a result
    store that fails here is logged, not the caller's error (retention removes the files)."""
    if services.archive is None:
        return
    try:
        await services.archive.forget(task_id)
    except Exception as exc:
        log.warning("archive_forget_failed", task_id=task_id,
                    error=f"{type(exc).__name__}: {exc}")
