"""Gateway benchmark: added latency, CPU per request, idle RSS and cold start, on 127.0.0.1 only.

Run with the project's venv (no activation needed, any working directory):

    .venv/bin/python bench/bench.py [--quick] [--json OUT] [--profile]

It starts the built-in Seedance simulator and the gateway as subprocesses on free loopback ports,
drives both with a small raw HTTP/1.1 keep-alive client, and reads CPU time and RSS from /proc.
See bench/README.md for how to read the numbers.

Adding a scenario: write a function ``build(ctx, side) -> RequestMaker`` that returns the bytes of
the i-th request for the "direct" (simulator) or "gateway" side, and add a :class:`Scenario` to
:data:`SCENARIOS`. Everything else (warm-up, percentiles, CPU, table, JSON) is shared. A scenario
that does not fit "many small requests" (the 200 MB download) gives ``run`` instead of ``build``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import dataclasses
import http.client
import json
import math
import os
import platform
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections import Counter
from collections.abc import Callable, Coroutine, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = ROOT / "bench" / "results"
HOST = "127.0.0.1"  # never anything else: this benchmark only talks to loopback
TASKS_PATH = "/api/v3/contents/generations/tasks"
MODEL = "doubao-seedance-2-0-260128"
# Long enough that every seeded task stays "queued" for the whole run, so each GET through the
# gateway is really proxied upstream (a terminal task could be answered from the store later).
SIM_DELAY_S = 3600.0
SEED_TASKS = 50
CLK_TCK = os.sysconf("SC_CLK_TCK")
T = TypeVar("T")

# --- targets -------------------------------------------------------------------------------------

ADDED_P50_C1_MS = 1.0
GET_CPU_MS = 0.3
IDLE_RSS_MB = 80.0
READY_S = 1.5
CREATE_CPU_MS = 0.5  # applies to the OpenAI translated create; native create is reported only
DOWNLOAD_MB_S = 500.0  # at least, through the gateway on loopback (MB = MiB here, as for RSS)
DOWNLOAD_RSS_MB = 30.0  # gateway RSS growth during one 200 MiB download, at most

# --- OpenAI surface ------------------------------------------------------------------------------

OPENAI_PATH = "/v1/videos"
OPENAI_ALIAS = "sora-2"
OPENAI_ALIAS_TARGET = "doubao-seedance-2-0-fast-260128"
# The text parts of `client.videos.create(prompt=..., model="sora-2", seconds="8",
# size="1280x720")`, in the order the SDK sends them; no file part.
OPENAI_FIELDS: tuple[tuple[str, str], ...] = (
    ("prompt", "a red fox running through snow"), ("model", OPENAI_ALIAS), ("seconds", "8"),
    ("size", "1280x720"),
)
# The other headers openai-python 3.54.0 sent with that create, captured once against a local
# socket (Host, Authorization, Content-Type and Content-Length are added by http_request).
SDK_HEADERS: tuple[tuple[str, str], ...] = (
    ("Accept-Encoding", "gzip, deflate"), ("Connection", "keep-alive"),
    ("accept", "application/json"), ("user-agent", "OpenAI/Python 3.54.0"),
    ("x-stainless-lang", "python"), ("x-stainless-package-version", "3.54.0"),
    ("x-stainless-os", "Linux"), ("x-stainless-arch", "x64"), ("x-stainless-runtime", "CPython"),
    ("x-stainless-runtime-version", "3.11.7"), ("x-stainless-async", "false"),
    ("x-stainless-retry-count", "0"), ("x-stainless-read-timeout", "600"),
)

# --- download ------------------------------------------------------------------------------------

DOWNLOAD_BYTES = 200 * 1024 * 1024  # the simulator's video_bytes during the download scenario
DOWNLOAD_RUNS = 3  # per side, alternating direct and gateway; the median is reported
RSS_SAMPLE_S = 0.05
DOWNLOAD_TIMEOUT_S = 60.0  # per socket operation: a stalled download fails instead of hanging


@dataclass(frozen=True)
class Plan:
    """How much load each point gets. Counts are per concurrency level, before scenario scale."""

    concurrency: tuple[int, ...]
    requests: dict[int, int]
    budget_s: float  # per measured phase; a point stops at whichever of count or time is first
    warmup_frac: float = 0.1
    cold_starts: int = 3
    idle_s: float = 2.0

    def count(self, concurrency: int, scale: float) -> int:
        return max(concurrency * 4, int(self.requests[concurrency] * scale))

    def warmup(self, concurrency: int, count: int) -> int:
        # At least two rounds per connection, so every gateway->upstream connection is open too,
        # and at least one GET per seeded task: a task's first GET also writes its body to the
        # store, a one-off cost that does not belong in the steady state.
        return max(concurrency * 2, SEED_TASKS, int(count * self.warmup_frac))


FULL = Plan(concurrency=(1, 16, 64), requests={1: 2000, 16: 5000, 64: 6000}, budget_s=25.0)
QUICK = Plan(concurrency=(1, 16, 64), requests={1: 300, 16: 800, 64: 1200}, budget_s=4.0,
             idle_s=1.0)

# --- /proc ---------------------------------------------------------------------------------------


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (uvicorn --workers N forks its workers as children)."""
    found: list[int] = []
    stack = [pid]
    while stack:
        current = stack.pop()
        found.append(current)
        for children in Path(f"/proc/{current}/task").glob("*/children"):
            with contextlib.suppress(OSError):
                stack.extend(int(c) for c in children.read_text().split())
    return found


def cpu_seconds(pid: int) -> float:
    """utime + stime (fields 14 and 15 of /proc/<pid>/stat) summed over the process tree."""
    total = 0
    for member in process_tree(pid):
        try:
            stat = Path(f"/proc/{member}/stat").read_text()
        except OSError:
            continue  # exited between listing and reading
        # The command name (field 2) may contain spaces; fields after it are split safely.
        fields = stat[stat.rindex(")") + 2:].split()
        total += int(fields[11]) + int(fields[12])  # fields 14, 15 counted from 1 incl. pid, comm
    return total / CLK_TCK


