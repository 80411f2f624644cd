"""Polls of a task, coalesced: the upstream is asked about a task at most once per poll window.

Every poll goes through here: a GET of the task on either surface, a content download that
needs the task's URLs, and the tracker's GET. A poll is answered

* by the fetch of the task in flight on this replica, if there is one
  (gateway/tasks/inflight.py): concurrent polls wait for it and share its answer or error;
* else by the record, when it is fresh (gateway/tasks/freshness.py: an unfinished task fetched
  less than ``tracker.poll_window`` ago by any replica, a finished one whose URLs are not
  about to expire): the one store read that found the task, and no write;
* else by a new fetch. It first stamps the task's ``fetched_at`` in the store, atomically
  (``claim_fetch``), so that replicas sharing the store ask once per window between them:
  when another replica stamped it first, the record it keeps answers instead. Then one GET
  upstream, whose answer the record learns (gateway/tasks/answers.py), bytes and all, so
  the next fresh poll returns the bytes the upstream last returned.

A forced refresh (a download whose signed URL the file host refused) skips the freshness and
the stamp: it waits for a fetch in flight that asks the upstream, or asks itself. An upstream
error goes to the poll that asked and to the polls waiting with it; the stamp stays, so for
the rest of the window the record answers the others. The metric
``seedance_gateway_polls_total{surface, source}`` counts what answered each poll.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

import orjson

from gateway.errors import UpstreamBadResponse
from gateway.observability.middleware import note
from gateway.services import Services
from gateway.store.base import TaskRecord
from gateway.tasks.answers import learn, task_of, upstream_failure
from gateway.tasks.freshness import is_fresh
from gateway.tasks.inflight import Fetched, share
from gateway.upstream import UpstreamReply

PollSurface = Literal["native", "openai", "tracker"]
# record: the record (fresh, or just refreshed by another replica); shared: a fetch another
# poll started; upstream: this poll's own GET; list: one of the tracker's list calls.
PollSource = Literal["record", "shared", "upstream", "list"]


class Polled:
    """A poll's answer: the task body (the upstream's bytes, as it last returned them), and
    the upstream's reply when a GET brought it (None when the record answered)."""

    __slots__ = ("body", "reply", "source")

    def __init__(self, body: bytes, reply: UpstreamReply | None, source: PollSource) -> None:
        self.body, self.reply, self.source = body, reply, source

    def task(self) -> dict[str, Any]:
        """The body as a task object, parsed for this caller alone (callers may change it)."""
        try:
            task = orjson.loads(self.body)
        except orjson.JSONDecodeError:
            raise UpstreamBadResponse("the stored task answer is not JSON") from None
        if not isinstance(task, dict):
            raise UpstreamBadResponse("the stored task answer is not a task")
        return task


async def poll(services: Services, record: TaskRecord, *, request_id: str | None,
               surface: PollSurface) -> Polled:
    """The task as the upstream last answered for it, asking it only when the record is not
    fresh (see the module docstring). Raises the upstream's error when asking failed."""
    flight = services.fetches.flying(record.task_id)
    if flight is not None:  # its answer is newer than the record (its stamp is in it already)
        fetched = await share(flight)
        return _answered(services, surface, fetched.body, fetched.reply, "shared")
    now = services.clock()
    window = services.config.tracker.poll_window
    if record.task_json is not None and is_fresh(record, now=now, window=window):
        return _answered(services, surface, record.task_json, None, "record")
    flight = services.fetches.start(
        record.task_id, _fetch(services, record, request_id, fresh_after=now - window))
    fetched = await share(flight)
    return _answered(services, surface, fetched.body, fetched.reply,
                     "upstream" if fetched.reply is not None else "record")


async def refresh(services: Services, record: TaskRecord, *, request_id: str | None,
                  surface: PollSurface) -> Polled:
    """A GET of the task whatever the record holds: the fetch in flight if it is asking the
    upstream (its answer is newer than anything this caller saw), else a new one."""
    flight = services.fetches.flying(record.task_id)
    if flight is not None:
        fetched = await share(flight)
        if fetched.reply is not None:
            return _answered(services, surface, fetched.body, fetched.reply, "shared")
    flight = services.fetches.start(
        record.task_id, _fetch(services, record, request_id, fresh_after=None))
    fetched = await share(flight)
    return _answered(services, surface, fetched.body, fetched.reply, "upstream")


async def _fetch(services: Services, record: TaskRecord, request_id: str | None, *,
                 fresh_after: float | None) -> Fetched:
    """The fetch in flight: stamp, then GET, unless another replica stamped after
    `fresh_after` (None: forced, always GET)."""
    store, now = services.store, services.clock()
    if await store.claim_fetch(record.task_id, now=now,
                               fresh_after=now if fresh_after is None else fresh_after):
        record.fetched_at = now
    elif fresh_after is not None:
        current = await store.get(record.task_id, record.owner)
        if current is not None and current.task_json is not None:
            for field in dataclasses.fields(TaskRecord):  # the caller goes on with this record
                setattr(record, field.name, getattr(current, field.name))
            return Fetched(current.task_json, None)
    return await _get(services, record, request_id)


async def _get(services: Services, record: TaskRecord, request_id: str | None) -> Fetched:
    """GET the task upstream with the key that created it and remember what it answered."""
    upstream = services.upstream_of(record)
    reply = await upstream.get_task(record.task_id, key=record.upstream_key,
                                    client_request_id=request_id)
    if reply.status == 404:
        # Maybe a glitch: the store hides the task only once its loss is confirmed, and never
        # a finished one (gateway.store.base.upstream_404_verdict). This caller gets the 404.
        await services.store.note_upstream_404(record.task_id, now=services.clock())
    if reply.status != 200:
        raise upstream_failure(reply)
    await learn(services, record, task_of(reply), reply.body)
    return Fetched(reply.body, reply)


def _answered(services: Services, surface: PollSurface, body: bytes,
              reply: UpstreamReply | None, source: PollSource) -> Polled:
    services.metrics.polled(surface, source)
    note(poll=source)
    return Polled(body, reply, source)
