"""What the bench prints and saves: progress lines, the tables, the targets and the JSON."""

from __future__ import annotations

import math
import os
import platform
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from download import DOWNLOAD_BYTES, DOWNLOAD_RUNS
from points import Point
from poll import FINISHED, RUNNING
from procfs import CLK_TCK, cpu_clock_source
from servers import ROOT
from sides import BASELINE, DIRECT, GATEWAY, NGINX

# --- targets (for the working-tree gateway) ------------------------------------------------------

ADDED_P50_C1_MS = 1.0
GET_CPU_MS = 0.3
IDLE_RSS_MB = 80.0
READY_S = 1.5
CREATE_CPU_MS = 0.5  # applies to the OpenAI translated create; native create is reported only
DOWNLOAD_MB_S = 500.0  # at least, through the gateway on loopback (MB = MiB here, as for RSS)
DOWNLOAD_RSS_MB = 30.0  # gateway RSS growth during one 200 MiB download, at most
POLL_RUNNING_GETS = 12  # upstream GETs at most while 40 pollers poll one running task ...
POLL_RUNNING_S = 10.0  # ... for this long; a shorter polling time (--quick) scales the target
POLL_FINISHED_GETS = 1  # upstream GETs at most for 200 polls of a finished task
POLL_CPU_X_NGINX = 4.0  # gateway CPU per poll / nginx's CPU per request, at most (worst level)
POLL_RPS_X_NGINX = 0.5  # gateway poll throughput / nginx's, at least, at concurrency ...
POLL_RPS_CONCURRENCY = 16


def fmt(value: float | None, width: int = 7, digits: int = 3) -> str:
    return f"{value:{width}.{digits}f}" if value is not None else f"{'-':>{width}}"


def progress(point: Point) -> str:
    line = (f"  {point.scenario:<13} {point.side:<8} c={point.concurrency:<3} "
            f"{point.requests:>6} req  p50 {fmt(point.p50_ms)} ms  {point.rps:8.0f} req/s")
    if point.proxy_cpu is not None:
        line += f"  cpu {point.proxy_cpu:.3f} ms/req"
    if point.errors:
        line += f"  ERRORS {point.errors}: {point.error_sample}"
    return line


@dataclass
class Check:
    name: str
    value: float | None
    limit: float
    unit: str
    enforced: bool = True  # False: reported against a target that applies later
    at_least: bool = False  # the value must reach the limit (throughput), not stay under it

    @property
    def verdict(self) -> str:
        if not self.enforced:
            return "info"
        if self.value is None:
            return "n/a"
        good = self.value >= self.limit if self.at_least else self.value <= self.limit
        return "PASS" if good else "FAIL"


def find(points: Sequence[Point], scenario: str, side: str, concurrency: int) -> Point | None:
    for p in points:
        if (p.scenario, p.side, p.concurrency) == (scenario, side, concurrency):
            return p
    return None


def _worst_gateway_cpu(points: Sequence[Point], scenario: str) -> float | None:
    values = [p.cpu_ms_per_req[GATEWAY] for p in points
              if p.scenario == scenario and p.side == GATEWAY and p.requests]
    return max(values) if values else None


def checks(points: Sequence[Point], idle_rss_mb: float | None,
           cold_start_s: float | None) -> list[Check]:
    found: list[Check] = []
    for name in ("get", "create"):
        point = find(points, name, GATEWAY, 1)
        if point is not None:
            found.append(Check(f"added p50 latency, {name}, c=1", point.added_p50_ms,
                               ADDED_P50_C1_MS, "ms"))
    if any(p.scenario == "get" for p in points):
        found.append(Check("gateway CPU per proxied GET (worst c)",
                           _worst_gateway_cpu(points, "get"), GET_CPU_MS, "ms"))
    if any(p.scenario == "create" for p in points):
        found.append(Check("gateway CPU per native create (worst c; target is for /v1 create)",
                           _worst_gateway_cpu(points, "create"), CREATE_CPU_MS, "ms",
                           enforced=False))
    point = find(points, "openai_create", GATEWAY, 1)
    if point is not None:
        found.append(Check("added p50 latency, openai_create vs native create, c=1",
                           point.added_p50_ms, ADDED_P50_C1_MS, "ms", enforced=False))
    if any(p.scenario == "openai_create" for p in points):
        found.append(Check("gateway CPU per OpenAI create (multipart /v1/videos, worst c)",
                           _worst_gateway_cpu(points, "openai_create"), CREATE_CPU_MS, "ms"))
    point = find(points, "download", GATEWAY, 1)
    if point is not None:
        found.append(Check(f"download throughput via gateway (median of {DOWNLOAD_RUNS})",
                           point.mb_per_s, DOWNLOAD_MB_S, "MB/s", at_least=True))
        found.append(Check(f"gateway RSS growth during download (median of {DOWNLOAD_RUNS})",
                           point.rss_growth_mb, DOWNLOAD_RSS_MB, "MB"))
    found.extend(poll_checks(poll_summary(points).get(GATEWAY, {})))
    if idle_rss_mb is not None:
        found.append(Check("idle RSS", idle_rss_mb, IDLE_RSS_MB, "MB"))
    if cold_start_s is not None:
        found.append(Check("cold start to /healthz 200 (median)", cold_start_s, READY_S, "s"))
    return found


