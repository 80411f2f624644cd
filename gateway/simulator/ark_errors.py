"""Ark's error envelope: the exception handlers raise and the JSON responses clients see."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import orjson
from starlette.responses import Response

_ARK_TYPES: Mapping[int, str] = MappingProxyType({
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    429: "TooManyRequests",
    500: "InternalServerError",
})


class ArkError(Exception):
    """An Ark API error; ``message`` is given without the trailing request id."""

    def __init__(self, status: int, code: str, message: str, *, param: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.param = param

    def response(self, request_id: str) -> Response:
        return json_response({"error": {
            "code": self.code,
            "message": f"{self.message} Request id: {request_id}",
            "param": self.param,
            "type": _ARK_TYPES.get(self.status, "InternalServerError"),
        }}, status=self.status)


def json_response(body: Any, *, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


def unauthorized(request_id: str) -> Response:
    # Byte-for-byte the live Ark 401: lower-case "request id" and its own x-error-code header.
    response = json_response({"error": {
        "code": "AuthenticationError",
        "message": "the API key or AK/SK in the request is missing or invalid. "
                   f"request id: {request_id}",
        "param": "",
        "type": "Unauthorized",
    }}, status=401)
    response.headers["x-error-code"] = "AuthN_MissOrInvalidAuthorizationHeader"
    return response


def invalid_parameter(param: str, detail: str) -> ArkError:
    return ArkError(
        400, "InvalidParameter",
        f"The parameter `{param}` specified in the request are not valid: {detail}.",
        param=param,
    )


def missing_parameter(param: str) -> ArkError:
    return ArkError(
        400, "MissingParameter",
        f"The request failed because it is missing one or multiple required parameters: "
        f"`{param}`.",
        param=param,
    )


def task_not_found(task_id: str) -> ArkError:
    return ArkError(
        404, "NotFound.TaskID", f"The specified task `{task_id}` is not found.", param="id",
    )


def internal_error() -> ArkError:
    return ArkError(
        500, "InternalServiceError",
        "The service encountered an unexpected internal error. Please retry later.",
    )


def rate_limited() -> ArkError:
    return ArkError(
        429, "RateLimitExceeded.EndpointRPMExceeded",
        "The request has exceeded the requests per minute (RPM) rate limit of the endpoint. "
        "Please retry later.",
    )