def rss_mb(pid: int, field_name: str = "VmRSS") -> float:
    """VmRSS (or VmHWM) from /proc/<pid>/status in MiB, summed over the process tree."""
    total_kb = 0
    for member in process_tree(pid):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{member}/status").read_text().splitlines():
                if line.startswith(field_name + ":"):
                    total_kb += int(line.split()[1])
    return total_kb / 1024


def reset_peak_rss(pid: int) -> bool:
    """Set VmHWM back to the current VmRSS (``echo 5 > /proc/<pid>/clear_refs``, Linux >= 4.0)
    for the process tree; False when not permitted."""
    try:
        for member in process_tree(pid):
            Path(f"/proc/{member}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


# --- subprocesses --------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _die_with_parent() -> None:
    """Runs in the child before exec: SIGKILL it if the benchmark dies without cleaning up."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class Server:
    """One ``python -m gateway …`` subprocess in its own process group, output to a log file."""

    def __init__(self, name: str, args: Sequence[str], *, port: int, env: dict[str, str],
                 workdir: Path) -> None:
        self.name = name
        self.port = port
        self.log_path = workdir / f"{name}.log"
        self._log = self.log_path.open("wb")
        self.started_at = time.perf_counter()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gateway", *args],
            stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=env, cwd=ROOT,
            # Own group: a terminal Ctrl-C reaches only us, and we stop workers with the group.
            start_new_session=True, preexec_fn=_die_with_parent,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait_ready(self, path: str, timeout: float = 30.0) -> float:
        """Seconds from spawn until ``path`` answers 200 (polled every 5 ms)."""
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited early:\n{self.tail()}")
            if _answers_200(self.port, path):
                return time.perf_counter() - self.started_at
            time.sleep(0.005)
        raise RuntimeError(f"{self.name} not ready after {timeout:.0f}s:\n{self.tail()}")

    def tail(self, lines: int = 30) -> str:
        self._log.flush()
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self._signal_group(signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._signal_group(signal.SIGKILL)
                self.proc.wait(timeout=5)
        self._log.close()

    def _signal_group(self, sig: signal.Signals) -> None:
        # The group id is our own child's pid (start_new_session), so only our processes get it.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, sig)


def _answers_200(port: int, path: str) -> bool:
    try:
        status, _ = http_call(port, "GET", path, timeout=0.5)
    except OSError:
        return False
    return status == 200


def http_call(port: int, method: str, path: str, *, headers: dict[str, str] | None = None,
              body: bytes | None = None, timeout: float = 10.0) -> tuple[int, bytes]:
    """A one-off blocking request for setup work (not used for measurement)."""
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


@dataclass
class Context:
    """What scenarios need to build requests: ports, keys, and the tasks seeded beforehand."""

    workdir: Path
    env: dict[str, str]
    upstream_key: str
    client_key: str
    sim: Server | None = None
    gateway: Server | None = None
    task_ids: list[str] = field(default_factory=list)
    # The gateway's VmHWM before the download scenario first reset it (see reset_peak_rss).
    gateway_hwm_floor_mb: float = 0.0

    def side(self, name: str) -> tuple[int, str]:
        """(port, bearer token) for the "direct" (simulator) or "gateway" side."""
        if name == "direct":
            assert self.sim is not None
            return self.sim.port, self.upstream_key
        assert self.gateway is not None
        return self.gateway.port, self.client_key


def new_context(workdir: Path) -> Context:
    upstream_key = "bench-upstream-" + secrets.token_urlsafe(16)
    client_key = "bench-client-" + secrets.token_urlsafe(16)
    # The config names env variables only; the secrets travel in the subprocess environment.
    env = {**os.environ, "BENCH_UPSTREAM_KEY": upstream_key, "BENCH_CLIENT_KEY": client_key,
           "PYTHONUNBUFFERED": "1"}
    return Context(workdir=workdir, env=env, upstream_key=upstream_key, client_key=client_key)


def write_config(ctx: Context, sim_port: int) -> Path:
    path = ctx.workdir / "gateway.yaml"
    path.write_text(
        f"server: {{host: {HOST}, port: 8080}}\n"
        "upstreams:\n"
        "  - name: ark\n"
        "    preset: volcengine\n"
        f"    base_url: http://{HOST}:{sim_port}/api/v3\n"
        '    keys: [{name: main, secret: "${BENCH_UPSTREAM_KEY}"}]\n'
        "client_keys:\n"
        '  - {name: bench, secret: "${BENCH_CLIENT_KEY}"}\n'
        f"models: {{aliases: {{{OPENAI_ALIAS}: {OPENAI_ALIAS_TARGET}}}}}\n"
        f'store: {{url: "sqlite:///{ctx.workdir}/bench.db"}}\n'
    )
    return path


def start_simulator(ctx: Context) -> Server:
    port = free_port()
    args = ["simulate", "--host", HOST, "--port", str(port), "--upstream-key", ctx.upstream_key,
            "--delay", str(SIM_DELAY_S)]
    sim = Server("simulator", args, port=port, env=ctx.env, workdir=ctx.workdir)
    sim.wait_ready("/_sim/faults")
    return sim


def spawn_gateway(ctx: Context, config: Path, *, workers: int, name: str = "gateway") -> Server:
    port = free_port()
    args = ["serve", "--config", str(config), "--host", HOST,
            "--port", str(port), "--workers", str(workers)]
    return Server(name, args, port=port, env=ctx.env, workdir=ctx.workdir)


# --- load generator ------------------------------------------------------------------------------

RequestMaker = Callable[[int], bytes]  # i-th request -> complete HTTP/1.1 request bytes
_SMALL_BODY = 64 * 1024  # bodies up to this are kept (for error samples); bigger ones streamed


def http_request(method: str, port: int, path: str, token: str, *,
                 body: bytes | None = None, content_type: str = "application/json",
                 headers: Sequence[tuple[str, str]] = ()) -> bytes:
    """Hand-written request bytes, built once per distinct request and reused."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {HOST}:{port}", f"Authorization: Bearer {token}"]
    lines += [f"{name}: {value}" for name, value in headers]
    if body is not None:
        lines += [f"Content-Type: {content_type}", f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b"")


