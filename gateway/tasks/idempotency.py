"""Idempotent creates: one task per caller and `Idempotency-Key`, however often it is sent.

The first request with a key claims it (pending) and creates the task; the same caller sending
the same key again within RETENTION_SECONDS gets that task back (a replay), and one arriving
while the first is still at work waits for it. The same key with another request is a 409. A
create that failed before reaching the upstream lets the key go, so a retry creates afresh; one
whose answer was lost after it may have reached the upstream leaves the key *lost*, and the
next attempt looks for that task upstream (gateway/tasks/lost_creates.py) before creating one.

The fingerprint is a sha256 over the surface, the client-facing model name, what an OpenAI
create implies for the output (size, seconds) and the translated native body with its keys
sorted and top-level nulls dropped (Ark reads a null as absent): the same request sent as
other bytes (spacing, key order, a null for an unset field) is still the same request.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from hashlib import sha256
from typing import TYPE_CHECKING

import orjson

from gateway.errors import GatewayError, Surface, not_found_task
from gateway.observability.logs import get_logger
from gateway.services import Services
from gateway.store.base import TaskRecord
from gateway.store.followups import IdempotencyClaim
from gateway.tasks.lost_creates import Adopted, find_lost_create, searched_specs

if TYPE_CHECKING:
    from gateway.tasks.pipeline import NewTask

# On an answer that is a replay (Stripe's convention): the task is an earlier request's.
REPLAYED_HEADER = {"Idempotent-Replayed": "true"}
MAX_KEY_LENGTH = 255  # as Stripe's
RETENTION_SECONDS = 24 * 3600
# A holder's lease covers the longest its create can take: every key of every upstream that
# may take it, each for a whole upstream call, plus this. Past it the attempt counts as lost.
LEASE_MARGIN = 10.0
FIRST_WAIT, LONGEST_WAIT = 0.02, 0.25  # a duplicate polls the claim at these intervals
log = get_logger("gateway.idempotency")


def idempotency_key(values: Sequence[str], surface: Surface) -> str | None:
    """The request's `Idempotency-Key` (all its header values), or a 400 for one that is not
    1 to 255 printable ASCII characters."""
    if not values:
        return None
    key = values[0]
    if len(values) == 1 and 0 < len(key) <= MAX_KEY_LENGTH and key.isascii() \
            and key.isprintable():
        return key
    message = (f"The Idempotency-Key header must be one value of 1 to {MAX_KEY_LENGTH} "
               "printable ASCII characters.")
    code = "InvalidParameter" if surface == "native" else "invalid_value"
    raise GatewayError(400, code, message, param="Idempotency-Key")


def fingerprint(task: NewTask) -> str:
    body = {k: v for k, v in task.body.items() if v is not None}
    canonical = orjson.dumps(
        [task.surface, task.spec.name, task.requested_size, task.requested_seconds, body],
        option=orjson.OPT_SORT_KEYS)
    return sha256(canonical).hexdigest()


def may_have_created(error: BaseException) -> bool:
    """Whether a failed create may have made a task upstream. The upstream layer marks those
    answers `x-should-retry: false`; anything unforeseen (a bug, a cancellation mid-call)
    counts as one too: the next attempt then only looks upstream first."""
    if isinstance(error, GatewayError):
        return error.headers.get("x-should-retry") == "false"
    return True


@dataclass(frozen=True, slots=True)
class Replay:
    """The key named a task this caller already has: answer it again."""

    record: TaskRecord


@dataclass(slots=True)
class Claim:
    """This request holds the caller's key and may create the task (`previous`: the claim as
    an earlier attempt left it, when that attempt was lost)."""

    services: Services
    caller: str
    key: str
    holder: str
    lease: float
    previous: IdempotencyClaim | None

    async def recover(self, task: NewTask, *, request_id: str | None) -> Adopted | None:
        """The task a lost earlier attempt created, if there is one; None when creating it
        (again) cannot make a second task."""
        previous = self.previous
        if previous is None:
            return None
        found: Adopted | None
        if previous.task_id is not None and previous.upstream_key is not None:
            # Its answer named the task, but the record was never written.
            found = _named_task(self.services, task, previous)
        else:
            until = previous.failed_at if previous.failed_at is not None \
                else previous.lease_until
            found = await find_lost_create(self.services, task, since=previous.started_at,
                                           until=until, request_id=request_id)
        # The search took a while: take a whole lease again for what follows, unless another
        # attempt took the key meanwhile (it looks upstream too; two must not create).
        if not await self.services.store.hold_idempotency(
                self.caller, self.key, self.holder,
                lease_until=self.services.clock() + self.lease):
            raise in_use(task.surface)
        if found is not None:
            log.info("lost_create_adopted", task_id=found.task_id, upstream=found.upstream)
        return found

    async def sent(self, task_id: str, upstream_key: str) -> None:
        """The upstream named the task: noted before its record is written, so that a crash in
        between leaves a claim whose retry adopts the task instead of creating another."""
        if not await self.services.store.hold_idempotency(self.caller, self.key, self.holder,
                                                          task_id=task_id,
                                                          upstream_key=upstream_key):
            log.warning("idempotency_claim_lapsed", task_id=task_id)

    async def done(self) -> None:
        await self.services.store.end_idempotency(self.caller, self.key, self.holder, "done",
                                                  now=self.services.clock())

    async def give_up(self, error: BaseException | None) -> None:
        """The create failed: `error` None or one that made nothing lets the key go (a retry
        creates); else it is kept as lost, and the caller may retry at once (the retry looks
        upstream first), which the answer now says."""
        lost = error is not None and may_have_created(error)
        try:
            ended = await self.services.store.end_idempotency(
                self.caller, self.key, self.holder, "lost" if lost else "released",
                now=self.services.clock())
        except Exception as failure:  # the lease runs out instead: the same as lost
            log.warning("idempotency_claim_not_ended", reason=f"{type(failure).__name__}")
            return
        if lost and ended and isinstance(error, GatewayError):
            error.headers["x-should-retry"] = "true"


async def claim(services: Services, caller: str, task: NewTask) -> Claim | Replay:
    """Take `caller`'s key for this create, or the task it already names (waiting while
    another request with the key is creating it)."""
    assert task.idempotency_key is not None
    key, store = task.idempotency_key, services.store
    signed = fingerprint(task)
    holder = uuid.uuid4().hex
    lease = create_lease(services, task)
    give_up_at = time.monotonic() + lease + LEASE_MARGIN
    while True:
        now = services.clock()
        before, taken = await store.claim_idempotency(
            caller, key, fingerprint=signed, holder=holder, now=now, lease_until=now + lease,
            expires_at=now + RETENTION_SECONDS)
        if taken:
            held = Claim(services, caller, key, holder, lease, before)
            record = await _recorded(services, caller, before)
            if record is None:
                return held
            await held.done()  # the record was written, the claim not yet marked done
            return Replay(record)
        assert before is not None
        if before.fingerprint != signed:
            raise reused(task.surface)
        if before.state == "done" and before.task_id is not None:
            record = await store.get(before.task_id, caller)
            if record is None:
                raise _deleted(task.surface, before.task_id)
            return Replay(record)
        await _while_pending(services, caller, key, give_up_at, task.surface)


async def _while_pending(services: Services, caller: str, key: str, give_up_at: float,
                         surface: Surface) -> None:
    """Wait until the request holding the key lets go or its lease runs out."""
    wait = FIRST_WAIT
    while True:
        if time.monotonic() > give_up_at:
            raise in_use(surface)
        await asyncio.sleep(wait)
        wait = min(wait * 1.5, LONGEST_WAIT)
        current = await services.store.read_idempotency(caller, key)
        now = services.clock()
        if current is None or current.state != "pending" or current.lease_until <= now \
                or current.expires_at <= now:
            return


async def _recorded(services: Services, caller: str,
                    before: IdempotencyClaim | None) -> TaskRecord | None:
    """The record of a task a lost attempt got an answer for, when it was written after all."""
    if before is None or before.task_id is None:
        return None
    return await services.store.get(before.task_id, caller)


def _named_task(services: Services, task: NewTask, previous: IdempotencyClaim) -> Adopted:
    assert previous.task_id is not None and previous.upstream_key is not None
    for spec in searched_specs(services, task.spec):
        if services.upstream_for(spec).has_key(previous.upstream_key):
            return Adopted.named(previous.task_id, spec, services.upstream_for(spec).name,
                                 previous.upstream_key)
    raise GatewayError(410, "UpstreamKeyRemoved", "The task this Idempotency-Key created was "
                       "created with an upstream key that is no longer configured.")


def create_lease(services: Services, task: NewTask) -> float:
    """The longest a create can take: every key of every upstream that may take it (failover),
    each for a whole upstream call."""
    upstreams = {spec.upstream for spec in searched_specs(services, task.spec)}
    longest = 0.0
    for config in services.config.upstreams:
        if config.name in upstreams:
            t = config.timeouts
            longest += len(config.keys) * (t.pool + t.connect + t.read + t.write)
    return longest + LEASE_MARGIN


def reused(surface: Surface) -> GatewayError:
    code = "IdempotencyKeyReused" if surface == "native" else "idempotency_key_reused"
    return GatewayError(409, code, "This Idempotency-Key was already used with a different "
                        "request; use a new key for a new request.", param="Idempotency-Key")


def in_use(surface: Surface) -> GatewayError:
    code = "IdempotencyKeyInUse" if surface == "native" else "idempotency_key_in_use"
    return GatewayError(409, code, "Another request with this Idempotency-Key is still being "
                        "processed; retry later.", param="Idempotency-Key",
                        headers={"retry-after": "1"})


def _deleted(surface: Surface, task_id: str) -> GatewayError:
    if surface == "native":
        return not_found_task(task_id)
    return GatewayError(404, "video_not_found", f"The video '{task_id}' this Idempotency-Key "
                        "created has been deleted.", param="video_id")
