"""The archive scenario: how fast the gateway copies a 200 MiB video into its result store.

The working tree's gateway archives each task it sees succeed (gateway/results/archiver.py)
into its default file:// store, a `results` folder beside its SQLite file. A run creates a
task that finishes at once with the simulator serving a 200 MiB video; the gateway's
`archived` log line says how long its copy took. The same file is then downloaded from the
simulator's signed URL by a plain aiohttp client that reads and drops the bytes: the copy's
throughput over that one's is the ratio reported (target >= 0.8x). Since a copy also writes
200 MiB, the same client then downloads it into a file beside the archive: a ratio near 1x to
that one says the disk, not the gateway, sets the pace. The gateway's VmRSS is sampled during
the copy; growth is its peak minus a reading taken after a warm-up copy.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import statistics
import time
from pathlib import Path
from typing import Any

import aiohttp
from download import RssSampler, signed_video_url, sim_faults
from gateways import openai_create_once
from points import Plan, Point
from procfs import rss_mb
from servers import http_call
from sides import DIRECT, GATEWAY, Context

NAME = "archive"
ARCHIVE_BYTES = 200 * 1024 * 1024
WARM_BYTES = 1024 * 1024
ARCHIVE_RUNS = 3  # the copy and the direct download take turns; medians are reported
COPY_TIMEOUT_S = 120.0
RATIO_TARGET = 0.8
RSS_TARGET_MB = 30.0
READ_CHUNK = 1024 * 1024


def archived_seconds(log: Path, task_id: str) -> float | None:
    """The copy time the gateway logged for `task_id` (its `archived` event), if logged yet."""
    for line in log.read_text(errors="replace").splitlines():
        if task_id not in line or '"archived"' not in line:
            continue
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if event.get("event") == "archived" and event.get("task_id") == task_id:
            return float(event["seconds"])
    return None


def archive_one(ctx: Context, size: int) -> tuple[str, float, float]:
    """Have the gateway archive one fresh `size`-byte video; (task id, the copy's seconds
    as logged, the peak VmRSS of the gateway while it ran)."""
    gateway = ctx.side(GATEWAY)
    sim_faults(ctx, video_bytes=size)
    with RssSampler(gateway.server.pid) as sampler:
        task_id = succeeded_video(ctx)
        manifest = results_folder(ctx) / task_id / "manifest.json"
        deadline = time.monotonic() + COPY_TIMEOUT_S
        seen = False
        while not manifest.exists():
            if time.monotonic() > deadline:
                raise RuntimeError(f"{task_id} not archived in {COPY_TIMEOUT_S:.0f} s: "
                                   f"{gateway.server.tail(5)}")
            # Once a poll (this one or the tracker's) has seen it succeed, the copy runs:
            # from then on only the file system is watched, so the gateway copies undisturbed.
            seen = seen or _completed(ctx, task_id)
            time.sleep(0.01)
    seconds = None
    for _ in range(100):  # the log line may trail the manifest by a moment
        seconds = archived_seconds(gateway.server.log_path, task_id)
        if seconds is not None:
            break
        time.sleep(0.02)
    if seconds is None:
        raise RuntimeError(f"no `archived` log line for {task_id}")
    stored = (results_folder(ctx) / task_id / "video.mp4").stat().st_size
    if stored != size:
        raise RuntimeError(f"{task_id}: {stored} bytes archived, {size} served")
    return task_id, seconds, sampler.peak


def results_folder(ctx: Context) -> Path:
    return ctx.workdir / "results"  # the default beside {workdir}/gateway.db


def succeeded_video(ctx: Context) -> str:
    """A video on the working tree's gateway only (a baseline would copy one of its own at
    the same time) that the simulator finishes at once: it fixes a task's delay at create."""
    delay = sim_faults(ctx)["delay"]
    sim_faults(ctx, delay=0)
    try:
        return str(openai_create_once(ctx, ctx.side(GATEWAY))["id"])
    finally:
        sim_faults(ctx, delay=delay)


def _completed(ctx: Context, task_id: str) -> bool:
    """A GET of the video through the gateway: the first that sees it succeed starts the copy
    (else the gateway's tracker would, a little later)."""
    status, body = http_call(ctx.side(GATEWAY).port, "GET", f"/v1/videos/{task_id}",
                             headers={"Authorization": f"Bearer {ctx.client_key}"})
    return status == 200 and json.loads(body).get("status") == "completed"


async def _direct_download(url: str, into: Path | None) -> tuple[int, float]:
    async with aiohttp.ClientSession() as session:
        started = time.perf_counter()
        async with session.get(url) as response:
            response.raise_for_status()
            size = 0
            with into.open("wb") if into is not None else contextlib.nullcontext() as file:
                async for chunk in response.content.iter_chunked(READ_CHUNK):
                    size += len(chunk)
                    if file is not None:
                        file.write(chunk)  # blocking on purpose: the plainest client there is
        return size, time.perf_counter() - started