@dataclass
class Response:
    status: int
    size: int
    body: bytes
    keep_alive: bool


async def read_response(reader: asyncio.StreamReader) -> Response:
    """Status line + headers, then a Content-Length or chunked body (big bodies are discarded)."""
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    lower = head.lower()
    keep_alive = b"\r\nconnection: close" not in lower
    at = lower.find(b"\r\ncontent-length:")
    if at >= 0:
        length = int(lower[at + 17:lower.index(b"\r\n", at + 2)])
        if length <= _SMALL_BODY:
            return Response(status, length, await reader.readexactly(length), keep_alive)
        await _discard(reader, length)
        return Response(status, length, b"", keep_alive)
    if b"\r\ntransfer-encoding: chunked" in lower:
        return Response(status, await _read_chunked(reader), b"", keep_alive)
    if status in (204, 304) or 100 <= status < 200:
        return Response(status, 0, b"", keep_alive)
    body = await reader.read()  # no framing: the body runs to EOF
    return Response(status, len(body), body[:_SMALL_BODY], False)


async def _discard(reader: asyncio.StreamReader, size: int) -> None:
    while size > 0:
        chunk = await reader.read(min(size, 1 << 20))
        if not chunk:
            raise asyncio.IncompleteReadError(b"", size)
        size -= len(chunk)


async def _read_chunked(reader: asyncio.StreamReader) -> int:
    total = 0
    while True:
        size = int((await reader.readline()).split(b";", 1)[0].strip(), 16)
        if size == 0:
            while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                pass  # trailers
            return total
        await _discard(reader, size + 2)  # the chunk and its CRLF
        total += size


@dataclass
class PhaseResult:
    latencies_ns: list[int]
    errors: int
    seconds: float
    bytes_in: int
    statuses: Counter[int]
    error_sample: str | None


class _Budget:
    """Hands out request numbers until the count or the deadline runs out (single event loop)."""

    def __init__(self, count: int, seconds: float, first: int) -> None:
        self.next = first
        self.end = first + count
        self.deadline = time.perf_counter() + seconds

    def take(self) -> int | None:
        if self.next >= self.end or time.perf_counter() > self.deadline:
            return None
        self.next += 1
        return self.next - 1


class Connections:
    """One keep-alive connection per concurrent worker; a broken one is reopened."""

    def __init__(self, port: int, size: int) -> None:
        self.port = port
        self.size = size
        self.pairs: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self._issued = 0  # request numbers continue across phases, so requests keep rotating

    async def open(self) -> None:
        self.pairs = list(await asyncio.gather(*(self._connect() for _ in range(self.size))))

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection(HOST, self.port, limit=1 << 20)

    async def close(self) -> None:
        for _, writer in self.pairs:
            writer.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(
                asyncio.gather(*(w.wait_closed() for _, w in self.pairs),
                               return_exceptions=True), 5)

    async def phase(self, make: RequestMaker, count: int, seconds: float,
                    expect: int) -> PhaseResult:
        budget = _Budget(count, seconds, self._issued)
        result = PhaseResult([], 0, 0.0, 0, Counter(), None)
        started = time.perf_counter()
        workers = [asyncio.ensure_future(self._worker(slot, make, budget, expect, result))
                   for slot in range(self.size)]
        try:
            # Hard stop well past the budget: a hung server must not hang the benchmark.
            _, pending = await asyncio.wait(workers, timeout=seconds + 30)
        finally:
            # Also on Ctrl-C: reap every worker so none is left with an unretrieved exception.
            for worker in workers:
                worker.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
        result.seconds = time.perf_counter() - started
        failures = [w.exception() for w in workers if not w.cancelled() and w.exception()]
        if pending or failures:
            result.errors += len(pending) + len(failures)
            result.error_sample = result.error_sample or (
                repr(failures[0]) if failures else "phase timed out")
        self._issued = budget.next
        return result

    async def _worker(self, slot: int, make: RequestMaker, budget: _Budget, expect: int,
                      result: PhaseResult) -> None:
        reader, writer = self.pairs[slot]
        clock = time.perf_counter_ns
        while (index := budget.take()) is not None:
            data = make(index)
            begun = clock()
            try:
                writer.write(data)
                response = await read_response(reader)
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError,
                    ValueError) as exc:
                result.errors += 1
                result.error_sample = result.error_sample or f"{type(exc).__name__}: {exc}"
                reader, writer = await self._reopen(slot)
                continue
            elapsed = clock() - begun
            result.statuses[response.status] += 1
            result.bytes_in += response.size
            if response.status == expect:
                result.latencies_ns.append(elapsed)
            else:
                result.errors += 1
                result.error_sample = result.error_sample or (
                    f"HTTP {response.status}: {response.body[:300]!r}")
            if not response.keep_alive:
                reader, writer = await self._reopen(slot)

    async def _reopen(self, slot: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        self.pairs[slot][1].close()
        self.pairs[slot] = await self._connect()
        return self.pairs[slot]


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """uvloop when available (the gateway uses it too, and it keeps the client cheap)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro)


# --- scenarios -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    """One kind of request, measured against each side at each concurrency.

    ``build(ctx, side)`` runs once per side before any load and returns the request maker; it may
    do setup of its own (seed tasks, upload a file). ``scale`` shrinks or grows the plan's request
    counts. A scenario that is not "many small requests" gives ``run(ctx, scenario, plan)``
    instead of ``build``: it measures on its own and returns its points (see :func:`run_download`).
    """

    name: str
    title: str
    build: Callable[[Context, str], RequestMaker] | None
    sides: tuple[str, ...] = ("direct", "gateway")
    expect: int = 200
    scale: float = 1.0
    run: Callable[[Context, Scenario, Plan], list[Point]] | None = None


def build_get(ctx: Context, side: str) -> RequestMaker:
    """GET over the ~50 seeded tasks, so the gateway's store lookups are not all one row."""
    port, token = ctx.side(side)
    requests = [http_request("GET", port, f"{TASKS_PATH}/{task_id}", token)
                for task_id in ctx.task_ids]
    return lambda i: requests[i % len(requests)]


CREATE_BODY = json.dumps({
    "model": MODEL, "content": [{"type": "text", "text": "a red fox running through snow"}],
}, separators=(",", ":")).encode()


def build_create(ctx: Context, side: str) -> RequestMaker:
    port, token = ctx.side(side)
    request = http_request("POST", port, TASKS_PATH, token, body=CREATE_BODY)
    return lambda i: request


def multipart_body(fields: Sequence[tuple[str, str]], boundary: str) -> tuple[bytes, str]:
    """Text parts exactly as openai-python (httpx) frames them: a Content-Disposition header
    only, CRLF line ends, the closing delimiter followed by CRLF. Returns (body, content type)."""
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
             for name, value in fields]
    body = ("".join(parts) + f"--{boundary}--\r\n").encode()
    return body, f"multipart/form-data; boundary={boundary}"


