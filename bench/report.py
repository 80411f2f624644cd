"""What the bench prints and saves: progress lines, the tables, the targets and the JSON."""

from __future__ import annotations

import os
import platform
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from download import DOWNLOAD_BYTES, DOWNLOAD_RUNS
from points import Point
from procfs import CLK_TCK, cpu_clock_source
from servers import ROOT
from sides import DIRECT, GATEWAY

# --- targets (for the working-tree gateway) ------------------------------------------------------

ADDED_P50_C1_MS = 1.0
GET_CPU_MS = 0.3
IDLE_RSS_MB = 80.0
READY_S = 1.5
CREATE_CPU_MS = 0.5  # applies to the OpenAI translated create; native create is reported only
DOWNLOAD_MB_S = 500.0  # at least, through the gateway on loopback (MB = MiB here, as for RSS)
DOWNLOAD_RSS_MB = 30.0  # gateway RSS growth during one 200 MiB download, at most


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
    if idle_rss_mb is not None:
        found.append(Check("idle RSS", idle_rss_mb, IDLE_RSS_MB, "MB"))
    if cold_start_s is not None:
        found.append(Check("cold start to /healthz 200 (median)", cold_start_s, READY_S, "s"))
    return found


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
        "up/req: upstream requests the gateway sent per client request (its /metrics);\n"
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
        if p.kind == "requests":
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
        value = f"{c.value:.3f} {c.unit}" if c.value is not None else "n/a"
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
        rows = [p for p in points if p.scenario == scenario and p.side == GATEWAY]
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

