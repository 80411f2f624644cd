"""A create-task body, read with Ark's minimal checks and resolved to what the task reports."""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import orjson

from gateway.simulator.ark_errors import ArkError, invalid_parameter, missing_parameter
from gateway.simulator.models import SimulatedModel
from gateway.simulator.pixels import ADAPTIVE_RATIO, RATIOS, RESOLUTIONS, output_size

Outcome = Literal["succeeded", "failed", "expired", "never"]
T = TypeVar("T")

DEFAULT_DURATION = 5
DEFAULT_EXPIRES_AFTER = 172800
SERVICE_TIERS: tuple[str, ...] = ("default", "flex")



@dataclass(frozen=True, slots=True)
class TaskError:
    """The task object's ``error``: code and message only (no param/type, unlike API errors)."""

    code: str
    message: str


# Prompt markers let a test choose a task's fate per request; checked in this order.
_MARKERS: tuple[tuple[str, Outcome, TaskError | None], ...] = (
    ("[sim:fail-input]", "failed", TaskError(
        "InputImageSensitiveContentDetected.PrivacyInformation",
        "The request failed because the input image may contain real person.",
    )),
    ("[sim:fail]", "failed", TaskError(
        "OutputVideoSensitiveContentDetected",
        "The request failed because the output video may contain sensitive information.",
    )),
    ("[sim:never]", "never", None),
    ("[sim:expire]", "expired", TaskError(
        "TaskExpired", "The task exceeded execution_expires_after.",
    )),
)


@dataclass(frozen=True, slots=True)
class Submission:
    """Everything a simulated task needs from its create request, defaults applied."""

    requested_model: str
    model: SimulatedModel
    seed: int
    resolution: str
    ratio: str
    duration: int
    width: int
    height: int
    generate_audio: bool
    return_last_frame: bool
    service_tier: str
    execution_expires_after: int
    priority: int
    safety_identifier: str | None
    outcome: Outcome
    error: TaskError | None  # the task's error once it ends failed/expired


def read_submission(
    body: bytes, models: Mapping[str, SimulatedModel], rng: random.Random,
) -> Submission:
    """Parse a create body, raising :class:`ArkError` for what Ark rejects synchronously."""
    try:
        raw = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise ArkError(400, "InvalidParameter", "The request body is not valid JSON.") from None
    if not isinstance(raw, dict):
        raise ArkError(400, "InvalidParameter", "The request body must be a JSON object.")
    # The official Python SDK sends every unset parameter as null, so null means absent.
    fields = {key: value for key, value in raw.items() if value is not None}

    name = _typed(fields, "model", str)
    if name is None:
        raise missing_parameter("model")
    model = models.get(name)
    if model is None:
        raise ArkError(
            404, "InvalidEndpointOrModel.NotFound",
            f"The model or endpoint {name} does not exist or you do not have access to it.",
            param="model",
        )
    content = fields.get("content")
    if content is None:
        raise missing_parameter("content")
    if not isinstance(content, list) or not content:
        raise invalid_parameter("content", "`content` must be a non-empty array")
    if not all(isinstance(item, dict) for item in content):
        raise invalid_parameter("content", "every `content` item must be an object")

    resolution = _choice(fields, "resolution", RESOLUTIONS, "720p")
    ratio = _choice(fields, "ratio", RATIOS, "adaptive")
    if ratio == "adaptive":
        ratio = ADAPTIVE_RATIO
    duration = _typed(fields, "duration", int)
    if duration is not None and duration < 1 and duration != -1:
        raise invalid_parameter("duration", "`duration` must be positive or -1")
    seed = _typed(fields, "seed", int)
    if seed is None or seed == -1:
        seed = rng.randint(0, 2**31 - 1)
    width, height = output_size(model.family, resolution, ratio)
    outcome, error = _fate(content)
    return Submission(
        requested_model=name,
        model=model,
        seed=seed,
        resolution=resolution,
        ratio=ratio,
        duration=DEFAULT_DURATION if duration is None or duration == -1 else duration,
        width=width,
        height=height,
        generate_audio=_flag(fields, "generate_audio", default=True),
        return_last_frame=_flag(fields, "return_last_frame", default=False),
        service_tier=_choice(fields, "service_tier", SERVICE_TIERS, "default"),
        execution_expires_after=_int(fields, "execution_expires_after", DEFAULT_EXPIRES_AFTER),
        priority=_int(fields, "priority", 0),
        safety_identifier=_typed(fields, "safety_identifier", str),
        outcome=outcome,
        error=error,
    )


def _typed(fields: Mapping[str, Any], name: str, kind: type[T]) -> T | None:
    value = fields.get(name)
    # bool is an int subclass in Python but not an integer in JSON.
    if value is None or (isinstance(value, kind) and not (kind is int and isinstance(value, bool))):
        return value
    raise invalid_parameter(name, f"`{name}` has the wrong type")


def _int(fields: Mapping[str, Any], name: str, default: int) -> int:
    value = _typed(fields, name, int)
    return default if value is None else value


def _flag(fields: Mapping[str, Any], name: str, *, default: bool) -> bool:
    value = _typed(fields, name, bool)
    return default if value is None else value


def _choice(fields: Mapping[str, Any], name: str, allowed: tuple[str, ...], default: str) -> str:
    value = _typed(fields, name, str)
    if value is None:
        return default
    if value not in allowed:
        raise invalid_parameter(name, f"`{name}` must be one of {', '.join(allowed)}")
    return value


def _fate(content: list[dict[str, Any]]) -> tuple[Outcome, TaskError | None]:
    prompt = next(
        (item["text"] for item in content
         if item.get("type") == "text" and isinstance(item.get("text"), str)),
        "",
    )
    for marker, outcome, error in _MARKERS:
        if marker in prompt:
            return outcome, error
    return "succeeded", None