OPENAI_BODY, OPENAI_CONTENT_TYPE = multipart_body(OPENAI_FIELDS, secrets.token_hex(16))


def openai_create_request(ctx: Context) -> bytes:
    port, token = ctx.side("gateway")
    return http_request("POST", port, OPENAI_PATH, token, body=OPENAI_BODY,
                        content_type=OPENAI_CONTENT_TYPE, headers=SDK_HEADERS)


def openai_create_once(ctx: Context) -> dict[str, Any]:
    """One SDK-shaped create through the gateway (setup work); returns the OpenAI Video."""
    assert ctx.gateway is not None
    headers = {**dict(SDK_HEADERS), "Authorization": f"Bearer {ctx.client_key}",
               "Content-Type": OPENAI_CONTENT_TYPE}
    status, body = http_call(ctx.gateway.port, "POST", OPENAI_PATH, headers=headers,
                             body=OPENAI_BODY)
    if status != 200:
        raise RuntimeError(f"OpenAI create failed: HTTP {status}: {body[:300]!r}")
    video: dict[str, Any] = json.loads(body)
    return video


def translated_create_body(ctx: Context) -> bytes:
    """The native body the gateway sends upstream for the SDK's create, read back from the
    simulator's request log, so the direct baseline creates exactly the same task."""
    assert ctx.sim is not None
    http_call(ctx.sim.port, "DELETE", "/_sim/requests")
    openai_create_once(ctx)
    _, log = http_call(ctx.sim.port, "GET", "/_sim/requests")
    for seen in json.loads(log):
        if seen["method"] == "POST" and seen["path"].rstrip("/").endswith(TASKS_PATH):
            body: str = seen["body"]
            return body.encode()
    raise RuntimeError("the gateway's upstream create is not in the simulator's request log")


def build_openai_create(ctx: Context, side: str) -> RequestMaker:
    """Gateway: the SDK's multipart create on /v1/videos. Direct: the simulator has no /v1, so
    the baseline is the native create the gateway translates it into."""
    if side == "gateway":
        request = openai_create_request(ctx)
    else:
        port, token = ctx.side(side)
        request = http_request("POST", port, TASKS_PATH, token, body=translated_create_body(ctx))
    return lambda i: request


SCENARIOS: dict[str, Scenario] = {
    s.name: s for s in (
        Scenario("get", "GET task (native)", build_get),
        Scenario("create", "create task (native POST)", build_create),
        Scenario("openai_create", "create video (OpenAI multipart POST /v1/videos)",
                 build_openai_create),
        Scenario("download", "200 MiB GET /v1/videos/{id}/content vs the signed URL", None,
                 run=lambda ctx, scenario, plan: run_download(ctx, scenario, plan)),
    )
}


def seed_tasks(ctx: Context, count: int) -> list[str]:
    """Tasks created through the gateway by the bench key, so the gateway will proxy their GETs."""
    assert ctx.gateway is not None
    headers = {"Authorization": f"Bearer {ctx.client_key}", "Content-Type": "application/json"}
    ids = []
    for _ in range(count):
        status, body = http_call(ctx.gateway.port, "POST", TASKS_PATH, headers=headers,
                                 body=CREATE_BODY)
        if status != 200:
            raise RuntimeError(f"seeding a task failed: HTTP {status}: {body[:300]!r}")
        ids.append(str(json.loads(body)["id"]))
    return ids


# --- measurement ---------------------------------------------------------------------------------


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
    cpu_ms_per_req: dict[str, float]  # gateway / simulator / client
    cpu_cores: dict[str, float]  # CPU seconds per wall second: 1.0 = one core saturated
    statuses: dict[str, int]
    error_sample: str | None = None
    added_p50_ms: float | None = None
    added_p99_ms: float | None = None
    # Throughput scenarios (download) only: medians over the runs, and each run's numbers.
    mb_per_s: float | None = None
    rss_growth_mb: float | None = None
    hwm_growth_mb: float | None = None  # the same from VmHWM (exact peak), when permitted
    runs: list[dict[str, Any]] = field(default_factory=list)


def percentile(ordered: Sequence[int], q: float) -> float | None:
    """Nearest-rank percentile in ms of sorted nanosecond samples."""
    if not ordered:
        return None
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))] / 1e6


def cpu_snapshot(ctx: Context) -> dict[str, float]:
    snap = {"client": time.process_time()}
    for name, server in (("gateway", ctx.gateway), ("simulator", ctx.sim)):
        if server is not None:
            snap[name] = cpu_seconds(server.pid)
    return snap


async def measure_point(ctx: Context, scenario: Scenario, side: str, make: RequestMaker,
                        concurrency: int, plan: Plan, *,
                        during: Callable[[], None] | None = None) -> Point:
    """Warm up on the same connections, then measure; CPU is read around the measured phase only.

    ``during`` runs right before the measured phase (the profiler attaches there).
    """
    port, _ = ctx.side(side)
    count = plan.count(concurrency, scenario.scale)
    conns = Connections(port, concurrency)
    await conns.open()
    try:
        await conns.phase(make, plan.warmup(concurrency, count), plan.budget_s, scenario.expect)
        if during is not None:
            during()
        before = cpu_snapshot(ctx)
        phase = await conns.phase(make, count, plan.budget_s, scenario.expect)
        after = cpu_snapshot(ctx)
    finally:
        await conns.close()
    return _point(scenario, side, concurrency, phase, before, after)


