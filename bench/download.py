"""The download scenario: throughput and proxy memory for one 200 MiB video, per side."""

from __future__ import annotations

import contextlib
import http.client
import json
import statistics
import threading
import time
import urllib.parse
from collections import Counter
from dataclasses import dataclass
from typing import Any

from gateways import openai_create_once
from payloads import OPENAI_PATH, TASKS_PATH
from points import Plan, Point, relate
from procfs import reset_peak_rss, rss_mb
from servers import HOST, http_call
from sides import DIRECT, GATEWAY, Context, Side

NAME = "download"
DOWNLOAD_BYTES = 200 * 1024 * 1024  # the simulator's video_bytes during the download scenario
DOWNLOAD_RUNS = 3  # per side, the sides taking turns; the median is reported
RSS_SAMPLE_S = 0.05
DOWNLOAD_TIMEOUT_S = 60.0  # per socket operation: a stalled download fails instead of hanging

Target = tuple[int, str, dict[str, str]]  # port, request target, headers


def sim_faults(ctx: Context, **changes: float) -> dict[str, Any]:
    """POST /_sim/faults (an empty change just reads them); returns the knobs now in force."""
    assert ctx.sim is not None
    status, body = http_call(ctx.sim.port, "POST", "/_sim/faults",
                             headers={"Content-Type": "application/json"},
                             body=json.dumps(changes).encode())
    if status != 200:
        raise RuntimeError(f"/_sim/faults {changes}: HTTP {status}: {body[:300]!r}")
    knobs: dict[str, Any] = json.loads(body)
    return knobs


def finished_videos(ctx: Context) -> dict[str, str]:
    """One OpenAI video per gateway side (each has its own store) that has already succeeded:
    the simulator fixes a task's delay when it is created, so delay 0 for these creates only
    (the seeded tasks stay queued)."""
    delay = sim_faults(ctx)["delay"]
    sim_faults(ctx, delay=0)
    try:
        return {side.name: str(openai_create_once(ctx, side)["id"])
                for side in ctx.ordered() if side.is_gateway}
    finally:
        sim_faults(ctx, delay=delay)


def signed_video_url(ctx: Context, task_id: str) -> str:
    """``content.video_url`` from the simulator's native GET of the task: the direct side."""
    direct = ctx.side(DIRECT)
    status, body = http_call(direct.port, "GET", f"{TASKS_PATH}/{task_id}",
                             headers={"Authorization": f"Bearer {direct.token}"})
    task = json.loads(body) if status == 200 else {}
    if task.get("status") != "succeeded":
        raise RuntimeError(f"download task {task_id} not succeeded: HTTP {status} {body[:300]!r}")
    url: str = task["content"]["video_url"]
    return url


class RssSampler:
    """Samples VmRSS of a process tree every ``interval`` s on a thread, keeping the peak."""

    def __init__(self, pid: int, interval: float = RSS_SAMPLE_S) -> None:
        self.pid = pid
        self.interval = interval
        self.peak = 0.0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="rss-sampler", daemon=True)

    def _loop(self) -> None:
        while True:
            self.peak = max(self.peak, rss_mb(self.pid))
            self.samples += 1
            if self._stop.wait(self.interval):
                return

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_mb(self.pid))  # one last sample, after the final byte
        self.samples += 1


@dataclass
class Download:
    status: int
    size: int  # body bytes read (all of them, into one reused buffer)
    seconds: float  # request written to last body byte
    head: bytes = b""  # the start of a non-2xx body, for the error message


