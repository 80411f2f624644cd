"""What follows a task's end: the gateway's own reactions once it first sees a task finish.

`learn` calls `task_finished` once per task (when the record first turns finished), whoever
saw it: a client's poll, the tracker's GET or its list. Each follower is awaited in turn; a
follower must not raise for its own failures (it logs them and retries on its own terms).
"""

from __future__ import annotations

from typing import Any

from gateway.services import Services
from gateway.store.base import TaskRecord
from gateway.webhooks.outbox import enqueue_finished


async def task_finished(services: Services, record: TaskRecord, task: dict[str, Any]) -> None:
    """`record` already holds the finished status and the upstream's answer (`task`)."""
    # Followers are added here, one line each.
    await enqueue_finished(services, record, task)  # webhooks: the owner's event, callback
    if services.archive is not None:  # the result archive: copies it in the background
        await services.archive.task_finished(record)
    return None