def _point(scenario: Scenario, side: str, concurrency: int, phase: PhaseResult,
           before: dict[str, float], after: dict[str, float]) -> Point:
    done = len(phase.latencies_ns) + phase.errors
    ordered = sorted(phase.latencies_ns)
    used = {name: after[name] - before[name] for name in before}
    cpu = {name: seconds * 1000 / max(done, 1) for name, seconds in used.items()}
    cores = {name: seconds / phase.seconds if phase.seconds else 0.0
             for name, seconds in used.items()}
    return Point(
        scenario=scenario.name, side=side, concurrency=concurrency, requests=done,
        errors=phase.errors, seconds=round(phase.seconds, 3),
        rps=len(ordered) / phase.seconds if phase.seconds else 0.0,
        p50_ms=percentile(ordered, 0.50), p99_ms=percentile(ordered, 0.99),
        mean_ms=statistics.fmean(ordered) / 1e6 if ordered else None,
        max_ms=ordered[-1] / 1e6 if ordered else None,
        bytes_in=phase.bytes_in, cpu_ms_per_req=cpu, cpu_cores=cores,
        statuses={str(k): v for k, v in sorted(phase.statuses.items())},
        error_sample=phase.error_sample,
    )


def run_scenario(ctx: Context, scenario: Scenario, plan: Plan) -> list[Point]:
    if scenario.run is not None:
        return scenario.run(ctx, scenario, plan)
    assert scenario.build is not None
    makers = {side: scenario.build(ctx, side) for side in scenario.sides}
    points: list[Point] = []
    for concurrency in plan.concurrency:
        # Direct and gateway back to back at each level: both see the same background noise.
        by_side = {}
        for side in scenario.sides:
            point = run_async(measure_point(ctx, scenario, side, makers[side], concurrency, plan))
            by_side[side] = point
            points.append(point)
            print(f"  {scenario.name:<13} {side:<8} c={concurrency:<3} "
                  f"{point.requests:>6} req  p50 {_ms(point.p50_ms)} ms  {point.rps:8.0f} req/s"
                  + (f"  ERRORS {point.errors}: {point.error_sample}" if point.errors else ""),
                  flush=True)
        _add_latency(by_side)
    return points


def _add_latency(by_side: dict[str, Point]) -> None:
    direct, gateway = by_side.get("direct"), by_side.get("gateway")
    if direct is None or gateway is None:
        return
    if direct.p50_ms is not None and gateway.p50_ms is not None:
        gateway.added_p50_ms = gateway.p50_ms - direct.p50_ms
    if direct.p99_ms is not None and gateway.p99_ms is not None:
        gateway.added_p99_ms = gateway.p99_ms - direct.p99_ms


# --- download (throughput and memory, not requests per second) -----------------------------------


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


def finished_video(ctx: Context) -> str:
    """An OpenAI video that has already succeeded: the simulator fixes a task's delay when it is
    created, so delay 0 for this one create only (the seeded tasks stay queued)."""
    delay = sim_faults(ctx)["delay"]
    sim_faults(ctx, delay=0)
    try:
        video_id = str(openai_create_once(ctx)["id"])
    finally:
        sim_faults(ctx, delay=delay)
    return video_id


def signed_video_url(ctx: Context, task_id: str) -> str:
    """``content.video_url`` from the simulator's native GET of the task: the direct side."""
    port, token = ctx.side("direct")
    status, body = http_call(port, "GET", f"{TASKS_PATH}/{task_id}",
                             headers={"Authorization": f"Bearer {token}"})
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


def run_download(ctx: Context, scenario: Scenario, plan: Plan) -> list[Point]:
    """200 MiB through ``GET /v1/videos/{id}/content`` vs straight from the signed URL.

    Runs alternate direct and gateway (DOWNLOAD_RUNS each, c=1). Each gateway run samples the
    gateway's VmRSS every 50 ms; growth is the peak minus one baseline read after a warm-up
    Range request, so memory kept from an earlier run still counts. The simulator serves
    ``video_bytes`` of the moment, so the knob is set for this scenario and put back after.
    """
    assert ctx.sim is not None and ctx.gateway is not None
    runs: dict[str, list[dict[str, Any]]] = {side: [] for side in scenario.sides}
    errors: dict[str, list[str]] = {side: [] for side in scenario.sides}
    before_bytes = sim_faults(ctx)["video_bytes"]
    try:
        targets = _download_targets(ctx)
        sim_faults(ctx, video_bytes=DOWNLOAD_BYTES)
        buffer = memoryview(bytearray(1 << 20))
        for side in scenario.sides:  # warm-up: a small Range request per side
            port, target, headers = targets[side]
            warm = download(port, target, {**headers, "Range": "bytes=0-65535"}, buffer=buffer)
            if warm.status != 206 or warm.size != 65536:
                raise RuntimeError(f"download warm-up ({side}): HTTP {warm.status}, "
                                   f"{warm.size} bytes {warm.head[:300]!r}")
        time.sleep(0.2)
        baseline = rss_mb(ctx.gateway.pid)
        ctx.gateway_hwm_floor_mb = max(ctx.gateway_hwm_floor_mb,
                                       rss_mb(ctx.gateway.pid, "VmHWM"))
        for n in range(DOWNLOAD_RUNS):
            for side in scenario.sides:
                run = _download_run(ctx, side, targets[side], buffer, baseline)
                runs[side].append(run)
                if not run["ok"]:
                    errors[side].append(run["error"])
                mb_s = f"{run['mb_per_s']:7.0f} MB/s" if run["ok"] else f"ERROR {run['error']}"
                growth = (f"  gateway RSS +{run['rss_growth_mb']:.1f} MB"
                          if run["rss_growth_mb"] is not None else "")
                print(f"  {scenario.name:<13} {side:<8} run {n + 1}  {run['seconds']:6.3f} s  "
                      f"{mb_s}{growth}", flush=True)
    except (RuntimeError, OSError, http.client.HTTPException) as exc:
        # A broken setup fails this scenario only; the rest of the run is still reported.
        print(f"  {scenario.name:<13} ERROR {type(exc).__name__}: {exc}", flush=True)
        for side in scenario.sides:
            errors[side].append(f"{type(exc).__name__}: {exc}")
    finally:
        sim_faults(ctx, video_bytes=before_bytes)
    points = [_download_point(scenario, side, runs[side], errors[side])
              for side in scenario.sides]
    _add_latency({p.side: p for p in points})
    return points