def direct_download(ctx: Context, task_id: str, *, to_disk: bool) -> float:
    """Seconds for a plain aiohttp client to read the task's video from the simulator, the
    bytes dropped, or written to a file beside the archive (the same disk's write speed)."""
    into = results_folder(ctx) / f"direct-{task_id}.mp4" if to_disk else None
    try:
        size, seconds = asyncio.run(_direct_download(signed_video_url(ctx, task_id), into))
    finally:
        if into is not None:
            into.unlink(missing_ok=True)
    if size != ARCHIVE_BYTES:
        raise RuntimeError(f"direct download of {task_id}: {size} of {ARCHIVE_BYTES} bytes")
    return seconds


def run_archive(ctx: Context, plan: Plan) -> list[Point]:
    """ARCHIVE_RUNS copies of a 200 MiB video by the working tree's gateway, each followed by
    the direct download of the same file; prints the medians, the ratio and the RSS growth."""
    runs: list[dict[str, Any]] = []
    errors: list[str] = []
    before_bytes = sim_faults(ctx)["video_bytes"]
    pid = ctx.side(GATEWAY).server.pid
    try:
        archive_one(ctx, WARM_BYTES)  # imports and first-use allocations out of the way
        time.sleep(0.2)
        baseline = rss_mb(pid)
        for n in range(ARCHIVE_RUNS):
            task_id, copy_s, peak = archive_one(ctx, ARCHIVE_BYTES)
            direct_s = direct_download(ctx, task_id, to_disk=False)
            disk_s = direct_download(ctx, task_id, to_disk=True)
            mb = ARCHIVE_BYTES / 2**20
            run = {"task_id": task_id, "copy_s": copy_s, "direct_s": round(direct_s, 4),
                   "disk_s": round(disk_s, 4), "copy_mb_per_s": mb / copy_s,
                   "direct_mb_per_s": mb / direct_s, "disk_mb_per_s": mb / disk_s,
                   "rss_baseline_mb": round(baseline, 2), "rss_peak_mb": round(peak, 2),
                   "rss_growth_mb": round(peak - baseline, 2)}
            runs.append(run)
            print(f"  {NAME:<13} run {n + 1}  copy {run['copy_mb_per_s']:6.0f} MB/s  direct "
                  f"{run['direct_mb_per_s']:6.0f} MB/s  ratio "
                  f"{run['copy_mb_per_s'] / run['direct_mb_per_s']:.2f}x  direct to disk "
                  f"{run['disk_mb_per_s']:6.0f} MB/s  gateway RSS "
                  f"+{run['rss_growth_mb']:.1f} MB", flush=True)
    except (RuntimeError, OSError, aiohttp.ClientError) as exc:
        print(f"  {NAME:<13} ERROR {type(exc).__name__}: {exc}", flush=True)
        errors.append(f"{type(exc).__name__}: {exc}")
    finally:
        sim_faults(ctx, video_bytes=before_bytes)
    if runs:
        copy = statistics.median(r["copy_mb_per_s"] for r in runs)
        direct = statistics.median(r["direct_mb_per_s"] for r in runs)
        growth = statistics.median(r["rss_growth_mb"] for r in runs)
        disk = statistics.median(r["disk_mb_per_s"] for r in runs)
        print(f"  {NAME:<13} median copy {copy:.0f} MB/s vs direct {direct:.0f} MB/s: "
              f"{copy / direct:.2f}x (target >= {RATIO_TARGET}x) "
              f"[{'PASS' if copy / direct >= RATIO_TARGET else 'FAIL'}]; gateway RSS growth "
              f"{growth:.1f} MB (target <= {RSS_TARGET_MB:.0f} MB) "
              f"[{'PASS' if growth <= RSS_TARGET_MB else 'FAIL'}]", flush=True)
        print(f"  {NAME:<13} the same download written to the store's disk: {disk:.0f} MB/s; "
              f"copy / that = {copy / disk:.2f}x (the disk, not the gateway, when ~1x)",
              flush=True)
    return [_point(GATEWAY, runs, errors, "copy"), _point(DIRECT, runs, errors, "direct")]


def _point(side: str, runs: list[dict[str, Any]], errors: list[str], which: str) -> Point:
    seconds = sum(r[f"{which}_s"] for r in runs)
    ordered = sorted(r[f"{which}_s"] * 1000 for r in runs)
    return Point(
        scenario=NAME, side=side, concurrency=1, requests=len(runs) + len(errors),
        errors=len(errors), seconds=round(seconds, 3),
        rps=len(runs) / seconds if seconds else 0.0,
        p50_ms=statistics.median(ordered) if ordered else None, p99_ms=None,
        mean_ms=statistics.fmean(ordered) if ordered else None,
        max_ms=ordered[-1] if ordered else None, bytes_in=ARCHIVE_BYTES * len(runs),
        cpu_ms_per_req={}, cpu_cores={}, statuses={}, kind=NAME,
        error_sample=errors[0] if errors else None,
        mb_per_s=(statistics.median(r[f"{which}_mb_per_s"] for r in runs) if runs else None),
        rss_growth_mb=(statistics.median(r["rss_growth_mb"] for r in runs)
                       if runs and which == "copy" else None),
        runs=runs,
    )
