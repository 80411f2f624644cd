"""What an upstream answer means for a task: an error for the caller, or what the record learns.

Both a single task GET and an item of a batched list answer arrive here, so a task's record,
its settlement and its metrics follow one rule whoever asked the upstream.
"""

from __future__ import annotations

from typing import Any

import orjson

from gateway.errors import GatewayError, UpstreamBadResponse
from gateway.keys.prices import MICROS
from gateway.observability.metrics import cost_currency
from gateway.seedance import FINISHED_STATUSES, regresses
from gateway.services import Services
from gateway.store.base import MAX_COUNT, TaskRecord
from gateway.tasks import finished
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
        return upstream_key_rejected()
    return UpstreamError(reply, is_create=is_create)


def upstream_key_rejected() -> GatewayError:
    # The upstream refused the gateway's own key: not the caller's fault, and a 401 would
    # tell them their gateway key is wrong. Only the operator can fix it.
    return GatewayError(
        502, "UpstreamKeyRejected",
        "The upstream rejected the gateway's upstream key; the gateway operator must check "
        "the upstream key configuration.")


def created_id(reply: UpstreamReply) -> str:
    """The new task's id from a create's answer, or the error to give the caller."""
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


def task_of(reply: UpstreamReply) -> dict[str, Any]:
    """The task object of a successful GET, or UpstreamBadResponse."""
    try:
        task = orjson.loads(reply.body)
    except orjson.JSONDecodeError:
        raise UpstreamBadResponse("the upstream returned a task that is not JSON") from None
    if not isinstance(task, dict) or not isinstance(task.get("status"), str):
        raise UpstreamBadResponse("the upstream returned a task without a status")
    return task


async def learn(services: Services, record: TaskRecord, task: dict[str, Any],
                body: bytes) -> None:
    """Record what the upstream answered for the task (`body`: its bytes, kept verbatim): a
    status change, the tokens of a task that ended (settled once), the answer itself."""
    if record.gone_suspected_at is not None:  # the upstream has it after all
        await services.store.clear_upstream_404(record.task_id)
        record.gone_suspected_at = None
    status = task["status"]
    if regresses(record.status, status):
        return  # an older answer than what is recorded: keep the record as is
    finishing = status in FINISHED_STATUSES and not record.terminal
    if finishing:
        billed = _observe_finished(services, record, task)
        cost = await services.store.settle(record.task_id, billed)
        if cost:  # this call settled a priced task: its real cost, counted once
            currency = services.config.prices.currency
            services.metrics.cost.labels(services.metrics.model(record.model), record.owner,
                                         cost_currency(currency)).inc(cost / MICROS)
    # Every new answer is kept, not just a new status: a poll the record answers returns the
    # upstream's last bytes, and a finished task's answer changes only by freshly signed URLs.
    if status != record.status or body != record.task_json:
        tokens, updated_at = count(task, "usage", "total_tokens"), count(task, "updated_at")
        record.status = status
        record.updated_at = updated_at if updated_at is not None else int(services.clock())
        record.usage_tokens = tokens if tokens is not None else record.usage_tokens
        record.task_json = body
        await services.store.update_status(
            record.task_id, status=status, updated_at=record.updated_at,
            usage_tokens=record.usage_tokens, task_json=body,
        )
    if finishing:
        await finished.task_finished(services, record, task)


def _observe_finished(services: Services, record: TaskRecord, task: dict[str, Any]) -> int:
    """Counted once per task, when the gateway first sees it end; the tokens it billed."""
    metrics = services.metrics
    model = metrics.model(record.model)
    status = task["status"]
    metrics.tasks_finished.labels(model, status).inc()
    billed = count(task, "usage", "total_tokens") or 0
    if billed > 0:
        metrics.tokens.labels(model, record.owner).inc(billed)
    if status == "succeeded":
        updated_at, resolution = task.get("updated_at"), task.get("resolution")
        if isinstance(updated_at, int) and updated_at >= record.created_at:
            label = resolution if resolution in ("480p", "720p", "1080p", "4k") else "other"
            metrics.task_duration.labels(model, label).observe(updated_at - record.created_at)
    return billed


def count(task: dict[str, Any], *path: str) -> int | None:
    """A whole number the upstream reported (tokens, a time), or None when it is missing or
    not one a store could keep: an upstream's answer is not trusted to fit in 64 bits."""
    value: Any = task
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_COUNT:
        return value
    return None


def with_status(task_json: bytes | None, status: str, now: int) -> bytes:
    """The stored answer with a status the gateway itself brought about (a cancel)."""
    try:
        task = orjson.loads(task_json) if task_json else {}
    except orjson.JSONDecodeError:
        task = {}
    if not isinstance(task, dict):
        task = {}
    task.update(status=status, updated_at=now)
    return orjson.dumps(task)


def stored_task(record: TaskRecord) -> dict[str, Any] | None:
    """The upstream's last answer for the task as an object, with the record's status (a
    cancel the stored body predates); None when there is none or it is not a task."""
    if record.task_json is None:
        return None
    try:
        task = orjson.loads(record.task_json)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(task, dict):
        return None
    task["status"] = record.status
    return task