def _download_targets(ctx: Context) -> dict[str, tuple[int, str, dict[str, str]]]:
    """(port, request target, headers) per side, for one freshly finished video."""
    assert ctx.sim is not None and ctx.gateway is not None
    video_id = finished_video(ctx)
    signed = urllib.parse.urlsplit(signed_video_url(ctx, video_id))
    return {
        "direct": (ctx.sim.port, f"{signed.path}?{signed.query}", {}),
        "gateway": (ctx.gateway.port, f"{OPENAI_PATH}/{video_id}/content",
                    {"Authorization": f"Bearer {ctx.client_key}"}),
    }


def _download_run(ctx: Context, side: str, target: tuple[int, str, dict[str, str]],
                  buffer: memoryview, baseline: float) -> dict[str, Any]:
    """One full download; on the gateway side with the RSS sampler running."""
    assert ctx.gateway is not None
    port, path, headers = target
    sampler = RssSampler(ctx.gateway.pid) if side == "gateway" else None
    # Cross-check for the sampler: the kernel's exact peak, which no 50 ms gap can miss.
    hwm = sampler is not None and reset_peak_rss(ctx.gateway.pid)
    before = cpu_snapshot(ctx)
    with sampler or contextlib.nullcontext():
        try:
            got = download(port, path, headers, buffer=buffer)
        except (OSError, http.client.HTTPException) as exc:
            got = Download(0, 0, 0.0, f"{type(exc).__name__}: {exc}".encode())
    after = cpu_snapshot(ctx)
    hwm_mb = rss_mb(ctx.gateway.pid, "VmHWM") if hwm else None
    ok = got.status == 200 and got.size == DOWNLOAD_BYTES
    return {
        "ok": ok, "status": got.status, "bytes": got.size, "seconds": round(got.seconds, 4),
        "mb_per_s": got.size / 2**20 / got.seconds if ok else None,
        "error": None if ok else (f"HTTP {got.status}, {got.size} of {DOWNLOAD_BYTES} bytes "
                                  f"{got.head[:300]!r}"),
        "cpu_s": {name: round(after[name] - before[name], 3) for name in before},
        "rss_baseline_mb": round(baseline, 2) if sampler else None,
        "rss_peak_mb": round(sampler.peak, 2) if sampler else None,
        "rss_samples": sampler.samples if sampler else None,
        "rss_growth_mb": round(sampler.peak - baseline, 2) if sampler else None,
        "hwm_growth_mb": round(hwm_mb - baseline, 2) if hwm_mb is not None else None,
    }


def _download_point(scenario: Scenario, side: str, runs: list[dict[str, Any]],
                    errors: list[str]) -> Point:
    good = [r for r in runs if r["ok"]]
    ordered = sorted(int(r["seconds"] * 1e9) for r in good)
    seconds = sum(r["seconds"] for r in runs)
    cpu_s = {name: sum(r["cpu_s"][name] for r in runs) for name in runs[0]["cpu_s"]} \
        if runs else {}
    return Point(
        scenario=scenario.name, side=side, concurrency=1, requests=len(runs),
        errors=len(errors), seconds=round(seconds, 3),
        rps=len(good) / seconds if seconds else 0.0,
        p50_ms=statistics.median(ordered) / 1e6 if ordered else None, p99_ms=None,
        mean_ms=statistics.fmean(ordered) / 1e6 if ordered else None,
        max_ms=ordered[-1] / 1e6 if ordered else None,
        bytes_in=sum(r["bytes"] for r in runs),
        cpu_ms_per_req={name: used * 1000 / max(len(runs), 1) for name, used in cpu_s.items()},
        cpu_cores={name: used / seconds if seconds else 0.0 for name, used in cpu_s.items()},
        statuses=dict(Counter(str(r["status"]) for r in runs)),
        error_sample=errors[0] if errors else None,
        mb_per_s=statistics.median(r["mb_per_s"] for r in good) if good else None,
        rss_growth_mb=(statistics.median(r["rss_growth_mb"] for r in good)
                       if good and side == "gateway" else None),
        hwm_growth_mb=(statistics.median(r["hwm_growth_mb"] for r in good)
                       if good and all(r["hwm_growth_mb"] is not None for r in good) else None),
        runs=runs,
    )


def measure_cold_start(ctx: Context, config: Path, *, starts: int, workers: int) -> list[float]:
    """Spawn to first 200 from /healthz, each start a fresh process on a fresh port."""
    times = []
    for n in range(starts):
        server = spawn_gateway(ctx, config, workers=workers, name=f"coldstart-{n}")
        try:
            times.append(server.wait_ready("/healthz"))
        finally:
            server.stop()
    return times


def idle_rss(ctx: Context, idle_s: float) -> float:
    """RSS after start, seeding and a few GETs, then ``idle_s`` of quiet."""
    assert ctx.gateway is not None
    headers = {"Authorization": f"Bearer {ctx.client_key}"}
    for task_id in ctx.task_ids[:10]:
        http_call(ctx.gateway.port, "GET", f"{TASKS_PATH}/{task_id}", headers=headers)
    time.sleep(idle_s)
    return rss_mb(ctx.gateway.pid)


# --- checks and report ---------------------------------------------------------------------------


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
    values = [p.cpu_ms_per_req["gateway"] for p in points
              if p.scenario == scenario and p.side == "gateway" and p.requests]
    return max(values) if values else None


