"""What one measurement yields (a Point), how much load it gets (a Plan), and the comparisons
between the sides measured at the same level (added latency and the ratios)."""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from loadgen import PhaseResult
from sides import BASELINE, DIRECT, NGINX

SEED_TASKS = 50


@dataclass(frozen=True)
class Plan:
    """How much load each point gets. Counts are per concurrency level, before scenario scale."""

    concurrency: tuple[int, ...]
    requests: dict[int, int]
    budget_s: float  # per measured phase; a point stops at whichever of count or time is first
    warmup_frac: float = 0.1
    cold_starts: int = 3
    idle_s: float = 2.0
    poll_s: float = 10.0  # poll scenario: how long the 40 pollers poll one running task

    def count(self, concurrency: int, scale: float) -> int:
        return max(concurrency * 4, int(self.requests[concurrency] * scale))

    def warmup(self, concurrency: int, count: int) -> int:
        # At least two rounds per connection, so every gateway->upstream connection is open too,
        # and at least one GET per seeded task: a task's first GET also writes its body to the
        # store, a one-off cost that does not belong in the steady state.
        return max(concurrency * 2, SEED_TASKS, int(count * self.warmup_frac))


FULL = Plan(concurrency=(1, 16, 64), requests={1: 2000, 16: 5000, 64: 6000}, budget_s=25.0)
QUICK = Plan(concurrency=(1, 16, 64), requests={1: 300, 16: 800, 64: 1200}, budget_s=4.0,
             idle_s=1.0, poll_s=3.0)


@dataclass
class Point:
    scenario: str
    side: str
    concurrency: int
    requests: int
    errors: int
    seconds: float
    rps: float
    p50_ms: float | None
    p99_ms: float | None
    mean_ms: float | None
    max_ms: float | None
    bytes_in: int
    # CPU ms per request of the client, the simulator and each proxy (by side name)
    cpu_ms_per_req: dict[str, float]
    cpu_cores: dict[str, float]  # CPU seconds per wall second: 1.0 = one core saturated
    statuses: dict[str, int]
    error_sample: str | None = None
    # "requests": the main table; "download": the download table; "poll_running" and
    # "poll_finished": the poll scenario's fixed measurements, printed as lines (see poll.py)
    kind: str = "requests"
    added_p50_ms: float | None = None  # this side minus direct at the same level
    added_p99_ms: float | None = None
    # Gateway sides: upstream requests sent during the measured phase (their /metrics), or for
    # the poll scenario the GETs of the polled tasks in the simulator's log; upstream_source
    # says which.
    upstream_calls: float | None = None
    upstream_per_request: float | None = None
    upstream_source: str | None = None
    planned_s: float | None = None  # poll_running: the polling time asked for
    cpu_x_nginx: float | None = None  # proxy CPU per request / nginx's, same level
    rps_x_nginx: float | None = None
    cpu_x_baseline: float | None = None  # gateway only: its CPU per request / the baseline's
    rps_x_baseline: float | None = None
    # Throughput scenarios (download) only: medians over the runs, and each run's numbers.
    mb_per_s: float | None = None
    rss_growth_mb: float | None = None
    hwm_growth_mb: float | None = None  # the same from VmHWM (exact peak), when permitted
    runs: list[dict[str, Any]] = field(default_factory=list)

    @property
    def proxy_cpu(self) -> float | None:
        """CPU ms per request of this row's own proxy (gateway, baseline or nginx)."""
        return None if self.side == DIRECT else self.cpu_ms_per_req.get(self.side)

    @property
    def proxy_cores(self) -> float | None:
        return None if self.side == DIRECT else self.cpu_cores.get(self.side)


def percentile(ordered: Sequence[int], q: float) -> float | None:
    """Nearest-rank percentile in ms of sorted nanosecond samples."""
    if not ordered:
        return None
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))] / 1e6


def phase_point(scenario: str, side: str, concurrency: int, phase: PhaseResult,
                before: dict[str, float], after: dict[str, float]) -> Point:
    done = len(phase.latencies_ns) + phase.errors
    ordered = sorted(phase.latencies_ns)
    used = {name: after[name] - before[name] for name in before}
    cpu = {name: seconds * 1000 / max(done, 1) for name, seconds in used.items()}
    cores = {name: seconds / phase.seconds if phase.seconds else 0.0
             for name, seconds in used.items()}
    return Point(
        scenario=scenario, side=side, concurrency=concurrency, requests=done,
        errors=phase.errors, seconds=round(phase.seconds, 3),
        rps=len(ordered) / phase.seconds if phase.seconds else 0.0,
        p50_ms=percentile(ordered, 0.50), p99_ms=percentile(ordered, 0.99),
        mean_ms=statistics.fmean(ordered) / 1e6 if ordered else None,
        max_ms=ordered[-1] / 1e6 if ordered else None,
        bytes_in=phase.bytes_in, cpu_ms_per_req=cpu, cpu_cores=cores,
        statuses={str(k): v for k, v in sorted(phase.statuses.items())},
        error_sample=phase.error_sample,
    )


def count_upstream(point: Point, *, logged: int | None, before: float | None,
                   after: float | None, from_log: bool) -> None:
    """Fill in the point's upstream calls: the simulator log's count when there is one, else the
    delta of the gateway's /metrics counter (noted when the log was full, see sim_log_gets)."""
    if logged is not None:
        point.upstream_calls, point.upstream_source = logged, "simulator log"
    elif before is not None and after is not None:
        point.upstream_calls = after - before
        point.upstream_source = "/metrics (simulator log full)" if from_log else "/metrics"
    if point.upstream_calls is not None:
        point.upstream_per_request = point.upstream_calls / max(point.requests, 1)


def _ratio(top: float | None, bottom: float | None) -> float | None:
    return top / bottom if top is not None and bottom else None


def relate(level: Iterable[Point]) -> None:
    """Fill in what compares the points of one scenario at one level: every proxy's added
    latency over direct, the gateway sides' ratios to nginx, the gateway's to the baseline."""
    by_side = {p.side: p for p in level}
    direct, nginx, baseline = by_side.get(DIRECT), by_side.get(NGINX), by_side.get(BASELINE)
    for side, point in by_side.items():
        if side == DIRECT:
            continue
        if direct is not None:
            if direct.p50_ms is not None and point.p50_ms is not None:
                point.added_p50_ms = point.p50_ms - direct.p50_ms
            if direct.p99_ms is not None and point.p99_ms is not None:
                point.added_p99_ms = point.p99_ms - direct.p99_ms
        if side == NGINX:
            continue
        ok = point.requests > point.errors
        if nginx is not None and ok and nginx.requests > nginx.errors:
            point.cpu_x_nginx = _ratio(point.proxy_cpu, nginx.proxy_cpu)
            point.rps_x_nginx = _ratio(point.rps, nginx.rps)
        if side != BASELINE and baseline is not None and ok and baseline.requests > baseline.errors:
            point.cpu_x_baseline = _ratio(point.proxy_cpu, baseline.proxy_cpu)
            point.rps_x_baseline = _ratio(point.rps, baseline.rps)
