"""What a finished task puts in the webhook outbox: its owner's event, its native callback.

Called from gateway/tasks/finished.py, perhaps by several replicas for one task: a message's
id is derived from the task, its final status and the message kind, and the store keeps the
first one enqueued, so each task yields one event and one callback at most.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from gateway.observability.logs import get_logger
from gateway.services import Services
from gateway.store.base import TaskRecord
from gateway.store.followups import WebhookDelivery

# Ark's final statuses → OpenAI's event types.
EVENT_TYPES = {"succeeded": "video.completed", "failed": "video.failed",
               "cancelled": "video.cancelled", "expired": "video.expired"}
log = get_logger("gateway.webhooks")


def message_id(task_id: str, status: str, kind: str) -> str:
    return "evt_" + hashlib.sha256(f"{kind}:{task_id}:{status}".encode()).hexdigest()[:32]


async def key_webhook(services: Services, owner: str) -> tuple[str | None, str | None]:
    """The key's (webhook_url, webhook_secret), from the config file or the store."""
    for key in services.config.client_keys:
        if key.name == owner:
            secret = key.webhook_secret.get_secret_value() if key.webhook_secret else None
            return key.webhook_url, secret
    record = await services.store.get_key(owner)
    if record is None:
        return None, None
    return record.webhook_url, record.webhook_secret


async def enqueue_finished(services: Services, record: TaskRecord, task: dict[str, Any]) -> None:
    """Queue the owner's event and the task's callback; never raises (a store error is logged:
    the task's record already shows the outcome, polling still works)."""
    event_type = EVENT_TYPES.get(record.status)
    if event_type is None:
        return
    try:
        now = services.clock()
        url, _ = await key_webhook(services, record.owner)
        if url:
            event_id = message_id(record.task_id, record.status, "event")
            body = orjson.dumps({"object": "event", "id": event_id, "type": event_type,
                                 "created_at": int(now), "data": {"id": record.task_id}})
            await services.store.enqueue_webhook(WebhookDelivery(
                message_id=event_id, owner=record.owner, task_id=record.task_id, kind="event",
                url=url, body=body, created_at=now, next_at=now))
        callback = await services.store.task_callback(record.task_id)
        if callback and record.task_json is not None:
            # Ark's own callback body: the task object, as the upstream answered it.
            await services.store.enqueue_webhook(WebhookDelivery(
                message_id=message_id(record.task_id, record.status, "callback"),
                owner=record.owner, task_id=record.task_id, kind="callback", url=callback,
                body=record.task_json, created_at=now, next_at=now))
    except Exception:
        log.exception("webhook_enqueue_failed", task_id=record.task_id)
