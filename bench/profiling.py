"""Profiling the gateway: py-spy attached for one long measured point, and a text summary."""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loadgen import run_async
from measure import measure_point
from points import Plan
from report import fmt
from scenarios import Scenario
from servers import ROOT, die_with_parent
from sides import GATEWAY, Context

RESULTS_DIR = ROOT / "bench" / "results"


class Profiler:
    """``py-spy record`` attached to the gateway (and its workers) for the measured phase only."""

    def __init__(self, pid: int, out: Path, *, rate: int, native: bool, workdir: Path) -> None:
        self.out = out
        # Not --nonblocking: sampling without pausing the process truncated ~40% of the stacks
        # here (coroutine frames change under the reader); the pause costs a little latency only.
        self._args = [str(_py_spy()), "record", "--pid", str(pid), "--format", "speedscope",
                      "--output", str(out), "--rate", str(rate), "--subprocesses",
                      "--duration", "600"]
        if native:
            self._args.append("--native")
        self._log = workdir / "py-spy.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self._log.open("wb") as log:
            self.proc = subprocess.Popen(self._args, stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True, preexec_fn=die_with_parent)
        time.sleep(0.5)  # py-spy needs a moment to attach before the load starts
        if self.proc.poll() is not None:
            raise RuntimeError(f"py-spy exited: {self._log.read_text(errors='replace')}")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _py_spy() -> Path:
    beside = Path(sys.executable).parent / "py-spy"
    found = shutil.which("py-spy")
    if beside.exists():
        return beside
    if found:
        return Path(found)
    raise RuntimeError("py-spy not found; install it into the venv (pip install py-spy)")


@dataclass
class ProfileRow:
    label: str
    share: float  # % of on-CPU samples
    ms_per_req: float  # share x the measured gateway CPU per request
    caller: str = ""


@dataclass
class ProfileSummary:
    samples: int
    self_fn: list[ProfileRow]
    inclusive: list[ProfileRow]
    lines: list[ProfileRow]
    packages: list[ProfileRow]


def summarize_speedscope(path: Path, top: int, cpu_ms_per_req: float) -> ProfileSummary:
    """Self time per function (with its main caller), per source line and per package, and
    inclusive time per function, from py-spy's speedscope output (idle samples are not in it)."""
    data = json.loads(path.read_text())
    labels = [_frame_label(f) for f in data["shared"]["frames"]]
    lines = [_frame_label(f, line=True) for f in data["shared"]["frames"]]
    packages = [_package(f.get("file") or "") for f in data["shared"]["frames"]]
    own: Counter[str] = Counter()
    callers: dict[str, Counter[str]] = {}
    inclusive: Counter[str] = Counter()
    own_line: Counter[str] = Counter()
    own_package: Counter[str] = Counter()
    total, samples = 0.0, 0
    for profile in data["profiles"]:
        for raw_stack, weight in zip(profile["samples"], profile["weights"], strict=True):
            # py-spy --subprocesses puts a pseudo frame "process N:cmdline" at the root.
            stack = [i for i in raw_stack if labels[i]]
            if not stack:
                continue
            total, samples = total + weight, samples + 1
            leaf = stack[-1]
            own[labels[leaf]] += weight
            own_line[lines[leaf]] += weight
            own_package[packages[leaf]] += weight
            parent = labels[stack[-2]] if len(stack) > 1 else ""
            callers.setdefault(labels[leaf], Counter())[parent] += weight
            for label in {labels[i] for i in stack}:
                inclusive[label] += weight
    total = total or 1.0

    def rows(counter: Counter[str], *, skip_root: bool = False,
             limit: int = top) -> list[ProfileRow]:
        found = []
        for label, weight in counter.most_common():
            share = 100 * weight / total
            if skip_root and share > 99.0:
                continue  # main -> uvicorn -> asyncio.run: on every stack, says nothing
            caller = callers[label].most_common(1)[0][0] if label in callers else ""
            found.append(ProfileRow(label, share, share * cpu_ms_per_req / 100, caller))
            if len(found) == limit:
                break
        return found

    # Twice as many inclusive rows: the first ~15 are the ASGI middleware chain, each ~90%.
    return ProfileSummary(samples, rows(own), rows(inclusive, skip_root=True, limit=2 * top),
                          rows(own_line), rows(own_package))


def _frame_label(frame: dict[str, Any], *, line: bool = False) -> str:
    file = frame.get("file") or ""
    if not file and str(frame.get("name", "")).startswith("process "):
        return ""
    short = file.split("site-packages/")[-1].replace(str(ROOT) + "/", "")
    if "/lib/python3" in short:
        short = short.split("/lib/")[-1]
    where = f"{short}:{frame.get('line')}" if line else short
    return f"{frame.get('name', '?')} ({where})"


def _package(file: str) -> str:
    if "site-packages/" in file:
        return file.split("site-packages/")[-1].split("/")[0]
    if file.startswith(str(ROOT)):
        return file[len(str(ROOT)) + 1:].split("/")[0]
    if "/lib/python" in file:
        return "stdlib:" + file.split("/lib/python")[-1].split("/", 2)[-1].split("/")[0]
    return file or "?"


def format_profile(summary: ProfileSummary) -> str:
    out = [f"{summary.samples} on-CPU samples; ms/req = share x gateway CPU per request"]
    sections = (
        ("self time per function (its own code on CPU)  <- main caller", summary.self_fn, True),
        ("self time per source line", summary.lines, False),
        ("inclusive time (function and its callees)", summary.inclusive, False),
        ("self time per package", summary.packages, False),
    )
    for heading, rows, with_caller in sections:
        out.append(f"\nTop {heading}:")
        for r in rows:
            tail = f"  <- {r.caller}" if with_caller and r.caller else ""
            out.append(f"  {r.share:5.1f}%  {r.ms_per_req:6.3f}  {r.label}{tail}")
    return "\n".join(out) + "\n"


def run_profile(ctx: Context, plan: Plan, scenario: Scenario, args: argparse.Namespace) -> None:
    """One long gateway-side point of ``scenario`` with py-spy attached; writes the speedscope
    file and a text summary under bench/results/."""
    gateway = ctx.side(GATEWAY)
    concurrency, rate, native = args.profile_concurrency, args.profile_rate, args.native
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = RESULTS_DIR / f"profile-{scenario.name}-c{concurrency}-{stamp}.speedscope.json"
    if scenario.build is None:
        raise RuntimeError(f"--profile needs a request scenario, not {scenario.name}")
    make = scenario.build(ctx, gateway)
    profiler = Profiler(gateway.server.pid, out, rate=rate, native=native, workdir=ctx.workdir)
    try:
        point = run_async(measure_point(ctx, scenario, gateway, make,
                                        concurrency, plan, during=profiler.start))
    finally:
        profiler.stop()
    print(f"profiled {point.requests} {scenario.name} requests at c={concurrency}: "
          f"p50 {fmt(point.p50_ms)} ms, gateway CPU {point.cpu_ms_per_req['gateway']:.3f} ms/req "
          "(sampling adds a little)")
    if not out.exists():
        raise RuntimeError(f"py-spy wrote no profile: see {ctx.workdir / 'py-spy.log'}")
    text = format_profile(summarize_speedscope(out, 15, point.cpu_ms_per_req["gateway"]))
    summary_path = out.with_name(out.name.replace(".speedscope.json", ".summary.txt"))
    summary_path.write_text(text)
    print(f"\n{text}profile: {out} (open in https://www.speedscope.app)\nsummary: {summary_path}")