def checks(points: Sequence[Point], idle_rss_mb: float | None,
           cold_start_s: float | None) -> list[Check]:
    found: list[Check] = []
    for name in ("get", "create"):
        point = find(points, name, "gateway", 1)
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
    point = find(points, "openai_create", "gateway", 1)
    if point is not None:
        found.append(Check("added p50 latency, openai_create vs native create, c=1",
                           point.added_p50_ms, ADDED_P50_C1_MS, "ms", enforced=False))
    if any(p.scenario == "openai_create" for p in points):
        found.append(Check("gateway CPU per OpenAI create (multipart /v1/videos, worst c)",
                           _worst_gateway_cpu(points, "openai_create"), CREATE_CPU_MS, "ms"))
    point = find(points, "download", "gateway", 1)
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


def _ms(value: float | None, width: int = 7) -> str:
    return f"{value:{width}.3f}" if value is not None else f"{'-':>{width}}"


TABLE_HEADER = (f"{'scenario':<13} {'side':<8} {'conc':>4} {'reqs':>6} {'err':>4} {'req/s':>8} "
                f"{'p50 ms':>7} {'p99 ms':>7} {'+p50 ms':>7} {'+p99 ms':>7} "
                f"{'gw cpu':>7} {'sim cpu':>7} {'cli cpu':>7} {'gw core':>7}")


def format_table(points: Sequence[Point]) -> str:
    """Request scenarios; throughput scenarios (download) have their own table."""
    lines = [TABLE_HEADER, "-" * len(TABLE_HEADER)]
    for p in points:
        if _throughput(p):
            continue
        gw_cpu = p.cpu_ms_per_req.get("gateway") if p.side == "gateway" else None
        lines.append(
            f"{p.scenario:<13} {p.side:<8} {p.concurrency:>4} {p.requests:>6} {p.errors:>4} "
            f"{p.rps:>8.0f} {_ms(p.p50_ms)} {_ms(p.p99_ms)} {_ms(p.added_p50_ms)} "
            f"{_ms(p.added_p99_ms)} {_ms(gw_cpu)} {_ms(p.cpu_ms_per_req.get('simulator'))} "
            f"{_ms(p.cpu_ms_per_req.get('client'))} "
            f"{_ms(p.cpu_cores.get('gateway') if p.side == 'gateway' else None, 7)}"
        )
    lines.append("cpu columns: CPU ms per request (utime+stime from /proc); gw core: gateway CPU "
                 "s per wall s (1.0 = one core busy);\n+p50/+p99: gateway minus direct at the same "
                 "concurrency")
    return "\n".join(lines)


def _throughput(point: Point) -> bool:
    """A point of a scenario with its own runner (the download), shown in its own table."""
    scenario = SCENARIOS.get(point.scenario)
    return scenario is not None and scenario.run is not None


DOWNLOAD_HEADER = (f"{'download':<13} {'side':<8} {'runs':>4} {'err':>4} {'MB/s':>7} "
                   f"{'min-max MB/s':>13} {'time s':>7} {'+time s':>7} {'gw RSS+MB':>9} "
                   f"{'HWM+MB':>7} {'gw cpu/MB':>9} {'sim cpu/MB':>10} {'cli cpu/MB':>10}")


def format_downloads(points: Sequence[Point]) -> str:
    """Throughput scenarios: median MB/s and time, gateway RSS growth, CPU ms per MB moved."""
    lines = [DOWNLOAD_HEADER, "-" * len(DOWNLOAD_HEADER)]
    for p in points:
        if not _throughput(p):
            continue
        speeds = [r["mb_per_s"] for r in p.runs if r["ok"]]
        spread = f"{min(speeds):.0f}-{max(speeds):.0f}" if speeds else "-"
        mb_moved = p.bytes_in / 2**20 or 1.0

        def per_mb(name: str, point: Point = p, moved: float = mb_moved) -> str:
            used = point.cpu_ms_per_req.get(name)
            return _ms(used * point.requests / moved if used is not None else None, 9)

        lines.append(
            f"{p.scenario:<13} {p.side:<8} {p.requests:>4} {p.errors:>4} "
            f"{f'{p.mb_per_s:.0f}' if p.mb_per_s is not None else '-':>7} {spread:>13} "
            f"{_ms(p.p50_ms / 1000 if p.p50_ms is not None else None)} "
            f"{_ms(p.added_p50_ms / 1000 if p.added_p50_ms is not None else None)} "
            f"{_ms(p.rss_growth_mb, 9)} {_ms(p.hwm_growth_mb)} "
            f"{per_mb('gateway') if p.side == 'gateway' else _ms(None, 9)} "
            f"{per_mb('simulator')} {per_mb('client')}"
        )
    lines.append(f"{DOWNLOAD_BYTES // 2**20} MiB per run, c=1, runs alternate direct/gateway; "
                 "MB = MiB; MB/s, time: medians; +time s: gateway minus direct;\n"
                 "gw RSS+MB: median over runs of (peak VmRSS, sampled every 50 ms) minus the "
                 "baseline after a warm-up Range request;\n"
                 "HWM+MB: the same from VmHWM, reset before each run (the exact peak, a "
                 "cross-check); cpu/MB: CPU ms per MiB moved")
    return "\n".join(lines)


def format_checks(found: Sequence[Check]) -> str:
    lines = ["Targets:"]
    for c in found:
        value = f"{c.value:.3f} {c.unit}" if c.value is not None else "n/a"
        sign = ">=" if c.at_least else "<="
        lines.append(f"  [{c.verdict:^4}] {c.name:<66} {value:>14}   "
                     f"target {sign} {c.limit} {c.unit}")
    return "\n".join(lines)


def machine_info() -> dict[str, Any]:
    return {
        "python": platform.python_version(), "cpus": os.cpu_count(),
        "loadavg": os.getloadavg(), "clk_tck": CLK_TCK, "commit": _commit(),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def _commit() -> str | None:
    try:  # read-only
        out = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, timeout=5, check=False)
    except OSError:
        return None
    return out.stdout.strip() or None


