"""Sending a create upstream: which upstream and key take it, and failing over to the next.

Kept apart from the pipeline so the choice of key (and failing over to another) has one home.
The model's own upstream goes first, then the other upstreams serving the model, by priority;
within one, its least-busy healthy key (gateway/upstream/keypool.py). A create moves on only
when nothing was made upstream: the answer was a 429 (that key rests) or a 401/403 (that key
is quarantined), or no connection could be opened (the next upstream). Once the request may
have reached Ark — a timeout, a 5xx, a connection lost — the caller gets that answer: the task
may exist, and sending it again could bill it twice.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import orjson

from gateway.catalog import ModelSpec
from gateway.errors import GatewayError
from gateway.observability.logs import get_logger
from gateway.services import Services
from gateway.tasks.answers import created_id, upstream_failure, upstream_key_rejected
from gateway.translate.seedance_validation import validate_create
from gateway.upstream import Upstream, UpstreamReply
from gateway.upstream.failures import NotSent
from gateway.upstream.keypool import FailoverReason

if TYPE_CHECKING:
    from gateway.tasks.pipeline import NewTask

# Answers to a create that made no task, so another key may take it.
FAILOVER_STATUSES: Mapping[int, FailoverReason] = {
    429: "rate_limited", 401: "key_rejected", 403: "key_rejected"}
log = get_logger("gateway.dispatch")


@dataclass(frozen=True, slots=True)
class Sent:
    """A create the upstream accepted: where it went and what it answered."""

    task_id: str
    upstream: str
    key: str  # the upstream key's name: polls, cancels and downloads reuse it
    upstream_model: str
    reply: UpstreamReply


async def send_create(services: Services, task: NewTask, *, request_id: str | None) -> Sent:
    last: GatewayError | None = None
    left: tuple[Upstream, FailoverReason] | None = None  # counted once the next one is tried
    for spec in [task.spec, *services.catalogue.fallbacks(task.spec)]:
        upstream = services.upstream_for(spec)
        body = _body_for(upstream, spec, task)
        if body is None:
            continue
        tried: set[str] = set()
        while (key := upstream.keys.choose(exclude=tried)) is not None:
            tried.add(key)
            if left is not None:
                _failed_over(*left, to=upstream, key=key)
                left = None
            try:
                reply = await upstream.create_task(body, key=key, client_request_id=request_id)
            except NotSent as error:
                last, left = error, (upstream, "unreachable")
                break  # its other keys would meet the same closed door
            upstream.keys.report(key, reply.status, reply.retry_after)
            reason = FAILOVER_STATUSES.get(reply.status)
            if reason is None:  # made, or refused for what it asks: the caller's answer
                return Sent(created_id(reply), upstream.name, key, spec.upstream_model, reply)
            last, left = upstream_failure(reply, is_create=True), (upstream, reason)
    raise last if last is not None else _no_key(services, task.spec)


def _body_for(upstream: Upstream, spec: ModelSpec, task: NewTask) -> bytes | None:
    """The create for `spec`'s upstream, or None when that upstream would refuse it."""
    if spec is task.spec:
        return task.raw if task.raw is not None else orjson.dumps(task.body)
    body = {**task.body, "model": spec.upstream_model}  # that upstream's id for the model
    if upstream.validation:
        try:
            validate_create(body, spec)
        except GatewayError as error:
            log.info("create_fallback_skipped", upstream=upstream.name, model=spec.name,
                     code=error.code, param=error.param)
            return None
    return orjson.dumps(body)


def _failed_over(source: Upstream, reason: FailoverReason, *, to: Upstream, key: str) -> None:
    source.keys.failed_over(reason)
    log.warning("create_failover", upstream=source.name, reason=reason, to_upstream=to.name,
                to_key=key)


def _no_key(services: Services, spec: ModelSpec) -> GatewayError:
    """Nothing was tried: every key that could take the create rests or is quarantined."""
    waits = [wait for s in [spec, *services.catalogue.fallbacks(spec)]
             if (wait := services.upstream_for(s).keys.retry_in()) is not None]
    if not waits:
        return upstream_key_rejected()
    seconds = max(1, math.ceil(min(waits)))
    return GatewayError(
        429, "UpstreamRateLimited",
        f"Every upstream key serving {spec.name} is rate limited; retry in {seconds} s.",
        headers={"retry-after": str(seconds)})
