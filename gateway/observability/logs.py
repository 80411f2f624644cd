"""Logging: one structlog chain for the gateway's own events and for stdlib loggers."""

from __future__ import annotations

import asyncio
import atexit
import logging
import sys
import threading
import time
from collections.abc import Iterable
from typing import Any, TextIO

import orjson
import structlog

from gateway.observability.redact import RedactSecrets

LEVELS = ("debug", "info", "warning", "error")


def configure_logging(
    level: str = "info",
    *,
    json: bool | None = None,
    secrets: Iterable[str] = (),
    stream: TextIO | None = None,
) -> None:
    """JSON lines when the output is not a TTY (containers), readable lines on a terminal.

    The gateway's own events use structlog's native logger (the stdlib path costs ~3x more per
    line, and every request writes one). uvicorn's and aiohttp's stdlib records go through
    ProcessorFormatter with the same processors, so the redaction step, last before the
    renderer, covers every line either way.
    """
    stream = stream if stream is not None else sys.stderr
    if json is None:
        json = not stream.isatty()
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_logger_name,
        structlog.processors.add_log_level,
        UtcTimestamp(),
    ]
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer(serializer=_json) if json
        else structlog.dev.ConsoleRenderer(colors=stream.isatty())
    )
    final: list[structlog.typing.Processor] = [
        # Exceptions become text (never locals: they hold headers, keys and bodies) ...
        structlog.processors.ExceptionRenderer(
            structlog.tracebacks.ExceptionDictTransformer(show_locals=False))
        if json else structlog.processors.format_exc_info,
        # ... so that redaction sees them too.
        RedactSecrets(secrets),
        renderer,
    ]
    structlog.configure(
        processors=[*shared, *final],
        logger_factory=lambda *args: _NamedPrintLogger(stream, args[0] if args else "gateway"),
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *final],
    ))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "httpx", "httpcore", "aiohttp"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.error").filters[:] = [_deliberate_abort]
    # The gateway writes its own access event; uvicorn writes one whenever this logger has a
    # handler anywhere up the tree, so it must not reach the root handler.
    uvicorn_access = logging.getLogger("uvicorn.access")
    uvicorn_access.handlers[:] = []
    uvicorn_access.propagate = False
    # httpx logs every request URL at INFO, signed query strings included.
    logging.getLogger("httpx").setLevel(max(logging.WARNING, root.level))
    logging.getLogger("httpcore").setLevel(max(logging.WARNING, root.level))


# The one way the gateway leaves a response unfinished on purpose: a result file the upstream
# cut short is cut short for the client too (and logged as `download_truncated`), which uvicorn
# reports as an error of the app.
_ABORTED = "ASGI callable returned without completing response."


def _deliberate_abort(record: logging.LogRecord) -> bool:
    if record.msg == _ABORTED:
        record.levelno, record.levelname = logging.INFO, "INFO"
    return True


def get_logger(name: str) -> Any:
    """A logger whose lines carry `logger: name`, like the stdlib ones.

    Lazy: module-level loggers are created at import, before configure_logging() runs, and
    must pick up its processors (redaction included) when they first log.
    """
    return structlog.get_logger(name)


class UtcTimestamp:
    """`timestamp`: ISO 8601 UTC with microseconds, like TimeStamper(fmt="iso", utc=True).

    The date-and-seconds part is formatted once per second: structlog's stamper builds a
    datetime per line, which cost ~15 µs of the ~25 µs an access line takes.
    """

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""

    def __call__(self, logger: Any, name: str, event_dict: Any) -> Any:
        now = time.time()
        second = int(now)
        if second != self._second:
            self._second = second
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        event_dict["timestamp"] = f"{self._prefix}.{int((now - second) * 1e6):06d}Z"
        return event_dict


class _NamedPrintLogger(structlog.PrintLogger):
    """A PrintLogger with a `name`, so add_logger_name treats it like a stdlib logger, whose
    lines go out through the stream's LineWriter."""

    def __init__(self, file: TextIO, name: str) -> None:
        super().__init__(file)
        self.name = name
        self._writer = LineWriter.of(file)

    def msg(self, message: str) -> None:
        self._writer.write(message)

    log = debug = info = warn = warning = msg
    fatal = failure = err = error = critical = exception = msg


class LineWriter:
    """Writes log lines to a stream, one flush per event-loop turn rather than one per line.

    Every request writes an access line, and a flush is a write(2): under load, the lines of
    all the requests one turn of the loop finished go out in one write, at the end of that
    turn (so a line waits microseconds, never for more traffic). Outside a running loop (start
    up, shutdown, other threads) a line is written and flushed at once; what a turn left is
    flushed at exit too.
    """

    _by_stream: dict[int, LineWriter] = {}

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._pending: list[str] = []
        self._lock = threading.Lock()
        self._thread: int | None = None  # the loop thread a flush is scheduled on

    @classmethod
    def of(cls, stream: TextIO) -> LineWriter:
        """One writer per stream, so every logger writing to it shares the turn's flush."""
        writer = cls._by_stream.get(id(stream))
        if writer is None or writer._stream is not stream:
            writer = cls._by_stream[id(stream)] = cls(stream)
        return writer

    def write(self, line: str) -> None:
        loop = _loop_of_this_thread()
        with self._lock:
            self._pending.append(line)
            if loop is not None and self._thread in (None, threading.get_ident()):
                if self._thread is None:
                    self._thread = threading.get_ident()
                    loop.call_soon(self.flush)
                return
        self.flush()

    def flush(self) -> None:
        with self._lock:
            lines, self._pending, self._thread = self._pending, [], None
            if lines:
                for line in lines:  # into the stream's buffer: the flush is the one write(2)
                    self._stream.write(line + "\n")
                self._stream.flush()


_this_thread = threading.local()


def _loop_of_this_thread() -> asyncio.AbstractEventLoop | None:
    """The event loop running in this thread, if any. Remembered per thread: asyncio's own
    lookup calls getpid(2) every time, and under gVisor a syscall costs a whole log line."""
    loop: asyncio.AbstractEventLoop | None = getattr(_this_thread, "loop", None)
    if loop is not None and loop.is_running():  # one loop runs per thread at a time
        return loop
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        loop = None
    _this_thread.loop = loop
    return loop


@atexit.register
def flush_logs() -> None:
    """Write out the lines a loop turn left (at shutdown: the loop may not turn again)."""
    for writer in list(LineWriter._by_stream.values()):
        writer.flush()


def _json(event: Any, **_: Any) -> str:
    return orjson.dumps(event, default=repr).decode()