def download(port: int, target: str, headers: dict[str, str], *,
             buffer: memoryview) -> Download:
    """One GET, the body read into ``buffer`` over and over (never stored). http.client's
    readinto goes straight to recv_into for reads bigger than its 8 KiB buffer, so the client
    costs one copy per byte, out of the kernel."""
    conn = http.client.HTTPConnection(HOST, port, timeout=DOWNLOAD_TIMEOUT_S)
    try:
        started = time.perf_counter()
        conn.request("GET", target, headers=headers)
        response = conn.getresponse()
        if response.status >= 300:
            return Download(response.status, 0, time.perf_counter() - started,
                            response.read(300))
        size = 0
        while read := response.readinto(buffer):
            size += read
        return Download(response.status, size, time.perf_counter() - started)
    finally:
        conn.close()


def run_download(ctx: Context, plan: Plan) -> list[Point]:
    """200 MiB through ``GET /v1/videos/{id}/content`` (gateway sides), through nginx from the
    signed URL, and straight from the signed URL (direct).

    The sides take turns, DOWNLOAD_RUNS runs each, c=1. Each proxy run samples the proxy's
    VmRSS every 50 ms; growth is the peak minus one baseline read after a warm-up Range
    request, so memory kept from an earlier run still counts. The simulator serves
    ``video_bytes`` of the moment, so the knob is set for this scenario and put back after.
    """
    sides = ctx.ordered()
    runs: dict[str, list[dict[str, Any]]] = {side.name: [] for side in sides}
    errors: dict[str, list[str]] = {side.name: [] for side in sides}
    before_bytes = sim_faults(ctx)["video_bytes"]
    try:
        targets = _download_targets(ctx)
        sim_faults(ctx, video_bytes=DOWNLOAD_BYTES)
        buffer = memoryview(bytearray(1 << 20))
        for side in sides:  # warm-up: a small Range request per side
            port, target, headers = targets[side.name]
            warm = download(port, target, {**headers, "Range": "bytes=0-65535"}, buffer=buffer)
            if warm.status != 206 or warm.size != 65536:
                raise RuntimeError(f"download warm-up ({side.name}): HTTP {warm.status}, "
                                   f"{warm.size} bytes {warm.head[:300]!r}")
        time.sleep(0.2)
        baselines = {side.name: rss_mb(side.server.pid) for side in sides if side.is_proxy}
        for side in sides:
            if side.is_gateway:
                side.hwm_floor_mb = max(side.hwm_floor_mb, rss_mb(side.server.pid, "VmHWM"))
        for n in range(DOWNLOAD_RUNS):
            for side in sides:
                run = _download_run(ctx, side, targets[side.name], buffer,
                                    baselines.get(side.name))
                runs[side.name].append(run)
                if not run["ok"]:
                    errors[side.name].append(run["error"])
                mb_s = f"{run['mb_per_s']:7.0f} MB/s" if run["ok"] else f"ERROR {run['error']}"
                growth = (f"  {side.name} RSS +{run['rss_growth_mb']:.1f} MB"
                          if run["rss_growth_mb"] is not None else "")
                print(f"  {NAME:<13} {side.name:<8} run {n + 1}  {run['seconds']:6.3f} s  "
                      f"{mb_s}{growth}", flush=True)
    except (RuntimeError, OSError, http.client.HTTPException) as exc:
        # A broken setup fails this scenario only; the rest of the run is still reported.
        print(f"  {NAME:<13} ERROR {type(exc).__name__}: {exc}", flush=True)
        for side in sides:
            errors[side.name].append(f"{type(exc).__name__}: {exc}")
    finally:
        sim_faults(ctx, video_bytes=before_bytes)
    points = [_download_point(side.name, runs[side.name], errors[side.name]) for side in sides]
    relate(points)
    return points


def _download_targets(ctx: Context) -> dict[str, Target]:
    """(port, request target, headers) per side, for freshly finished videos."""
    videos = finished_videos(ctx)
    signed = urllib.parse.urlsplit(signed_video_url(ctx, videos[GATEWAY]))
    file_target = f"{signed.path}?{signed.query}"
    targets: dict[str, Target] = {}
    for side in ctx.ordered():
        if side.is_gateway:
            targets[side.name] = (side.port, f"{OPENAI_PATH}/{videos[side.name]}/content",
                                  {"Authorization": f"Bearer {ctx.client_key}"})
        else:  # direct and nginx: the pre-signed file URL, no auth
            targets[side.name] = (side.port, file_target, {})
    return targets