# --- profiling -----------------------------------------------------------------------------------


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
                                         start_new_session=True, preexec_fn=_die_with_parent)
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
    assert ctx.gateway is not None
    concurrency, rate, native = args.profile_concurrency, args.profile_rate, args.native
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = RESULTS_DIR / f"profile-{scenario.name}-c{concurrency}-{stamp}.speedscope.json"
    if scenario.build is None:
        raise RuntimeError(f"--profile needs a request scenario, not {scenario.name}")
    make = scenario.build(ctx, "gateway")
    profiler = Profiler(ctx.gateway.pid, out, rate=rate, native=native, workdir=ctx.workdir)
    try:
        point = run_async(measure_point(ctx, scenario, "gateway", make,
                                        concurrency, plan, during=profiler.start))
    finally:
        profiler.stop()
    print(f"profiled {point.requests} {scenario.name} requests at c={concurrency}: "
          f"p50 {_ms(point.p50_ms)} ms, gateway CPU {point.cpu_ms_per_req['gateway']:.3f} ms/req "
          "(sampling adds a little)")
    if not out.exists():
        raise RuntimeError(f"py-spy wrote no profile: see {ctx.workdir / 'py-spy.log'}")
    text = format_profile(summarize_speedscope(out, 15, point.cpu_ms_per_req["gateway"]))
    summary_path = out.with_name(out.name.replace(".speedscope.json", ".summary.txt"))
    summary_path.write_text(text)
    print(f"\n{text}profile: {out} (open in https://www.speedscope.app)\nsummary: {summary_path}")


# --- main ----------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--quick", action="store_true", help="small counts; whole run < 60 s")
    ap.add_argument("--json", metavar="OUT", type=Path, help="write every number as JSON")
    ap.add_argument("--scenario", action="append", choices=sorted(SCENARIOS),
                    help="run only these scenarios (repeatable; default all)")
    ap.add_argument("--concurrency", type=lambda s: tuple(int(c) for c in s.split(",")),
                    help="comma-separated levels (default 1,16,64)")
    ap.add_argument("--workers", type=int, default=1, help="gateway worker processes")
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
        for server in (ctx.gateway, ctx.sim):
            if server is not None:
                server.stop()


def _interrupt(signum: int, frame: object) -> None:
    # SIGTERM/SIGHUP take Ctrl-C's path: the finally blocks stop every server.
    raise KeyboardInterrupt


def benchmark(ctx: Context, args: argparse.Namespace, plan: Plan) -> dict[str, Any]:
    ctx.sim = start_simulator(ctx)
    config = write_config(ctx, ctx.sim.port)
    cold: list[float] = []
    if not args.skip_cold_start and not args.profile:
        print(f"cold start x{plan.cold_starts} ...", flush=True)
        cold = measure_cold_start(ctx, config, starts=plan.cold_starts, workers=args.workers)
    ctx.gateway = spawn_gateway(ctx, config, workers=args.workers)
    ready = ctx.gateway.wait_ready("/healthz")
    ctx.task_ids = seed_tasks(ctx, SEED_TASKS)
    idle = idle_rss(ctx, plan.idle_s)
    print(f"gateway pid {ctx.gateway.pid} ready in {ready:.2f}s, idle RSS {idle:.1f} MB; "
          f"simulator pid {ctx.sim.pid}", flush=True)
    if args.profile:
        run_profile(ctx, plan, SCENARIOS[(args.scenario or ["get"])[0]], args)
        return {}
    points: list[Point] = []
    for name in args.scenario or list(SCENARIOS):
        points.extend(run_scenario(ctx, SCENARIOS[name], plan))
    return {
        "points": points, "cold": cold, "idle_rss_mb": idle,
        "rss_after_load_mb": rss_mb(ctx.gateway.pid),
        "peak_rss_mb": max(rss_mb(ctx.gateway.pid, "VmHWM"), ctx.gateway_hwm_floor_mb),
        "simulator_rss_mb": rss_mb(ctx.sim.pid),
    }


def report(results: dict[str, Any], args: argparse.Namespace, plan: Plan,
           info: dict[str, Any]) -> list[Check]:
    points: list[Point] = results["points"]
    cold: list[float] = results["cold"]
    cold_median = statistics.median(cold) if cold else None
    found = checks(points, results["idle_rss_mb"], cold_median)
    print("\n" + format_table(points) + "\n")
    if any(_throughput(p) for p in points):
        print(format_downloads(points) + "\n")
    cold_text = (f"{cold_median:.3f} s median of {', '.join(f'{c:.3f}' for c in cold)}"
                 if cold else "skipped")
    print(f"gateway RSS: idle {results['idle_rss_mb']:.1f} MB, after load "
          f"{results['rss_after_load_mb']:.1f} MB, peak {results['peak_rss_mb']:.1f} MB "
          f"(simulator {results['simulator_rss_mb']:.1f} MB); cold start {cold_text}")
    print(f"workers {args.workers}, loadavg at start {info['loadavg'][0]:.2f}, "
          f"at end {os.getloadavg()[0]:.2f} (a busy box inflates latency, much less CPU/req)\n")
    print(format_checks(found))
    if args.json:
        document = {
            "machine": {**info, "loadavg_end": os.getloadavg()},
            "plan": dataclasses.asdict(plan), "mode": "quick" if args.quick else "full",
            "workers": args.workers, "points": [dataclasses.asdict(p) for p in points],
            "cold_start_s": cold, "cold_start_median_s": cold_median,
            **{k: results[k] for k in ("idle_rss_mb", "rss_after_load_mb", "peak_rss_mb",
                                       "simulator_rss_mb")},
            "checks": [{**dataclasses.asdict(c), "verdict": c.verdict} for c in found],
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(document, indent=2) + "\n")
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
        with servers(ctx):
            results = benchmark(ctx, args, plan)
    except KeyboardInterrupt:
        print("\ninterrupted; servers stopped", file=sys.stderr)
        return 130
    finally:
        if args.keep:
            print(f"kept {workdir}")
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
