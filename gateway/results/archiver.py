"""Copies each succeeded task's video and last frame into the result store, in the background.

When a task first turns finished (gateway/tasks/finished.py) a pending marker
(`_pending/{task_id}`) is written to the result store and a copy is scheduled; at most
`results.concurrency` copies run at once per replica. A copy streams the upstream file into
the store chunk by chunk (flat memory), checks the byte count against the upstream's
Content-Length, and only then writes the task's manifest (`{task_id}/manifest.json`): the
task counts as archived once its manifest exists. The pending marker goes last, so a copy
cut short by a restart is found again: every `results.sweep_interval` each replica copies
what is still pending (copies are idempotent: the same bytes under the same names) and
removes what is past `results.retention_days` (and the oldest, past `results.max_bytes`).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from gateway.config import ResultsConfig
from gateway.observability.logs import get_logger
from gateway.results.links import FILE_NAMES, LinkSigner
from gateway.results.stores import LengthMismatch, ResultStore
from gateway.store.base import TaskRecord
from gateway.upstream.files import FileTruncated

if TYPE_CHECKING:
    from gateway.services import Services

PENDING = "_pending/"
SECRET_KEY = "_gateway/signing-secret"
MANIFEST = "manifest.json"
EXPIRED_STATUSES = (401, 403, 404, 410)  # a stale signature: the task is asked for new URLs
MANIFEST_CACHE_SECONDS = 30.0
log = get_logger("gateway.results")


class CopyFailed(Exception):
    """A file could not be copied this time; the task stays pending."""


@dataclass(frozen=True, slots=True)
class Manifest:
    task_id: str
    created_at: int  # the task's: retention counts from it, as Ark's does
    archived_at: float
    files: dict[str, int]  # name -> size

    def to_json(self) -> bytes:
        return orjson.dumps({"task_id": self.task_id, "created_at": self.created_at,
                             "archived_at": self.archived_at, "files": self.files})

    @classmethod
    def from_json(cls, body: bytes) -> Manifest:
        data = orjson.loads(body)
        return cls(str(data["task_id"]), int(data["created_at"]), float(data["archived_at"]),
                   {str(k): int(v) for k, v in data["files"].items()})


class Archiver:
    def __init__(self, config: ResultsConfig, results: ResultStore,
                 clock: Callable[[], float]) -> None:
        self.config = config
        self.results = results
        self.clock = clock
        self.signer: LinkSigner | None = None
        self._services: Services | None = None
        self._slots = asyncio.Semaphore(config.concurrency)
        self._copies: dict[str, asyncio.Task[None]] = {}
        self._sweeper: asyncio.Task[None] | None = None
        self._manifests: dict[str, tuple[float, Manifest]] = {}

    async def start(self, services: Services) -> None:
        self._services = services
        await self.results.open()
        self.signer = LinkSigner(await self._signing_secret(), ttl=self.config.link_ttl)
        self._sweeper = asyncio.create_task(self._sweep_forever())

    async def stop(self) -> None:
        tasks = [t for t in (self._sweeper, *self._copies.values()) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.results.close()

    async def _signing_secret(self) -> bytes:
        if self.config.signing_secret is not None:
            return self.config.signing_secret.get_secret_value().encode()
        # The first replica to get here writes it; every other one reads that one.
        await self.results.put_small(SECRET_KEY, secrets.token_hex(32).encode(), exclusive=True)
        secret = await self.results.get_small(SECRET_KEY)
        if not secret:
            raise RuntimeError("the result store lost the link signing secret")
        return secret.strip()

    # -- what the rest of the gateway asks -------------------------------------------------

    def aged_out(self, created_at: int) -> bool:
        """Past retention: the task answers as Ark answers for a task it has forgotten."""
        return self.clock() - created_at > self.config.retention_days * 86400

    async def archived(self, task_id: str) -> Manifest | None:
        cached = self._manifests.get(task_id)
        now = self.clock()
        if cached is not None and now - cached[0] < MANIFEST_CACHE_SECONDS:
            return cached[1]
        body = await self.results.get_small(f"{task_id}/{MANIFEST}")
        if body is None:
            self._manifests.pop(task_id, None)
            return None
        manifest = Manifest.from_json(body)
        self._manifests[task_id] = (now, manifest)
        return manifest

    async def task_finished(self, record: TaskRecord) -> None:
        """Mark the task pending and schedule its copy; never raises, never waits for it."""
        if record.status != "succeeded":
            return
        marker = orjson.dumps({"task_id": record.task_id, "owner": record.owner})
        try:
            await self.results.put_small(PENDING + record.task_id, marker)
        except Exception as exc:  # the next sweep cannot find it, but this copy still runs
            log.warning("archive_pending_not_written", task_id=record.task_id,
                        error=type(exc).__name__)
        self._schedule(record.task_id, record.owner)

    # -- copies -----------------------------------------------------------------------------

    def _schedule(self, task_id: str, owner: str) -> None:
        if task_id in self._copies:
            return
        task = asyncio.create_task(self._copy_task(task_id, owner))
        self._copies[task_id] = task
        pending = self._services.metrics.archive_pending if self._services else None
        if pending is not None:
            pending.inc()

        def done(_: asyncio.Task[None]) -> None:
            self._copies.pop(task_id, None)
            if pending is not None:
                pending.dec()

        task.add_done_callback(done)

    async def _copy_task(self, task_id: str, owner: str) -> None:
        async with self._slots:
            try:
                await self.archive(task_id, owner)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self._services is not None:
                    self._services.metrics.archive_copies.labels("failed").inc()
                log.warning("archive_failed", task_id=task_id, error=f"{type(exc).__name__}: "
                            f"{exc}")

    async def archive(self, task_id: str, owner: str) -> Manifest | None:
        """Copy the task's files unless they are already archived; None when there is nothing
        to archive (the task is gone or did not succeed)."""
        assert self._services is not None, "start() first"
        services = self._services
        done = await self.archived(task_id)
        if done is None:
            record = await services.store.get(task_id, owner)
            if record is None or record.status != "succeeded" or record.task_json is None:
                await self.results.delete(PENDING + task_id)
                return None
            started = self.clock()
            files = await self._copy_files(services, record)
            if await services.store.get(task_id, owner) is None:
                # Deleted while its files were copied (forget() may have run on another
                # replica): no manifest, so the task never counts as archived.
                await self._delete_files(task_id)
                await self.results.delete(PENDING + task_id)
                return None
            done = Manifest(task_id, record.created_at, self.clock(), files)
            await self.results.put_small(f"{task_id}/{MANIFEST}", done.to_json())
            self._manifests[task_id] = (self.clock(), done)
            services.metrics.archive_copies.labels("archived").inc()
            log.info("archived", task_id=task_id, bytes=sum(files.values()),
                     seconds=round(self.clock() - started, 3))
        await self.results.delete(PENDING + task_id)
        return done

    async def _copy_files(self, services: Services, record: TaskRecord) -> dict[str, int]:
        from gateway.tasks.polls import refresh  # the pipeline imports this module's caller

        task: dict[str, Any] = orjson.loads(record.task_json or b"{}")
        refreshed = False
        files: dict[str, int] = {}
        for field, name in FILE_NAMES.items():
            while True:
                url = _content_url(task, field)
                if url is None:
                    break
                status = await self._copy_file(services, record, url, f"{record.task_id}/{name}")
                if status == 200:
                    size = await self.results.size(f"{record.task_id}/{name}")
                    files[name] = size or 0
                    break
                if status in EXPIRED_STATUSES and not refreshed:
                    polled = await refresh(services, record, request_id=None, surface="tracker")
                    task, refreshed = polled.task(), True
                    continue
                raise CopyFailed(f"{field}: the file host answered HTTP {status}")
        if "video.mp4" not in files:
            raise CopyFailed("the task names no video_url")
        return files

    async def _copy_file(self, services: Services, record: TaskRecord, url: str,
                         key: str) -> int:
        async with services.upstream_of(record).open_file(url, headers={}) as upstream:
            if upstream.status != 200:
                return upstream.status
            announced = upstream.headers.get("content-length")
            length = int(announced) if announced and announced.isdigit() else None
            try:
                written = await self.results.put(key, upstream.chunks(), length=length)
            except (FileTruncated, LengthMismatch) as exc:
                raise CopyFailed(f"{key}: {exc}") from None
            services.metrics.archive_bytes.inc(written)
            return 200

    # -- the sweep ------------------------------------------------------------------------

    async def _sweep_forever(self) -> None:
        while True:
            try:
                await self.sweep()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("archive_sweep_failed", error=f"{type(exc).__name__}: {exc}")
            await asyncio.sleep(self.config.sweep_interval)

    async def sweep(self) -> None:
        """Resume pending copies; remove what is past retention or over the size cap."""
        for key in await self.results.keys(PENDING):
            body = await self.results.get_small(key)
            if body is None:
                continue
            pending = orjson.loads(body)
            self._schedule(str(pending["task_id"]), str(pending["owner"]))
        manifests: list[Manifest] = []
        for key in await self.results.keys(""):
            if not key.endswith("/" + MANIFEST) or key.startswith(("_pending/", "_gateway/")):
                continue
            body = await self.results.get_small(key)
            if body is not None:
                manifests.append(Manifest.from_json(body))
        kept = []
        for manifest in manifests:
            if self.aged_out(manifest.created_at):
                await self.remove(manifest, reason="retention")
            else:
                kept.append(manifest)
        if self.config.max_bytes is not None:
            total = sum(sum(m.files.values()) for m in kept)
            for manifest in sorted(kept, key=lambda m: m.archived_at):
                if total <= self.config.max_bytes:
                    break
                await self.remove(manifest, reason="max_bytes")
                total -= sum(manifest.files.values())

    async def remove(self, manifest: Manifest, *, reason: str) -> None:
        # The manifest first: from then on the task is not archived, whatever else remains.
        await self.results.delete(f"{manifest.task_id}/{MANIFEST}")
        self._manifests.pop(manifest.task_id, None)
        for name in manifest.files:
            await self.results.delete(f"{manifest.task_id}/{name}")
        if self._services is not None:
            self._services.metrics.archive_removed.labels(reason).inc()
        log.info("archive_removed", task_id=manifest.task_id, reason=reason)

    async def forget(self, task_id: str) -> None:
        """The owner deleted the task: its manifest, files and pending marker go, so neither
        a /files link nor a download serves it again. A copy under way here stops first."""
        copy = self._copies.get(task_id)
        if copy is not None:
            copy.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await copy
        await self.results.delete(PENDING + task_id)
        body = await self.results.get_small(f"{task_id}/{MANIFEST}")
        if body is not None:
            await self.remove(Manifest.from_json(body), reason="deleted")
        self._manifests.pop(task_id, None)
        await self._delete_files(task_id)  # what a copy cut short left without a manifest

    async def _delete_files(self, task_id: str) -> None:
        for name in FILE_NAMES.values():
            await self.results.delete(f"{task_id}/{name}")


def _content_url(task: dict[str, Any], field: str) -> str | None:
    content = task.get("content")
    url = content.get(field) if isinstance(content, dict) else None
    return url if isinstance(url, str) and url else None
