"""The task pipeline both surfaces share: translated body → upstream key → upstream → record.

Surfaces translate their own request into a native body before calling in here, and translate
the results back afterwards. Upstream answers that are not a success come back as
:class:`UpstreamError`, carrying the upstream's own status and body.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from gateway.auth import ClientIdentity
from gateway.catalog import ModelSpec
from gateway.errors import GatewayError, UpstreamBadResponse, not_found_task
from gateway.middleware import note
from gateway.services import Services
from gateway.store.base import MAX_COUNT, TERMINAL_STATUSES, Surface, TaskRecord
from gateway.upstream import UpstreamReply


class UpstreamError(GatewayError):
    """A non-success answer from the upstream, kept verbatim for the native surface."""

    def __init__(self, reply: UpstreamReply, *, is_create: bool = False) -> None:
        code, message, param = "UpstreamError", f"upstream answered HTTP {reply.status}", None
        try:
            error = orjson.loads(reply.body).get("error")
        except (orjson.JSONDecodeError, AttributeError):
            error = None
        if isinstance(error, dict):
            code = str(error.get("code") or code)
            message = str(error.get("message") or message)
            param = str(error["param"]) if error.get("param") else None
        headers = {}
        if reply.retry_after is not None:
            headers["retry-after"] = reply.retry_after  # as the upstream said it
        if is_create and reply.status >= 500:
            # The upstream may have created the task before failing: a retry could bill twice.
            headers["x-should-retry"] = "false"
        super().__init__(reply.status, code, message, param=param, headers=headers)
        self.reply = reply


def upstream_failure(reply: UpstreamReply, *, is_create: bool = False) -> GatewayError:
    """The error for a non-success upstream answer."""
    if reply.status == 401:
        # The upstream refused the gateway's own key: not the caller's fault, and a 401 would
        # tell them their gateway key is wrong. Only the operator can fix it.
        return GatewayError(
            502, "UpstreamKeyRejected",
            "The upstream rejected the gateway's upstream key; the gateway operator must check "
            "the upstream key configuration.")
    return UpstreamError(reply, is_create=is_create)


@dataclass(frozen=True, slots=True)
class NewTask:
    """A create, already translated into the native body the upstream will receive."""

    spec: ModelSpec
    body: bytes
    surface: Surface
    prompt: str | None
    estimate: int  # tokens held against the key's budget until the task ends
    service_tier: str = "default"
    requested_size: str | None = None
    requested_seconds: str | None = None


def first_prompt(body: dict[str, Any]) -> str | None:
    content = body.get("content")
    if isinstance(content, list):
        for item in content:
            if isinstance(item, dict) and item.get("type") == "text":
                text = item.get("text")
                return text if isinstance(text, str) else None
    return None


async def create(
    services: Services, identity: ClientIdentity, task: NewTask, *, request_id: str | None
) -> tuple[TaskRecord, UpstreamReply]:
    note(model=task.spec.name)
    upstream = services.upstream_for(task.spec)
    key = upstream.next_key()
    reservation = await services.policy.hold(identity, task.spec, task.estimate)
    try:
        reply = await upstream.create_task(task.body, key=key, client_request_id=request_id)
        task_id = _created_id(reply)
    except BaseException:
        # No task to wait for: give the slot and the tokens back. (A create whose answer was
        # lost may still exist upstream; the gateway cannot follow it without an id.)
        if reservation.held:
            await services.store.release(reservation.ref)
        raise
    now = int(services.clock())
    record = TaskRecord(
        task_id=task_id, owner=identity.name, upstream=upstream.name, upstream_key=key,
        model=task.spec.name, upstream_model=task.spec.upstream_model, surface=task.surface,
        created_at=now, updated_at=now, prompt=task.prompt, service_tier=task.service_tier,
        requested_size=task.requested_size, requested_seconds=task.requested_seconds,
    )
    await services.store.add(record, next_poll_at=now + services.config.tracker.first_poll,
                             usage=reservation)
    services.metrics.tasks_created.labels(services.metrics.model(record.model), task.surface).inc()
    note(task_id=task_id)
    return record, reply


def _created_id(reply: UpstreamReply) -> str:
    if reply.status != 200:
        raise upstream_failure(reply, is_create=True)
    try:
        task_id = orjson.loads(reply.body)["id"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        task_id = None
    if not isinstance(task_id, str) or not task_id:
        error = UpstreamBadResponse("the upstream accepted the task but returned no task id")
        error.headers["x-should-retry"] = "false"
        raise error
    return task_id


async def owned(services: Services, identity: ClientIdentity, task_id: str, *,
                missing: Callable[[str], GatewayError] = not_found_task) -> TaskRecord:
    """The caller's task, or `missing(task_id)`: another key's task does not exist for them."""
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
    try:
        task = orjson.loads(reply.body)
    except orjson.JSONDecodeError:
        raise UpstreamBadResponse("the upstream returned a task that is not JSON") from None
    if not isinstance(task, dict) or not isinstance(task.get("status"), str):
        raise UpstreamBadResponse("the upstream returned a task without a status")
    if record.gone_suspected_at is not None:  # the upstream has it after all
        await services.store.clear_upstream_404(record.task_id)
        record.gone_suspected_at = None
    status = task["status"]
    if record.terminal and status not in TERMINAL_STATUSES:
        return task, reply  # an older answer than what is recorded: keep the record as is
    if status in TERMINAL_STATUSES and not record.terminal:
        billed = _observe_finished(services, record, task)
        await services.store.settle(record.task_id, billed)
    if status != record.status or record.task_json is None:
        tokens, updated_at = _count(task, "usage", "total_tokens"), _count(task, "updated_at")
        record.status = status
        record.updated_at = updated_at if updated_at is not None else int(services.clock())
        record.usage_tokens = tokens if tokens is not None else record.usage_tokens
        record.task_json = reply.body
        await services.store.update_status(
            record.task_id, status=status, updated_at=record.updated_at,
            usage_tokens=record.usage_tokens, task_json=reply.body,
        )
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
            task_json=_with_status(record.task_json, "cancelled", now),
        )
    return reply


def _observe_finished(services: Services, record: TaskRecord, task: dict[str, Any]) -> int:
    """Counted once per task, when the gateway first sees it end; the tokens it billed."""
    metrics = services.metrics
    model = metrics.model(record.model)
    status = task["status"]
    metrics.tasks_finished.labels(model, status).inc()
    billed = _count(task, "usage", "total_tokens") or 0
    if billed > 0:
        metrics.tokens.labels(model, record.owner).inc(billed)
    if status == "succeeded":
        updated_at, resolution = task.get("updated_at"), task.get("resolution")
        if isinstance(updated_at, int) and updated_at >= record.created_at:
            label = resolution if resolution in ("480p", "720p", "1080p", "4k") else "other"
            metrics.task_duration.labels(model, label).observe(updated_at - record.created_at)
    return billed


def _count(task: dict[str, Any], *path: str) -> int | None:
    """A whole number the upstream reported (tokens, a time), or None when it is missing or
    not one a store could keep: an upstream's answer is not trusted to fit in 64 bits."""
    value: Any = task
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_COUNT:
        return value
    return None


def _with_status(task_json: bytes | None, status: str, now: int) -> bytes:
    try:
        task = orjson.loads(task_json) if task_json else {}
    except orjson.JSONDecodeError:
        task = {}
    if not isinstance(task, dict):
        task = {}
    task.update(status=status, updated_at=now)
    return orjson.dumps(task)