def running_gets_limit(seconds: float) -> int:
    """The running-task target for a polling time of ``seconds``, rounded up (12 for 10 s)."""
    return math.ceil(POLL_RUNNING_GETS * seconds / POLL_RUNNING_S - 1e-9)


def _gets(point: Point) -> float | None:
    """Upstream GETs of a fixed poll measurement; None when no poll succeeded (nothing shown)."""
    return point.upstream_calls if point.requests > point.errors else None


def poll_summary(points: Sequence[Point]) -> dict[str, dict[str, Any]]:
    """The poll scenario's figures per gateway side: the two fixed measurements and the ratios
    to nginx with their targets (for the lines after the table, the checks and the JSON)."""
    out: dict[str, dict[str, Any]] = {}
    for side in (BASELINE, GATEWAY):
        entry: dict[str, Any] = {}
        for p in points:
            if p.side != side or p.kind not in (RUNNING, FINISHED):
                continue
            key = "running" if p.kind == RUNNING else "finished"
            limit = (running_gets_limit(p.planned_s or POLL_RUNNING_S) if p.kind == RUNNING
                     else POLL_FINISHED_GETS)
            entry[key] = {
                "pollers": p.concurrency, "client_polls": p.requests, "errors": p.errors,
                "upstream_gets": _gets(p), "counted_by": p.upstream_source, "target_max": limit,
                "cpu_ms_per_poll": p.cpu_ms_per_req.get(side),
                **({"seconds": p.planned_s} if p.kind == RUNNING else {}),
            }
        rows = [p for p in points if p.scenario == "poll" and p.kind == "requests"
                and p.side == side]
        if rows:
            ratios = [p.cpu_x_nginx for p in rows if p.cpu_x_nginx is not None]
            at = find(points, "poll", side, POLL_RPS_CONCURRENCY)
            nginx = find(points, "poll", NGINX, POLL_RPS_CONCURRENCY)
            entry.update({
                "levels": [p.concurrency for p in rows],
                "upstream_per_poll": [p.upstream_per_request for p in rows],
                "cpu_x_nginx": [p.cpu_x_nginx for p in rows],
                "cpu_x_nginx_worst": max(ratios) if len(ratios) == len(rows) else None,
                "cpu_x_nginx_target_max": POLL_CPU_X_NGINX,
                "rps_concurrency": POLL_RPS_CONCURRENCY,
                "rps": at.rps if at is not None else None,
                "nginx_rps": nginx.rps if nginx is not None else None,
                "rps_x_nginx": at.rps_x_nginx if at is not None else None,
                "rps_x_nginx_target_min": POLL_RPS_X_NGINX,
            })
        if entry:
            out[side] = entry
    return out


def poll_checks(entry: dict[str, Any]) -> list[Check]:
    found = []
    if "running" in entry:
        run = entry["running"]
        found.append(Check(f"poll: upstream GETs, {run['pollers']} pollers x "
                           f"{run['seconds']:.1f} s on 1 running task", run["upstream_gets"],
                           run["target_max"], "GETs"))
    if "finished" in entry:
        done = entry["finished"]
        found.append(Check(f"poll: upstream GETs, {done['client_polls']} polls of a finished task",
                           done["upstream_gets"], done["target_max"], "GETs"))
    if "levels" in entry:
        found.append(Check("poll: gateway CPU per poll ×nginx (worst c)",
                           entry["cpu_x_nginx_worst"], POLL_CPU_X_NGINX, "×"))
        found.append(Check(f"poll: throughput ×nginx at c={POLL_RPS_CONCURRENCY}",
                           entry["rps_x_nginx"], POLL_RPS_X_NGINX, "×", at_least=True))
    return found


def _plural(count: float | None, word: str) -> str:
    if count is None:
        return f"n/a {word}s"
    return f"{count:.0f} {word}" + ("" if round(count) == 1 else "s")


