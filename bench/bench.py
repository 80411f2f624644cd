"""Gateway benchmark: CPU per request, latency and throughput beside nginx, on 127.0.0.1 only.

Run with the project's venv (no activation needed, any working directory):

    .venv/bin/python bench/bench.py [--quick] [--json OUT] [--baseline REF] [--profile]

It starts the built-in Seedance simulator, nginx ``proxy_pass`` in front of it, the working
tree's gateway and, with ``--baseline REF``, the gateway of REF from a temporary git worktree,
all as subprocesses on free loopback ports. A small raw HTTP/1.1 keep-alive client drives every
side in turn at each concurrency level; CPU time and RSS come from /proc. Results are stated as
ratios to nginx and to the baseline, because on shared machines absolute times drift two-fold.
See bench/README.md for how to read the numbers.

The pieces, one concept per module: ``sides`` (what a row is measured against), ``servers``
(subprocesses), ``gateways`` (the simulator and a gateway from a source tree), ``nginx``,
``worktree`` (the baseline's source), ``loadgen`` (the client), ``payloads`` (request bodies),
``scenarios``, ``poll`` and ``download`` (what is sent), ``measure`` (one point, one
scenario), ``points`` (results and ratios), ``report`` (tables, targets) and ``profiling``
(py-spy).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from gateways import (
    GatewayLaunch,
    check_upstream_counter,
    idle_rss,
    measure_cold_start,
    seed_tasks,
    start_simulator,
    working_tree_launch,
    write_config,
)
from measure import run_scenario
from nginx import UPSTREAM_KEEPALIVE, ensure_nginx, loudly, start_nginx, version
from points import FULL, QUICK, SEED_TASKS, Plan, Point
from procfs import rss_mb
from profiling import run_profile
from report import (
    Check,
    checks,
    format_checks,
    format_downloads,
    format_sides,
    format_table,
    machine_info,
    poll_lines,
    poll_summary,
    summary_lines,
)
from scenarios import SCENARIOS
from servers import ROOT
from sides import BASELINE, DIRECT, GATEWAY, NGINX, Context, Side, new_context
from worktree import Worktree, describe_working_tree, worktree


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--quick", action="store_true", help="small counts; whole run < 60 s")
    ap.add_argument("--json", metavar="OUT", type=Path, help="write every number as JSON")
    ap.add_argument("--scenario", action="append", choices=sorted(SCENARIOS),
                    help="run only these scenarios (repeatable; default all)")
    ap.add_argument("--concurrency", type=lambda s: tuple(int(c) for c in s.split(",")),
                    help="comma-separated levels (default 1,16,64)")
    ap.add_argument("--workers", type=int, default=1,
                    help="gateway worker processes (and nginx worker_processes)")
    ap.add_argument("--baseline", metavar="REF",
                    help="also run the gateway of this git ref (HEAD, origin/main, a commit) "
                    "from a temporary worktree, as the 'baseline' side")
    ap.add_argument("--skip-cold-start", action="store_true")
    ap.add_argument("--profile", action="store_true",
                    help="instead of the benchmark: profile GET (or the first --scenario) "
                    "through the gateway with py-spy")
    ap.add_argument("--profile-concurrency", type=int, default=16)
    ap.add_argument("--profile-rate", type=int, default=200, help="py-spy samples per second")
    ap.add_argument("--native", action="store_true", help="py-spy --native (C frames too)")
    ap.add_argument("--fail-on-target", action="store_true",
                    help="exit 1 when an enforced target fails")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (logs, db, config)")
    args = ap.parse_args(argv)
    if args.profile and args.scenario and SCENARIOS[args.scenario[0]].build is None:
        ap.error(f"--profile profiles request scenarios; {args.scenario[0]!r} is not one")
    if args.profile and args.baseline:
        ap.error("--profile profiles the working tree's gateway only; drop --baseline")
    return args


def make_plan(args: argparse.Namespace) -> Plan:
    plan = QUICK if args.quick else FULL
    if args.concurrency:
        counts = {c: plan.requests.get(c, max(plan.requests.values())) for c in args.concurrency}
        plan = dataclasses.replace(plan, concurrency=args.concurrency, requests=counts)
    if args.profile:
        # One long point: enough samples for a stable profile, still bounded by time.
        c = args.profile_concurrency
        plan = dataclasses.replace(plan, concurrency=(c,),
                                   requests={c: 20000 if not args.quick else 4000},
                                   budget_s=30.0 if not args.quick else 8.0)
    return plan


@contextlib.contextmanager
def servers(ctx: Context) -> Iterator[None]:
    """Every subprocess is stopped on the way out: normal end, exception, Ctrl-C or SIGTERM."""
    try:
        yield
    finally:
        for server in ctx.servers():
            server.stop()


def _interrupt(signum: int, frame: object) -> None:
    # SIGTERM/SIGHUP take Ctrl-C's path: the finally blocks stop every server.
    raise KeyboardInterrupt


def start_nginx_side(ctx: Context, workers: int, about: dict[str, str],
                     warnings: list[str]) -> None:
    """The nginx side, or a loud note why this run has none."""
    assert ctx.sim is not None
    binary, note = ensure_nginx()
    if binary is not None:
        try:
            server = start_nginx(binary, ctx.workdir, ctx.env, ctx.sim.port, workers=workers)
        except RuntimeError as exc:
            binary, note = None, f"nginx did not start: {exc}"
        else:
            ctx.add(Side(NGINX, server, ctx.upstream_key))
            about[NGINX] = (f"nginx {version(binary)} proxy_pass, worker_processes {workers}, "
                            f"upstream keepalive {UPSTREAM_KEEPALIVE} (pid {server.pid})")
    if binary is None:
        loudly(note)
        about[NGINX] = "NOT RUN: " + note.splitlines()[-1]
        warnings.append(f"no nginx rows: {note.splitlines()[-1]}")


def gateway_launches(ctx: Context, tree: Worktree | None,
                     about: dict[str, str]) -> list[GatewayLaunch]:
    """The baseline (with --baseline) and the working tree's gateway, each checked to import
    its own `gateway` package."""
    assert ctx.sim is not None
    launches = []
    if tree is not None:
        config = write_config(ctx, BASELINE, ctx.sim.port)
        launches.append(GatewayLaunch.of(ctx, BASELINE, tree.path, config))
        about[BASELINE] = f"{tree.ref} = {tree.commit} {tree.subject!r}"
    launches.append(working_tree_launch(ctx, write_config(ctx, GATEWAY, ctx.sim.port)))
    about[GATEWAY] = f"working tree {describe_working_tree(ROOT)}"
    for launch in launches:
        where = launch.imported_from()
        about[launch.name] += f"; imports {where}"
        print(f"{launch.name}: imports gateway from {where}", flush=True)
    return launches


def start_gateway_sides(ctx: Context, launches: list[GatewayLaunch], workers: int,
                        about: dict[str, str]) -> list[Side]:
    """Start every gateway side and seed its tasks; direct and nginx GET the gateway's."""
    for launch in launches:
        server = launch.spawn(ctx.workdir, workers=workers)
        ctx.add(Side(launch.name, server, ctx.client_key, tree=launch.tree,
                     config=launch.config))
    gateway_sides = [side for side in ctx.ordered() if side.is_gateway]
    for side in gateway_sides:
        ready = side.server.wait_ready("/healthz")
        side.task_ids = seed_tasks(ctx, side, SEED_TASKS)
        about[side.name] += f" (pid {side.server.pid}, ready in {ready:.2f}s)"
    for side in ctx.ordered():
        if not side.is_gateway:  # the simulator knows every task
            side.task_ids = ctx.side(GATEWAY).task_ids
    return gateway_sides


