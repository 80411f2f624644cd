"""Finding upstream the task a create made when the create's answer was lost.

Ark has no idempotency key, so a create that timed out or lost its connection after it was sent
may or may not have made a (billed) task. When the caller retries with the same
`Idempotency-Key`, Ark's task list is read, newest first, with every key of every upstream that
may have taken the create (failover included), filtered by that upstream's model id and the
service tier: a candidate was created within [first attempt − CLOCK_SKEW, loss + CLOCK_SKEW],
has the parameters the request asked for where Ark echoes them (resolution, ratio, duration,
seed, audio, tier, …; the prompt and media are not echoed), and is on no gateway record (the
tasks of other creates are). One candidate is adopted. None: nothing was made, creating is
safe. Several: the gateway will not guess (adopting another caller's in-flight task would show
them its video) and answers 409; the key stays lost, and a later retry looks again, when the
other creates have been recorded. A list that cannot be read is a 503: nothing is created.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from gateway.catalog import ModelSpec
from gateway.errors import GatewayError, Surface
from gateway.observability.logs import get_logger
from gateway.services import Services
from gateway.upstream import Upstream, UpstreamReply

if TYPE_CHECKING:
    from gateway.tasks.pipeline import NewTask

CLOCK_SKEW = 30  # seconds between the gateway's clock and Ark's `created_at`
PAGE_SIZE = 100
MAX_PAGES = 5  # past this many pages still inside the window, the search gives up (503)
LIST_ATTEMPTS = 3  # Ark allows about one list per second per account: a 429 is waited out
LONGEST_LIST_WAIT = 5.0
# Create parameters a task object echoes, and the values that let Ark choose (any answer
# matches those, as does a parameter the request left out).
ECHOED = ("resolution", "ratio", "duration", "frames", "seed", "generate_audio", "service_tier",
          "execution_expires_after", "priority", "safety_identifier", "draft", "output_format")
ANY_VALUE: dict[str, object] = {"ratio": "adaptive", "duration": -1, "seed": -1}
# An upstream that refuses a key's list has no task it could let the gateway poll either.
REFUSED_KEY_STATUSES = frozenset({401, 403})
log = get_logger("gateway.idempotency")


@dataclass(frozen=True, slots=True)
class Adopted:
    """A task an earlier, lost attempt created: where it is, as dispatch's `Sent` says it."""

    task_id: str
    upstream: str
    key: str  # the upstream key name whose list showed it (or whose create named it)
    upstream_model: str
    reply: UpstreamReply  # what the lost answer said: {"id": ...}
    task: dict[str, Any] | None = None  # the task object as listed
    body: bytes | None = None

    @classmethod
    def named(cls, task_id: str, spec: ModelSpec, upstream: str, key: str) -> Adopted:
        return cls(task_id, upstream, key, spec.upstream_model, id_reply(task_id))


def id_reply(task_id: str) -> UpstreamReply:
    """Ark's create answer for a task the gateway answers without calling the upstream."""
    return UpstreamReply(200, orjson.dumps({"id": task_id}), None)


def searched_specs(services: Services, spec: ModelSpec) -> list[ModelSpec]:
    """The model on every upstream a create of it may go to, its own first."""
    return [spec, *services.catalogue.fallbacks(spec)]


def matches(item: dict[str, Any], body: dict[str, Any]) -> bool:
    """Whether a listed task could be the one `body` (a native create) made."""
    for field in ECHOED:
        asked = body.get(field)
        if asked is None or (field in ANY_VALUE and ANY_VALUE[field] == asked):
            continue
        if field in item and item[field] != asked:
            return False
    return True


