"""Pure ASGI middleware: request id, request metrics and one access event per request.

Pure ASGI (not BaseHTTPMiddleware) so structlog's contextvars bound here reach every log line
the request produces. Handlers and the upstream client add fields to the access event with
:func:`note` (client key name, model, task id, upstream status and latency).
"""

from __future__ import annotations

import itertools
import os
import re
import time
from contextvars import ContextVar
from typing import Any

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.observability.logs import get_logger
from gateway.observability.metrics import Metrics

_SANE_ID = re.compile(rb"^[A-Za-z0-9._:-]{1,128}$")
_ACCESS: ContextVar[dict[str, Any] | None] = ContextVar("access_fields", default=None)
access_log = get_logger("gateway.access")


def is_sane_id(value: str) -> bool:
    """Short, printable, no separators: safe to echo, log and send upstream."""
    return len(value) <= 128 and _SANE_ID.match(value.encode("latin-1", "replace")) is not None


def incoming_request_id(scope: Scope) -> str:
    """A caller's `X-Request-ID` when it is safe to echo and log, else a fresh one."""
    for name, value in scope["headers"]:
        if name == b"x-request-id" and _SANE_ID.match(value):
            return str(value, "ascii")
    return _fresh_ids.next()


class RequestIds:
    """Fresh request ids: 32 hex digits, a random half per process and a counter.

    Unique across processes and restarts without a getrandom(2) per request (a syscall costs
    more than the rest of the id under gVisor); an id names a request, it grants nothing, so
    it need not be unpredictable.
    """

    def __init__(self) -> None:
        self.restart()

    def restart(self) -> None:
        self._prefix = os.urandom(8).hex()
        self._count = itertools.count()

    def next(self) -> str:
        return f"{self._prefix}{next(self._count):016x}"


_fresh_ids = RequestIds()
os.register_at_fork(after_in_child=_fresh_ids.restart)  # a worker never repeats its parent's


def note(**fields: Any) -> None:
    """Add fields to the current request's access event (no-op outside a request)."""
    access = _ACCESS.get()
    if access is not None:
        access.update(fields)


def route_of(scope: Scope) -> str:
    """The matched route's template: a bounded label, never the raw path."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "unmatched"


class ObservabilityMiddleware:
    def __init__(self, app: ASGIApp, *, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        request_id = incoming_request_id(scope)
        scope.setdefault("state", {})["request_id"] = request_id
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        access: dict[str, Any] = {}
        token = _ACCESS.set(access)
        header = (b"x-request-id", request_id.encode("ascii"))
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [
                    *(h for h in message.get("headers", ()) if h[0].lower() != b"x-request-id"),
                    header,
                ]
            await send(message)

        metrics = self.metrics
        metrics.in_flight.inc()
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            metrics.in_flight.dec()
            elapsed = time.perf_counter() - start
            route, method = route_of(scope), scope["method"]
            metrics.served(route, method, str(status), elapsed)
            _ACCESS.reset(token)
            access_log.info("request", route=route, method=method, status=status,
                            duration_ms=round(elapsed * 1000, 3), **access)
