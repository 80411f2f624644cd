"""The task record and the store interface every backend implements."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from gateway.errors import Surface
from gateway.seedance import FINISHED_STATUSES
from gateway.store.followups import IdempotencyStore, WebhookStore

TERMINAL_STATUSES = FINISHED_STATUSES  # the name the stores and the pipeline use
# The largest count (tokens, requests, tasks, seconds) the gateway keeps: every store holds it
# exactly (SQLite integers are int64; Redis scripts compute in doubles), and so does JSON.
MAX_COUNT = 2**53 - 1

# One upstream 404 may be a glitch: it hides a task only once confirmed (upstream_404_verdict).
GONE_CONFIRM_SECONDS = 30.0  # a second 404 at least this long after the first one seen
ARK_RETENTION_SECONDS = 7 * 86400  # Ark forgets a task this long after its creation


class StoreError(Exception):
    """The store cannot be opened or used (bad path, newer schema, corrupt file, lost server)."""


@dataclass(slots=True)
class TaskRecord:
    """One upstream task, as the gateway knows it (translation.md §1).

    ``task_id`` is the upstream id (``cgt-…``) and is the id on both surfaces. ``task_json`` is the
    last task body the upstream returned (verbatim bytes), or ``None`` before the first poll.
    """

    task_id: str
    owner: str  # client key name
    upstream: str
    upstream_key: str  # upstream key *name*; polls/cancels/downloads must reuse it
    model: str  # client-facing model name (alias kept)
    upstream_model: str
    surface: Surface
    created_at: int
    updated_at: int
    status: str = "queued"
    prompt: str | None = None
    # What an OpenAI create implies for the output (Ark's pixel size, the final duration), so
    # the Video shown before the first poll already matches what Ark will produce.
    requested_size: str | None = None
    requested_seconds: str | None = None
    service_tier: str = "default"
    usage_tokens: int | None = None
    task_json: bytes | None = None
    deleted: bool = False
    # When the upstream first answered 404 for the task, until it is confirmed gone or the
    # upstream answers for it again (see upstream_404_verdict).
    gone_suspected_at: float | None = None
    # When a replica last asked the upstream for the task (a GET or a list), or None: a poll
    # within tracker.poll_window of it is answered by the record (gateway/tasks/freshness.py).
    fetched_at: float | None = None

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES


Upstream404Verdict = Literal["gone", "suspect", "keep"]


def upstream_404_verdict(*, status: str, created_at: int, suspected_at: float | None,
                         now: float, deleting: bool) -> Upstream404Verdict:
    """What an upstream 404 at `now` means for a stored task; every store applies this rule.

    A finished task the gateway recorded outlives the upstream (its result stays its owner's),
    unless the 404 answered the owner's own DELETE: they asked for it to go and the upstream no
    longer has it. An unfinished task is gone once Ark cannot hold it any more (past its
    retention), or when a second 404 comes at least GONE_CONFIRM_SECONDS after the first one
    seen; until then the first 404 is only remembered ("suspect"), and an answer for the task
    in between forgets it.
    """
    if status in TERMINAL_STATUSES:
        return "gone" if deleting else "keep"
    if now - created_at > ARK_RETENTION_SECONDS:
        return "gone"
    if suspected_at is None:
        return "suspect"
    return "gone" if now - suspected_at >= GONE_CONFIRM_SECONDS else "keep"


@dataclass(frozen=True, slots=True)
class ListQuery:
    """One owner's task listing: Ark filters plus cursor or page paging."""

    owner: str
    statuses: Sequence[str] = ()
    task_ids: Sequence[str] = ()
    model: str | None = None
    service_tier: str | None = None
    surface: Surface | None = None
    newest_first: bool = True
    offset: int = 0
    limit: int = 20
    after_id: str | None = None  # OpenAI cursor: records strictly after this one in the order
    created_after: int | None = None  # Ark lists only the last 7 days


class TaskStore(Protocol):
    """Persistence for task records. Every method is scoped to what the caller may see."""

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def ping(self) -> bool: ...

    async def add(self, record: TaskRecord, *, next_poll_at: float = 0.0,
                  usage: Reservation | None = None) -> None:
        """Store a new task (one transaction with its usage entry: a held reservation takes
        the task's id, an unheld one is written); the tracker first polls it at
        `next_poll_at`."""
        ...

    async def get(self, task_id: str, owner: str) -> TaskRecord | None:
        """The record if it exists, is not deleted and belongs to ``owner``."""
        ...

    async def update_status(
        self, task_id: str, *, status: str, updated_at: int, usage_tokens: int | None,
        task_json: bytes,
    ) -> None:
        """Record what the upstream answered for the task, forgetting an earlier 404; a finished
        task never goes back to queued/running (such an answer is dropped)."""
        ...

    async def mark_deleted(self, task_id: str) -> None: ...

    async def note_upstream_404(self, task_id: str, *, now: float,
                                deleting: bool = False) -> bool:
        """The upstream answered 404 for the task at `now` (to the owner's DELETE when
        `deleting`, else to a GET): applies upstream_404_verdict to the stored record,
        atomically against other writers. Gone: hidden as by mark_deleted, out of the tracker's
        due tasks, and a reservation still open settles at its estimate (the in-flight slot is
        freed; what Ark billed cannot be known). Suspect: `now` becomes `gone_suspected_at`.
        True when the task is now gone."""
        ...

    async def clear_upstream_404(self, task_id: str) -> None:
        """The upstream answered for the task after all: forget an earlier 404 (update_status,
        which only ever writes an upstream answer, forgets it too)."""
        ...

    async def claim_fetch(self, task_id: str, *, now: float, fresh_after: float) -> bool:
        """Stamp `now` as the task's `fetched_at` before asking the upstream for it, unless a
        fetch stamped after `fresh_after` is already recorded (atomically against every other
        replica and process): True when stamped, so the caller asks; False when another one
        just did (or the task is gone), and the next `get` shows what it stored."""
        ...

    async def list(self, query: ListQuery) -> tuple[list[TaskRecord], int]:
        """A page of records and the total number matching the filters."""
        ...


@dataclass(slots=True)
class KeyRecord:
    """A client key managed through the admin API or CLI (config keys are not stored).

    Only the sha256 digest of the secret is kept; `prefix` is its first characters, shown in
    listings so people can tell keys apart. A revoked key stays stored (for the audit trail
    and its usage) but no longer authenticates.
    """

    name: str
    digest: str  # sha256 hex of the secret
    prefix: str
    models: tuple[str, ...] = ("*",)
    rpm: int | None = None
    max_in_flight: int | None = None
    daily_tokens: int | None = None
    monthly_tokens: int | None = None
    daily_cost: float | None = None  # in prices.currency
    monthly_cost: float | None = None
    expires_at: int | None = None
    disabled: bool = False
    revoked: bool = False
    created_at: int = 0
    updated_at: int = 0
    # Where the key's task events go, and the whsec_ secret that signs them (kept as is: a
    # signature needs it; shown only when created or rotated).
    webhook_url: str | None = None
    webhook_secret: str | None = None


class KeyExists(Exception):
    """A key with that name is already stored."""


class KeyStore(Protocol):
    """Persistence for admin-managed client keys."""

    async def add_key(self, record: KeyRecord) -> None:
        """Store a new key; raises KeyExists when the name is taken (revoked keys included)."""
        ...

    async def get_key(self, name: str) -> KeyRecord | None: ...

    async def key_by_digest(self, digest: str) -> KeyRecord | None:
        """The key whose secret has this sha256 hex digest, revoked or not."""
        ...

    async def list_keys(self) -> list[KeyRecord]: ...

    async def put_key(self, record: KeyRecord, *, old_digest: str | None = None) -> None:
        """Replace a stored key; `old_digest` when rotation changed the digest."""
        ...




@dataclass(frozen=True, slots=True)
class Reservation:
    """Tokens, their cost and an in-flight slot held for one create, until the task ends."""

    ref: str  # the upstream task id once known; a temporary id before
    key: str
    model: str
    day: str  # "2026-11-24" (UTC)
    month: str  # "2026-11"
    tokens: int
    held: bool = False  # stored by reserve() (a key with limits); else written with the task
    # The model's price per million tokens for this task, kept so that settling prices the
    # real tokens alike; None: unpriced (no cost, counts nothing against cost budgets).
    price: float | None = None
    cost: int | None = None  # millionths of the currency (gateway/keys/prices.py): the estimate


@dataclass(frozen=True, slots=True)
class Limits:
    max_in_flight: int | None = None
    daily_tokens: int | None = None
    monthly_tokens: int | None = None
    daily_cost: int | None = None  # millionths of the currency
    monthly_cost: int | None = None


@dataclass(frozen=True, slots=True)
class LimitRefusal:
    """Which limit refused a reservation, and where the key stands against it."""

    # "max_in_flight" | "daily_tokens" | "monthly_tokens" | "daily_cost" | "monthly_cost"
    # (the cost figures in millionths)
    limit: str
    allowed: int
    used: int


@dataclass(frozen=True, slots=True)
class UsageRow:
    key: str
    model: str
    day: str
    tasks: int
    tokens: int  # settled tokens plus estimates still held
    cost: int | None = None  # the same in millionths of the currency; None: no priced task


class LimitStore(Protocol):
    """Counters that must hold across replicas: each call is atomic in the backend."""

    async def count_request(self, key: str, window: int) -> int:
        """Count one request of `key` in the minute `window`; the count so far."""
        ...

    async def reserve(self, reservation: Reservation, limits: Limits) -> LimitRefusal | None:
        """Hold a slot and the tokens if every limit allows it (atomically), else say why."""
        ...

    async def settle(self, ref: str, tokens: int) -> int | None:
        """The task ended: its real tokens (and their cost at the reservation's price) replace
        the estimate and its slot is freed. The settled cost in millionths when this call
        settled a priced reservation, else None (unpriced, unknown or settled already)."""
        ...

    async def in_flight(self, key: str) -> int:
        """How many of the key's tasks are still open (created, not yet settled)."""
        ...

    async def release(self, ref: str) -> None:
        """The create failed: give everything back."""
        ...

    async def usage(self, *, since_day: str, until_day: str,
                    key: str | None = None) -> list[UsageRow]: ...




class TrackerStore(Protocol):
    """What the background tracker needs: due tasks and leases so one replica polls each."""

    async def due_tasks(self, now: float, limit: int) -> list[TaskRecord]:
        """Unfinished tasks whose next poll is due and whose lease is free, oldest first."""
        ...

    async def claim(self, task_id: str, holder: str, until: float, now: float) -> bool:
        """Take the task's lease if it is free and the task still due at `now`, or renew one
        `holder` already has."""
        ...

    async def schedule(self, task_id: str, holder: str, next_poll: float) -> None:
        """Set the next poll time and free the lease (only if `holder` still holds it)."""
        ...


class GatewayStore(TaskStore, KeyStore, LimitStore, TrackerStore, IdempotencyStore,
                   WebhookStore, Protocol):
    """What the gateway needs from a backend: tasks, managed keys, limits, tracker leases,
    Idempotency-Key claims, the webhook outbox."""
