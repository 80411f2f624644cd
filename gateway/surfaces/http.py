"""HTTP plumbing shared by both surfaces: capped body reads, JSON replies, error envelopes."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from gateway.errors import GatewayError, Surface
from gateway.observability.logs import get_logger
from gateway.observability.metrics import LIMIT_REASONS
from gateway.observability.middleware import note

Handler = Callable[[Request], Awaitable[Response]]
JSON_TYPE = "application/json"
# Arrays and objects nested deeper are refused: no real request comes near it, and orjson
# cannot re-encode a body nested deeper than 254 (a native create is re-encoded after its
# model alias is rewritten).
MAX_JSON_DEPTH = 64
CLIENT_CLOSED_REQUEST = 499  # nginx's status for a client that left before the answer
log = get_logger("gateway")


def json_response(
    content: Any, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    return Response(orjson.dumps(content), status, headers, media_type=JSON_TYPE)


def raw_json_response(
    body: bytes, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    return Response(body, status, headers, media_type=JSON_TYPE)


def error_response(error: GatewayError, surface: Surface) -> Response:
    body = error.ark_body() if surface == "native" else error.openai_body()
    headers = dict(error.headers)
    if error.status == 429 and "retry-after" not in headers:
        headers["retry-after"] = "1"
    return json_response(body, error.status, headers)


def internal_error(surface: Surface) -> Response:
    return error_response(
        GatewayError(500, "InternalServiceError" if surface == "native" else "internal_error",
                     "The gateway hit an internal error; it has been logged."),
        surface,
    )


def body_too_large(limit: int) -> GatewayError:
    return GatewayError(
        413, "RequestEntityTooLarge",
        f"The request body exceeds the limit of {limit // (1024 * 1024)} MB; "
        "send large media as URLs or asset:// ids instead of base64.",
    )


def body_timed_out(timeout: float) -> GatewayError:
    # The rest of the body may still be on its way: the connection cannot carry another request.
    return GatewayError(
        408, "RequestTimeout",
        f"The request body stopped arriving: nothing was received for {timeout:g} seconds.",
        headers={"connection": "close"},
    )


async def read_body(request: Request, limit: int, *, timeout: float) -> bytes:
    """The whole request body, refusing (413) anything over `limit` without buffering it and
    (408) a body that stops arriving: more than `timeout` seconds between two reads."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise body_too_large(limit)
    chunks: list[bytes] = []
    size = 0
    loop = asyncio.get_running_loop()
    try:
        # One deadline for the whole body, moved on at every chunk: a timeout per chunk costs
        # ~10 µs each, on every create.
        async with asyncio.timeout(timeout) as deadline:
            async for chunk in request.stream():
                deadline.reschedule(loop.time() + timeout)
                size += len(chunk)
                if size > limit:
                    raise body_too_large(limit)
                chunks.append(chunk)
    except TimeoutError:
        raise body_timed_out(timeout) from None
    return b"".join(chunks)


def parse_json(body: bytes, *, param: str = "") -> Any:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise GatewayError(400, "InvalidParameter", "The request body is not valid JSON.",
                           param=param) from None
    # Counting brackets is C-speed; only a body with enough of them can be too deep.
    if body.count(b"[") + body.count(b"{") > MAX_JSON_DEPTH:
        check_depth(data, param=param)
    return data


def check_depth(value: Any, *, param: str = "") -> None:
    """A 400 for arrays and objects nested deeper than MAX_JSON_DEPTH (iterative: no recursion
    limit to hit)."""
    stack = [(value, 1)] if isinstance(value, dict | list) else []
    while stack:
        node, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise GatewayError(
                400, "InvalidParameter",
                f"The request body nests arrays and objects deeper than {MAX_JSON_DEPTH} levels.",
                param=param)
        for child in node.values() if isinstance(node, dict) else node:
            if isinstance(child, dict | list):
                stack.append((child, depth + 1))


def with_errors(surface: Surface, handler: Handler) -> Handler:
    """Turn GatewayErrors into the surface's envelope and anything else into a logged 500."""

    async def endpoint(request: Request) -> Response:
        try:
            return await handler(request)
        except GatewayError as error:
            note(error_code=error.code)
            # An upstream's 429 passed on is not the caller's fault; a key's own limit is.
            if 400 <= error.status < 500 and (error.status != 429
                                              or error.code in LIMIT_REASONS):
                request.app.state.services.metrics.reject(surface, error.code, error.param)
            return error_response(error, surface)
        except ClientDisconnect:
            # The client closed the connection mid-body: nobody to answer, nothing broken.
            log.info("client_disconnected", route=request.url.path)
            return Response(status_code=CLIENT_CLOSED_REQUEST)  # never sent; counted as such
        except Exception:
            log.exception("unhandled_error", route=request.url.path)
            return internal_error(surface)

    return endpoint
