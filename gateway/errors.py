"""Errors the gateway may show a client, and their two wire shapes (Ark and OpenAI).

GatewayError                 user-facing: status, code, message, param
 ├── UpstreamUnavailable     502, connect/transport failure
 ├── UpstreamTimeout         504
 └── UpstreamBadResponse     502, the upstream answered something we cannot use

Anything that is not a GatewayError is a bug: the client gets a generic 500 and the details go
to the log only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

# The API a caller speaks: Ark's own (`native`) or OpenAI's /v1/videos. It decides the error
# envelope, and every record and metric says which one created a task.
Surface = Literal["native", "openai"]

ARK_TYPES: Mapping[int, str] = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    408: "RequestTimeout",
    409: "Conflict",
    413: "RequestEntityTooLarge",
    415: "UnsupportedMediaType",
    416: "RangeNotSatisfiable",
    422: "UnprocessableEntity",
    429: "TooManyRequests",
    500: "InternalServerError",
    502: "BadGateway",
    503: "ServiceUnavailable",
    504: "GatewayTimeout",
}


def openai_error_type(status: int) -> str:
    if status == 401:
        return "authentication_error"
    if status == 403:
        return "permission_error"
    if status == 429:
        return "rate_limit_error"
    if status >= 500:
        return "server_error"
    return "invalid_request_error"


class GatewayError(Exception):
    """An error whose status, code, message and param are safe to show the caller."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        param: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.param = param
        self.headers: dict[str, str] = dict(headers or {})

    def ark_body(self) -> dict[str, Any]:
        return {"error": {
            "code": self.code,
            "message": self.message,
            "param": self.param or "",
            "type": ARK_TYPES.get(self.status, "InternalServerError"),
        }}

    def openai_body(self) -> dict[str, Any]:
        return {"error": {
            "message": self.message,
            "type": openai_error_type(self.status),
            "param": self.param,
            "code": self.code,
        }}


class UpstreamUnavailable(GatewayError):
    def __init__(self, message: str, *, may_exist: bool) -> None:
        headers = {"x-should-retry": "false"} if may_exist else None
        super().__init__(502, "UpstreamUnavailable", message, headers=headers)


class UpstreamTimeout(GatewayError):
    def __init__(self, message: str, *, may_exist: bool) -> None:
        headers = {"x-should-retry": "false"} if may_exist else None
        super().__init__(504, "UpstreamTimeout", message, headers=headers)


class UpstreamBadResponse(GatewayError):
    def __init__(self, message: str, *, may_exist: bool = False) -> None:
        headers = {"x-should-retry": "false"} if may_exist else None
        super().__init__(502, "UpstreamBadResponse", message, headers=headers)


def missing_parameter(param: str) -> GatewayError:
    return GatewayError(
        400, "MissingParameter",
        f"The request failed because it is missing one or multiple required parameters: `{param}`.",
        param=param,
    )


def invalid_parameter(param: str, detail: str, *, code: str = "InvalidParameter") -> GatewayError:
    return GatewayError(
        400, code,
        f"The parameter `{param}` specified in the request are not valid: {detail}.",
        param=param,
    )


def not_found_task(task_id: str) -> GatewayError:
    return GatewayError(
        404, "NotFound.TaskID",
        f"The specified task `{task_id}` is not found.",
        param="id",
    )


def model_not_found(model: str) -> GatewayError:
    return GatewayError(
        404, "InvalidEndpointOrModel.NotFound",
        f"The model or endpoint {model} does not exist or you do not have access to it.",
        param="model",
    )


def authentication_failed() -> GatewayError:
    return GatewayError(
        401, "AuthenticationError",
        "the API key or AK/SK in the request is missing or invalid",
    )


def model_not_allowed(model: str) -> GatewayError:
    return GatewayError(
        403, "AccessDenied",
        f"This gateway key is not allowed to use the model {model}.",
        param="model",
    )