def _download_run(ctx: Context, side: Side, target: Target, buffer: memoryview,
                  baseline: float | None) -> dict[str, Any]:
    """One full download; on a proxy side with the RSS sampler running."""
    port, path, headers = target
    pid = side.server.pid
    sampler = RssSampler(pid) if side.is_proxy and baseline is not None else None
    # Cross-check for the sampler: the kernel's exact peak, which no 50 ms gap can miss.
    hwm = sampler is not None and reset_peak_rss(pid)
    before = ctx.cpu_snapshot()
    with sampler or contextlib.nullcontext():
        try:
            got = download(port, path, headers, buffer=buffer)
        except (OSError, http.client.HTTPException) as exc:
            got = Download(0, 0, 0.0, f"{type(exc).__name__}: {exc}".encode())
    after = ctx.cpu_snapshot()
    hwm_mb = rss_mb(pid, "VmHWM") if hwm else None
    base = baseline if sampler is not None else None
    ok = got.status == 200 and got.size == DOWNLOAD_BYTES
    return {
        "ok": ok, "status": got.status, "bytes": got.size, "seconds": round(got.seconds, 4),
        "mb_per_s": got.size / 2**20 / got.seconds if ok else None,
        "error": None if ok else (f"HTTP {got.status}, {got.size} of {DOWNLOAD_BYTES} bytes "
                                  f"{got.head[:300]!r}"),
        "cpu_s": {name: round(after[name] - before[name], 3) for name in before},
        "rss_baseline_mb": round(base, 2) if base is not None else None,
        "rss_peak_mb": round(sampler.peak, 2) if sampler else None,
        "rss_samples": sampler.samples if sampler else None,
        "rss_growth_mb": round(sampler.peak - base, 2) if sampler and base is not None else None,
        "hwm_growth_mb": (round(hwm_mb - base, 2)
                          if hwm_mb is not None and base is not None else None),
    }


def _download_point(side: str, runs: list[dict[str, Any]], errors: list[str]) -> Point:
    good = [r for r in runs if r["ok"]]
    ordered = sorted(int(r["seconds"] * 1e9) for r in good)
    seconds = sum(r["seconds"] for r in runs)
    cpu_s = {name: sum(r["cpu_s"][name] for r in runs) for name in runs[0]["cpu_s"]} \
        if runs else {}
    return Point(
        scenario=NAME, side=side, concurrency=1, requests=len(runs),
        errors=len(errors), seconds=round(seconds, 3),
        rps=len(good) / seconds if seconds else 0.0,
        p50_ms=statistics.median(ordered) / 1e6 if ordered else None, p99_ms=None,
        mean_ms=statistics.fmean(ordered) / 1e6 if ordered else None,
        max_ms=ordered[-1] / 1e6 if ordered else None,
        bytes_in=sum(r["bytes"] for r in runs),
        cpu_ms_per_req={name: used * 1000 / max(len(runs), 1) for name, used in cpu_s.items()},
        cpu_cores={name: used / seconds if seconds else 0.0 for name, used in cpu_s.items()},
        statuses=dict(Counter(str(r["status"]) for r in runs)),
        error_sample=errors[0] if errors else None, kind=NAME,
        mb_per_s=statistics.median(r["mb_per_s"] for r in good) if good else None,
        rss_growth_mb=(statistics.median(r["rss_growth_mb"] for r in good)
                       if good and all(r["rss_growth_mb"] is not None for r in good) else None),
        hwm_growth_mb=(statistics.median(r["hwm_growth_mb"] for r in good)
                       if good and all(r["hwm_growth_mb"] is not None for r in good) else None),
        runs=runs,
    )
