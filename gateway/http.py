"""HTTP plumbing shared by both surfaces: capped body reads, JSON replies, error envelopes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Literal

import orjson
from starlette.requests import Request
from starlette.responses import Response

from gateway.errors import GatewayError
from gateway.logs import get_logger
from gateway.middleware import note

Shape = Literal["ark", "openai"]
Handler = Callable[[Request], Awaitable[Response]]
JSON_TYPE = "application/json"
log = get_logger("gateway")


def json_response(
    content: Any, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    return Response(orjson.dumps(content), status, headers, media_type=JSON_TYPE)


def raw_json_response(
    body: bytes, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    return Response(body, status, headers, media_type=JSON_TYPE)


def error_response(error: GatewayError, shape: Shape) -> Response:
    body = error.ark_body() if shape == "ark" else error.openai_body()
    headers = dict(error.headers)
    if error.status == 429 and "retry-after" not in headers:
        headers["retry-after"] = "1"
    return json_response(body, error.status, headers)


def internal_error(shape: Shape) -> Response:
    return error_response(
        GatewayError(500, "InternalServiceError" if shape == "ark" else "internal_error",
                     "The gateway hit an internal error; it has been logged."),
        shape,
    )


def body_too_large(limit: int) -> GatewayError:
    return GatewayError(
        413, "RequestEntityTooLarge",
        f"The request body exceeds the limit of {limit // (1024 * 1024)} MB; "
        "send large media as URLs or asset:// ids instead of base64.",
    )


async def read_body(request: Request, limit: int) -> bytes:
    """The whole request body, refusing (413) anything over `limit` without buffering it."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise body_too_large(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise body_too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def parse_json(body: bytes, *, param: str = "") -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        raise GatewayError(400, "InvalidParameter", "The request body is not valid JSON.",
                           param=param) from None


def with_errors(shape: Shape, handler: Handler) -> Handler:
    """Turn GatewayErrors into the surface's envelope and anything else into a logged 500."""

    async def endpoint(request: Request) -> Response:
        try:
            return await handler(request)
        except GatewayError as error:
            note(error_code=error.code)
            if 400 <= error.status < 500 and error.status != 429:
                request.app.state.services.metrics.reject(shape, error.code)
            return error_response(error, shape)
        except Exception:
            log.exception("unhandled_error", route=request.url.path)
            return internal_error(shape)

    return endpoint
