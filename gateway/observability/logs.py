"""Logging: one structlog chain for the gateway's own events and for stdlib loggers."""

from __future__ import annotations

import logging
import sys
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
    """A PrintLogger with a `name`, so add_logger_name treats it like a stdlib logger."""

    def __init__(self, file: TextIO, name: str) -> None:
        super().__init__(file)
        self.name = name


def _json(event: Any, **_: Any) -> str:
    return orjson.dumps(event, default=repr).decode()