async def find_lost_create(services: Services, task: NewTask, *, since: float, until: float,
                           request_id: str | None) -> Adopted | None:
    low, high = int(since) - CLOCK_SKEW, math.ceil(until) + CLOCK_SKEW
    found: dict[str, Adopted] = {}
    for spec in searched_specs(services, task.spec):
        upstream = services.upstream_for(spec)
        for key in _key_names(services, upstream.name):
            listed = await _listed(upstream, key, spec, task, low, high, request_id)
            for item in listed:
                task_id = item["id"]
                if task_id in found or not matches(item, task.body) \
                        or await services.store.task_recorded(task_id):
                    continue
                found[task_id] = Adopted(task_id, upstream.name, key, spec.upstream_model,
                                         id_reply(task_id), item, orjson.dumps(item))
    if len(found) > 1:
        log.warning("lost_create_ambiguous", candidates=len(found))
        raise ambiguous(task.surface, len(found))
    return next(iter(found.values()), None)


def _key_names(services: Services, upstream: str) -> list[str]:
    return [key.name for config in services.config.upstreams if config.name == upstream
            for key in config.keys]


async def _listed(upstream: Upstream, key: str, spec: ModelSpec, task: NewTask, low: int,
                  high: int, request_id: str | None) -> list[dict[str, Any]]:
    """The tasks the key's list shows created within [low, high] (paged newest first)."""
    inside: list[dict[str, Any]] = []
    for page in range(1, MAX_PAGES + 1):
        query = [("page_num", str(page)), ("page_size", str(PAGE_SIZE)),
                 ("filter.model", spec.upstream_model),
                 ("filter.service_tier", task.service_tier)]
        items = await _page(upstream, key, query, task.surface, request_id)
        if items is None:
            return []
        created = [item.get("created_at") for item in items]
        inside += [item for item, at in zip(items, created, strict=True)
                   if isinstance(at, int) and low <= at <= high
                   and isinstance(item.get("id"), str) and isinstance(item.get("status"), str)]
        older = [at for at in created if isinstance(at, int) and at < low]
        if len(items) < PAGE_SIZE or older:
            return inside
    raise unverified(task.surface)


async def _page(upstream: Upstream, key: str, query: list[tuple[str, str]], surface: Surface,
                request_id: str | None) -> list[dict[str, Any]] | None:
    """One page of the list's items; None when the upstream refuses the key."""
    for attempt in range(LIST_ATTEMPTS):
        try:
            reply = await upstream.list_tasks(query, key=key, client_request_id=request_id)
        except GatewayError as error:
            log.warning("lost_create_search_failed", upstream=upstream.name, code=error.code)
            raise unverified(surface) from None
        if reply.status == 429 and attempt + 1 < LIST_ATTEMPTS:
            await asyncio.sleep(_wait(reply.retry_after))
            continue
        if reply.status in REFUSED_KEY_STATUSES:
            log.warning("lost_create_search_key_refused", upstream=upstream.name, key=key,
                        status=reply.status)
            return None
        if reply.status == 200:
            try:
                items = orjson.loads(reply.body).get("items")
            except (orjson.JSONDecodeError, AttributeError):
                items = None
            if isinstance(items, list):
                return [item for item in items if isinstance(item, dict)]
        log.warning("lost_create_search_failed", upstream=upstream.name, status=reply.status)
        break
    raise unverified(surface)


def _wait(retry_after: str | None) -> float:
    try:
        seconds = float(retry_after) if retry_after is not None else 1.0
    except ValueError:
        seconds = 1.0
    return min(max(seconds, 0.1), LONGEST_LIST_WAIT)


def ambiguous(surface: Surface, candidates: int) -> GatewayError:
    code = "IdempotencyKeyAmbiguous" if surface == "native" else "idempotency_key_ambiguous"
    return GatewayError(
        409, code, f"An earlier attempt with this Idempotency-Key lost its answer, and "
        f"{candidates} upstream tasks could be the one it created; the gateway will not guess. "
        "Retry later: tasks of other requests in flight are told apart once recorded.",
        param="Idempotency-Key", headers={"retry-after": "5"})


def unverified(surface: Surface) -> GatewayError:
    code = "ServiceUnavailable" if surface == "native" else "idempotency_check_unavailable"
    return GatewayError(
        503, code, "An earlier attempt with this Idempotency-Key lost its answer, and the "
        "upstream task list could not be read to find its task; nothing was created. Retry "
        "later.", param="Idempotency-Key", headers={"retry-after": "2"})
