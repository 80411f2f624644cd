"""The store interfaces of what follows a create: Idempotency-Key claims and the webhook
outbox (gateway/store/base.py combines them with the others into GatewayStore)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

ClaimState = Literal["pending", "lost", "done"]
ClaimEnd = Literal["done", "lost", "released"]


@dataclass(frozen=True, slots=True)
class IdempotencyClaim:
    """What one caller's Idempotency-Key stands for: the create it names and how far it got.

    ``pending``: a request (``holder``) is creating the task; past ``lease_until`` it counts as
    lost. ``lost``: an attempt may have created a task upstream whose answer never came (the
    next attempt looks upstream before creating again). ``done``: ``task_id`` is the task,
    recorded for the caller. Forgotten at ``expires_at``.
    """

    fingerprint: str  # of the request the key was first used with
    state: ClaimState
    lease_until: float
    started_at: float  # when the first attempt began: a lost task was created after it
    expires_at: float
    holder: str | None = None
    failed_at: float | None = None  # when an attempt was last lost (or its holder's lease ran out)
    task_id: str | None = None  # once an upstream answer named the task
    upstream_key: str | None = None  # the upstream key name that created it


class IdempotencyStore(Protocol):
    """Idempotency-Key claims, per caller and key: each call is atomic in the backend."""

    async def claim_idempotency(
        self, caller: str, key: str, *, fingerprint: str, holder: str, now: float,
        lease_until: float, expires_at: float,
    ) -> tuple[IdempotencyClaim | None, bool]:
        """Take the key for `holder`: with no live claim (none, or past its `expires_at`) a new
        pending one; a lost one, or a pending one past its lease, with the same fingerprint is
        taken over (pending again, its history kept; a lapsed lease counts as a lost attempt).
        Returns the claim as it was before (None if there was none) and whether `holder` now
        holds it; a claim not taken is left untouched."""
        ...

    async def read_idempotency(self, caller: str, key: str) -> IdempotencyClaim | None: ...

    async def hold_idempotency(self, caller: str, key: str, holder: str, *,
                               lease_until: float | None = None, task_id: str | None = None,
                               upstream_key: str | None = None) -> bool:
        """While `holder` holds the pending claim: renew its lease, or note the task an
        upstream answer named. False when `holder` no longer holds it."""
        ...

    async def end_idempotency(self, caller: str, key: str, holder: str, end: ClaimEnd, *,
                              now: float) -> bool:
        """`holder` lets go: `done` (its task is recorded), `lost` (`failed_at` = `now`), or
        `released` (nothing was created: the claim goes, unless an earlier attempt was lost or
        named a task, when it is lost again). False when `holder` no longer held it."""
        ...

    async def task_recorded(self, task_id: str) -> bool:
        """Whether any caller's record has this task id (deleted ones included)."""
        ...


WebhookState = Literal["pending", "delivered", "failed"]
# How long a delivered message is kept (it only guards against a second enqueue of the same
# event until then); failed ones stay until an operator looks (GET /admin/webhooks/failed).
KEEP_SECONDS = 30 * 86400


@dataclass(slots=True)
class WebhookDelivery:
    """One message in the webhook outbox: `message_id` is its `webhook-id` on every attempt.

    Signed at each attempt with the `owner` key's current secret; `body` is sent verbatim.
    While an attempt runs, `next_at` is the end of the sender's lease (a dead sender's message
    comes due again then).
    """

    message_id: str
    owner: str  # client key name
    task_id: str
    kind: str  # "event" (a key's webhook_url) | "callback" (a native task's callback_url)
    url: str
    body: bytes
    created_at: float
    next_at: float
    attempts: int = 0
    state: WebhookState = "pending"
    last_error: str | None = None
    holder: str | None = None


class WebhookStore(Protocol):
    """The durable webhook outbox: at-least-once delivery across restarts and replicas."""

    async def enqueue_webhook(self, delivery: WebhookDelivery) -> bool:
        """Store the message unless one with its id exists (then nothing changes): True if
        stored."""
        ...

    async def claim_webhooks(self, now: float, holder: str, lease_until: float,
                             limit: int) -> list[WebhookDelivery]:
        """Pending messages due at `now`, taken for `holder` until `lease_until` (atomically:
        no other replica gets them before then), oldest due first."""
        ...

    async def settle_webhook(self, message_id: str, holder: str, *, state: WebhookState,
                             attempts: int, next_at: float, last_error: str | None) -> bool:
        """Record an attempt's outcome, if `holder` still holds the message: delivered, failed
        (given up), or pending again at `next_at`. False when the lease was lost."""
        ...

    async def failed_webhooks(self, limit: int) -> list[WebhookDelivery]:
        """Messages that gave up, most recent first."""
        ...

    async def prune_webhooks(self, before: float) -> int:
        """Forget messages delivered before `before` (failed and pending ones stay): how many
        went. A backend whose delivered messages expire by themselves does nothing."""
        ...

    async def set_task_callback(self, task_id: str, url: str) -> None:
        """Remember a native create's callback_url for the task."""
        ...

    async def task_callback(self, task_id: str) -> str | None: ...