def benchmark(ctx: Context, args: argparse.Namespace, plan: Plan,
              tree: Worktree | None) -> dict[str, Any]:
    about: dict[str, str] = {}
    warnings: list[str] = []
    ctx.sim = start_simulator(ctx)
    ctx.add(Side(DIRECT, ctx.sim, ctx.upstream_key))
    about[DIRECT] = f"the simulator itself, native API (pid {ctx.sim.pid})"
    if not args.profile:
        start_nginx_side(ctx, args.workers, about, warnings)
    launches = gateway_launches(ctx, tree, about)
    cold: dict[str, list[float]] = {}
    if not args.skip_cold_start and not args.profile:
        print(f"cold start x{plan.cold_starts} ...", flush=True)
        cold = measure_cold_start(launches, ctx.workdir, starts=plan.cold_starts,
                                  workers=args.workers)
    gateway_sides = start_gateway_sides(ctx, launches, args.workers, about)
    idle = idle_rss(ctx, gateway_sides, plan.idle_s)
    for side in gateway_sides:
        warning = check_upstream_counter(ctx, side)
        if warning is not None:
            print(f"WARNING: {warning}", file=sys.stderr, flush=True)
            warnings.append(warning)
    print(", ".join(f"{name} idle RSS {mb:.1f} MB" for name, mb in idle.items()), flush=True)
    if args.profile:
        run_profile(ctx, plan, SCENARIOS[(args.scenario or ["get"])[0]], args)
        return {}
    points: list[Point] = []
    for name in args.scenario or list(SCENARIOS):
        points.extend(run_scenario(ctx, SCENARIOS[name], plan))
    return {
        "points": points, "cold": cold, "idle_rss_mb": idle, "sides": about,
        "warnings": warnings,
        "rss_after_load_mb": {s.name: rss_mb(s.server.pid) for s in gateway_sides},
        "peak_rss_mb": {s.name: max(rss_mb(s.server.pid, "VmHWM"), s.hwm_floor_mb)
                        for s in gateway_sides},
        "simulator_rss_mb": rss_mb(ctx.sim.pid),
    }