def _counted(measured: dict[str, Any]) -> str:
    notes = []
    if measured["errors"]:
        notes.append(f"{measured['errors']} errors")
    if measured["counted_by"] not in ("simulator log", None):
        notes.append(f"counted by {measured['counted_by']}")
    return f" [{'; '.join(notes)}]" if notes else ""


def poll_lines(summary: dict[str, dict[str, Any]]) -> list[str]:
    """The poll targets in words, one line each, per gateway side (the baseline first)."""
    out = []
    for side, entry in summary.items():
        head = "poll:" if side == GATEWAY else f"poll ({side}):"
        if "running" in entry:
            run = entry["running"]
            scaled = ("" if run["seconds"] == POLL_RUNNING_S else
                      f": {POLL_RUNNING_GETS} per {POLL_RUNNING_S:g} s, scaled")
            out.append(f"{head} {run['pollers']} pollers × {run['seconds']:.1f} s on 1 running "
                       f"task: {run['client_polls']} client polls → "
                       f"{_plural(run['upstream_gets'], 'upstream GET')} "
                       f"(target ≤ {run['target_max']}{scaled}){_counted(run)}")
        if "finished" in entry:
            done = entry["finished"]
            out.append(f"{head} {done['client_polls']} polls of a finished task → "
                       f"{_plural(done['upstream_gets'], 'upstream GET')} "
                       f"(target ≤ {done['target_max']}){_counted(done)}")
        if "levels" in entry:
            levels = "/".join(map(str, entry["levels"]))
            ratios = "/".join(fmt(v, 1, 2) for v in entry["cpu_x_nginx"])
            out.append(f"poll: {side} CPU per poll ×nginx at c={levels}: {ratios}, worst "
                       f"{fmt(entry['cpu_x_nginx_worst'], 1, 2)} "
                       f"(target ≤ {POLL_CPU_X_NGINX:g}×)")
            rps, nginx_rps = entry["rps"], entry["nginx_rps"]
            out.append(f"poll: {side} poll throughput at c={POLL_RPS_CONCURRENCY}: "
                       f"{fmt(rps, 1, 0)} req/s = {fmt(entry['rps_x_nginx'], 1, 2)}× nginx's "
                       f"{fmt(nginx_rps, 1, 0)} req/s (target ≥ {POLL_RPS_X_NGINX:g}×)")
    return out


TABLE_HEADER = (f"{'scenario':<13} {'side':<8} {'conc':>4} {'reqs':>6} {'err':>4} {'req/s':>7} "
                f"{'p50 ms':>7} {'p99 ms':>7} {'+p50 ms':>7} {'+p99 ms':>7} "
                f"{'px cpu':>7} {'sim cpu':>7} {'cli cpu':>7} {'px core':>7} "
                f"{'up/req':>6} {'cpu×nginx':>9} {'req/s×nginx':>11} {'cpu×base':>8}")


def format_table(points: Sequence[Point]) -> str:
    """Request scenarios; throughput scenarios (download) have their own table."""
    lines = [TABLE_HEADER, "-" * len(TABLE_HEADER)]
    previous = None
    for p in points:
        if p.kind != "requests":
            continue
        if previous is not None and (p.scenario, p.concurrency) != previous:
            if p.side == DIRECT and len({q.side for q in points}) > 2:
                lines.append("")  # with more than two sides, a gap between levels reads easier
        previous = (p.scenario, p.concurrency)
        lines.append(
            f"{p.scenario:<13} {p.side:<8} {p.concurrency:>4} {p.requests:>6} {p.errors:>4} "
            f"{p.rps:>7.0f} {fmt(p.p50_ms)} {fmt(p.p99_ms)} {fmt(p.added_p50_ms)} "
            f"{fmt(p.added_p99_ms)} {fmt(p.proxy_cpu)} {fmt(p.cpu_ms_per_req.get('simulator'))} "
            f"{fmt(p.cpu_ms_per_req.get('client'))} {fmt(p.proxy_cores)} "
            f"{fmt(p.upstream_per_request, 6, 2)} {fmt(p.cpu_x_nginx, 9, 2)} "
            f"{fmt(p.rps_x_nginx, 11, 2)} {fmt(p.cpu_x_baseline, 8, 2)}"
        )
    lines.append(
        "cpu columns: CPU ms per request of the process tree; px = this row's proxy (nginx, "
        "baseline or gateway);\npx core: its CPU s per wall s (1.0 = one core busy); "
        "+p50/+p99: this row minus direct at the same concurrency;\n"
        "up/req: upstream requests the gateway sent per client request (its /metrics; poll: "
        "GETs of the polled tasks in the simulator's log);\n"
        "cpu×nginx, req/s×nginx, cpu×base: this row's px cpu or req/s divided by the nginx or "
        "baseline row's at the same concurrency")
    return "\n".join(lines)


