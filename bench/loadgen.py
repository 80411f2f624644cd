"""The load generator: hand-written HTTP/1.1 requests on keep-alive connections, one per worker."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from servers import HOST

T = TypeVar("T")
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
