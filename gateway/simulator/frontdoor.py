"""Pure ASGI front door: request ids, the request log, latency, bearer auth and injected faults."""

from __future__ import annotations

import secrets
import time

import anyio
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.simulator.ark_errors import internal_error, rate_limited, unauthorized
from gateway.simulator.state import RECORDED_BODY_LIMIT, RecordedRequest, SimulatorState

API_PREFIX = "/api/v3/"


def new_request_id() -> str:
    # Ark's ids are "02" + millisecond timestamp + random hex.
    return f"02{int(time.time() * 1000)}{secrets.token_hex(12)}"


def bearer_key(headers: Headers) -> str | None:
    scheme, _, key = headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        return None
    return key.strip()


class ArkFrontDoor:
    """Runs before routing. Only ``/api/v3`` requests are logged, delayed, authenticated and
    faulted; result files (pre-signed) and ``/_sim`` control routes just get the id headers.

    The handler finds ``request_id`` and the caller's ``upstream_key`` in ``request.state``.
    """

    def __init__(self, app: ASGIApp, simulator: SimulatorState) -> None:
        self.app = app
        self.simulator = simulator

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = new_request_id()
        scope.setdefault("state", {})["request_id"] = request_id
        headers = Headers(scope=scope)
        send = _with_id_headers(send, request_id, headers.get("x-client-request-id"))
        # Mounted under a prefix (the demo), scope["path"] still holds the full path.
        path = scope["path"][len(scope.get("root_path", "")):]
        if not path.startswith(API_PREFIX):
            await self.app(scope, receive, send)
            return

        body = await _read_body(receive)
        self.simulator.record(RecordedRequest(
            method=scope["method"],
            path=path,
            query=scope["query_string"].decode("latin-1"),
            headers={name: ", ".join(headers.getlist(name)) for name in headers},
            body=body[:RECORDED_BODY_LIMIT],
            received_at=self.simulator.clock(),
        ))
        if self.simulator.faults.latency > 0:
            await anyio.sleep(self.simulator.faults.latency)
        key = bearer_key(headers)
        if (key is None or key not in self.simulator.upstream_keys
                or key in self.simulator.revoked_keys):
            await unauthorized(request_id)(scope, receive, send)
            return
        retry_after = self.simulator.limited_keys.get(key)
        if retry_after is not None:
            limited = rate_limited().response(request_id)
            limited.headers["retry-after"] = str(retry_after)
            await limited(scope, receive, send)
            return
        fault = self.simulator.roll_fault()
        if fault is not None:
            error = internal_error() if fault == "error" else rate_limited()
            await error.response(request_id)(scope, receive, send)
            return
        scope["state"]["upstream_key"] = key
        await self.app(scope, _replay(body, receive), send)


async def _read_body(receive: Receive) -> bytes:
    parts: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break  # disconnected before the body was complete
        parts.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(parts)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive that yields the already-read body once, then defers to the real one."""
    pending = True

    async def replay() -> Message:
        nonlocal pending
        if pending:
            pending = False
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def _with_id_headers(send: Send, request_id: str, client_request_id: str | None) -> Send:
    async def send_with_ids(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = MutableHeaders(scope=message)
            headers["x-request-id"] = request_id
            if client_request_id is not None:
                # The Go SDK reads this back from the response when reporting errors.
                headers["x-client-request-id"] = client_request_id
        await send(message)

    return send_with_ids