def report(results: dict[str, Any], args: argparse.Namespace, plan: Plan,
           info: dict[str, Any]) -> list[Check]:
    points: list[Point] = results["points"]
    cold: dict[str, list[float]] = results["cold"]
    cold_median = {name: statistics.median(times) for name, times in cold.items() if times}
    found = checks(points, results["idle_rss_mb"].get(GATEWAY), cold_median.get(GATEWAY))
    print("\n" + format_sides(results["sides"]) + "\n")
    if any(p.kind == "requests" for p in points):
        print(format_table(points) + "\n")
    summary = summary_lines(points)
    if summary:
        print("Gateway ratios (c=" + "/".join(map(str, plan.concurrency)) + "):")
        print("\n".join(summary) + "\n")
    polls = poll_summary(points)
    if polls:
        print("\n".join(poll_lines(polls)) + "\n")
    if any(p.kind == "download" for p in points):
        print(format_downloads(points) + "\n")
    for name, idle in results["idle_rss_mb"].items():
        times = cold.get(name, [])
        cold_text = (f"{cold_median[name]:.3f} s median of {', '.join(f'{c:.3f}' for c in times)}"
                     if times else "skipped")
        print(f"{name + ' RSS:':<13} idle {idle:.1f} MB, after load "
              f"{results['rss_after_load_mb'][name]:.1f} MB, peak "
              f"{results['peak_rss_mb'][name]:.1f} MB; cold start {cold_text}")
    print(f"simulator RSS {results['simulator_rss_mb']:.1f} MB; workers {args.workers}, "
          f"loadavg at start {info['loadavg'][0]:.2f}, at end {os.getloadavg()[0]:.2f} "
          "(a busy box inflates latency, much less CPU/req)\n")
    for warning in results["warnings"]:
        print(f"WARNING: {warning}")
    print(format_checks(found))
    if args.json:
        document = {
            "machine": {**info, "loadavg_end": os.getloadavg()},
            "plan": dataclasses.asdict(plan), "mode": "quick" if args.quick else "full",
            "workers": args.workers, "baseline": args.baseline, "sides": results["sides"],
            "warnings": results["warnings"],
            "points": [dataclasses.asdict(p) for p in points], "poll": polls,
            "cold_start_s": cold, "cold_start_median_s": cold_median,
            **{k: results[k] for k in ("idle_rss_mb", "rss_after_load_mb", "peak_rss_mb",
                                       "simulator_rss_mb")},
            "checks": [{**dataclasses.asdict(c), "verdict": c.verdict} for c in found],
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
        print(f"\nJSON: {args.json}")
    return found


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    plan = make_plan(args)
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGHUP, _interrupt)
    info = machine_info()
    started = time.perf_counter()
    workdir = Path(tempfile.mkdtemp(prefix="sgw-bench-"))
    ctx = new_context(workdir)
    try:
        with contextlib.ExitStack() as stack:
            # Unwinds in reverse: the servers stop before their worktree is removed.
            tree = stack.enter_context(worktree(ROOT, args.baseline)) if args.baseline else None
            stack.enter_context(servers(ctx))
            results = benchmark(ctx, args, plan, tree)
    except KeyboardInterrupt:
        print("\ninterrupted; servers stopped", file=sys.stderr)
        return 130
    finally:
        if args.keep:
            print(f"kept {workdir}" + (" (the baseline worktree is removed all the same)"
                                       if args.baseline else ""))
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    if args.profile:
        return 0
    found = report(results, args, plan, info)
    print(f"\nbenchmark took {time.perf_counter() - started:.0f} s")
    failed = any(c.verdict == "FAIL" for c in found)
    return 1 if failed and args.fail_on_target else 0


if __name__ == "__main__":
    sys.exit(main())