DOWNLOAD_HEADER = (f"{'download':<13} {'side':<8} {'runs':>4} {'err':>4} {'MB/s':>7} "
                   f"{'min-max MB/s':>13} {'time s':>7} {'+time s':>7} {'px RSS+MB':>9} "
                   f"{'HWM+MB':>7} {'px cpu/MB':>9} {'sim cpu/MB':>10} {'cli cpu/MB':>10}")


def format_downloads(points: Sequence[Point]) -> str:
    """Throughput scenarios: median MB/s and time, proxy RSS growth, CPU ms per MB moved."""
    lines = [DOWNLOAD_HEADER, "-" * len(DOWNLOAD_HEADER)]
    for p in points:
        if p.kind != "download":
            continue
        speeds = [r["mb_per_s"] for r in p.runs if r["ok"]]
        spread = f"{min(speeds):.0f}-{max(speeds):.0f}" if speeds else "-"
        mb_moved = p.bytes_in / 2**20 or 1.0

        def per_mb(used: float | None, point: Point = p, moved: float = mb_moved) -> str:
            return fmt(used * point.requests / moved if used is not None else None, 9)

        lines.append(
            f"{p.scenario:<13} {p.side:<8} {p.requests:>4} {p.errors:>4} "
            f"{f'{p.mb_per_s:.0f}' if p.mb_per_s is not None else '-':>7} {spread:>13} "
            f"{fmt(p.p50_ms / 1000 if p.p50_ms is not None else None)} "
            f"{fmt(p.added_p50_ms / 1000 if p.added_p50_ms is not None else None)} "
            f"{fmt(p.rss_growth_mb, 9)} {fmt(p.hwm_growth_mb)} "
            f"{per_mb(p.proxy_cpu)} {per_mb(p.cpu_ms_per_req.get('simulator'))} "
            f"{per_mb(p.cpu_ms_per_req.get('client'))}"
        )
    lines.append(f"{DOWNLOAD_BYTES // 2**20} MiB per run, c=1, the sides take turns; MB = MiB; "
                 "MB/s, time: medians; +time s: this side minus direct;\n"
                 "px RSS+MB: median over runs of (peak VmRSS of the proxy, sampled every 50 ms) "
                 "minus the baseline after a warm-up Range request;\n"
                 "HWM+MB: the same from VmHWM, reset before each run (the exact peak, a "
                 "cross-check); cpu/MB: CPU ms per MiB moved")
    return "\n".join(lines)


def format_checks(found: Sequence[Check]) -> str:
    lines = ["Targets (gateway rows):"]
    for c in found:
        digits = 0 if c.unit == "GETs" else 3  # a count
        value = f"{c.value:.{digits}f} {c.unit}" if c.value is not None else "n/a"
        sign = ">=" if c.at_least else "<="
        lines.append(f"  [{c.verdict:^4}] {c.name:<66} {value:>14}   "
                     f"target {sign} {c.limit} {c.unit}")
    return "\n".join(lines)


def format_sides(sides: dict[str, str]) -> str:
    width = max(map(len, sides), default=0)
    return "Sides:\n" + "\n".join(f"  {name:<{width}}  {text}" for name, text in sides.items())


def summary_lines(points: Sequence[Point]) -> list[str]:
    """One line per request scenario: the gateway's ratios over the concurrency levels."""
    out = []
    for scenario in dict.fromkeys(p.scenario for p in points if p.kind == "requests"):
        rows = [p for p in points
                if p.scenario == scenario and p.side == GATEWAY and p.kind == "requests"]
        parts = []
        for label, values in (
            ("cpu ×nginx", [p.cpu_x_nginx for p in rows]),
            ("req/s ×nginx", [p.rps_x_nginx for p in rows]),
            ("cpu ×baseline", [p.cpu_x_baseline for p in rows]),
            ("upstream calls/request", [p.upstream_per_request for p in rows]),
        ):
            if any(v is not None for v in values):
                parts.append(f"{label} " + "/".join(fmt(v, 1, 2) for v in values))
        if parts:
            levels = "/".join(str(p.concurrency) for p in rows)
            out.append(f"  {scenario:<13} gateway at c={levels}: " + ", ".join(parts))
    return out


def machine_info() -> dict[str, Any]:
    return {
        "python": platform.python_version(), "cpus": os.cpu_count(),
        "loadavg": os.getloadavg(), "clk_tck": CLK_TCK, "cpu_clock": cpu_clock_source(),
        "commit": _commit(), "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def _commit() -> str | None:
    try:  # read-only
        out = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, timeout=5, check=False)
    except OSError:
        return None
    return out.stdout.strip() or None

