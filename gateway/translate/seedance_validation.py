"""Ark's synchronous 400s for a native Seedance create and list, answered without an upstream call.

Pure functions over parsed JSON / raw query pairs; every violation is a `GatewayError` (status 400)
with Ark's `code` and `param`, and no JSON input raises anything else. `content[]` rules live in
`seedance_content`. Checks run in a fixed order and the first violation wins: `content`, then
`resolution`, `ratio`, `duration`, `frames`, `seed`, `service_tier`, `execution_expires_after`,
`priority`, the booleans, `callback_url`, `safety_identifier`, `tools`, `output_format`,
`omni_reference_task_type`.

Decisions where the docs are silent (seedance-native.md §8; when unsure, accept and let Ark decide):

- `null` is a missing key for every field, and unknown keys pass (the caller forwards them).
- `duration`, `frames`, `seed`, `priority`, `execution_expires_after` must be JSON integers: `true`
  is not one, and neither is `5.0` ("Integer only"; Ark's Go decoder refuses `5.0` for an int).
- `frames`, `camera_fixed` and `draft` are documented as unsupported on 2.x, but whether Ark
  answers 400 or ignores them is unverified (§8.3), so an explicit value is only type-checked.
- `seed` accepts the older, wider range [-1, 2**32-1] (a newer copy of the doc says 2**31-1).
- A tier Ark knows (`default`/`flex`) but the model lacks → `InvalidParameter.UnsupportedParameter`;
  the same code answers `output_format` / `omni_reference_task_type` on a model without them.
- 2.5's task-type constraints (`InvalidParameter.TaskTypeConstraint`) depend on what the model
  infers and are left to Ark; so are media sizes, durations and pixel counts.
- Prompt text is never parsed: `--rs 720p --dur 4` in a prompt is forwarded and never rejected.

List query (§1.1): empty values count as absent; a repeated scalar key (`page_num`, `page_size`,
`filter.model`, `filter.service_tier`) uses its first value, as Go's `url.Values.Get` does;
`filter.status` and `filter.task_ids` take repeated keys *and* comma-joined values (neither ever
contains a comma, and third-party clients comma-join), every status is validated, and several
statuses mean "any of". Unknown query keys are ignored.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gateway.catalog import ModelSpec
from gateway.errors import GatewayError, invalid_parameter, missing_parameter
from gateway.translate.seedance_content import check_content

SERVICE_TIERS: tuple[str, ...] = ("default", "flex")
LIST_STATUSES: tuple[str, ...] = ("queued", "running", "cancelled", "succeeded", "failed")
BOOLEAN_FIELDS: tuple[str, ...] = (
    "generate_audio", "watermark", "return_last_frame", "camera_fixed", "draft",
)
SEED_MIN, SEED_MAX = -1, 2**32 - 1
EXPIRES_MIN, EXPIRES_MAX = 3600, 259200
PRIORITY_MIN, PRIORITY_MAX = 0, 9
SAFETY_IDENTIFIER_MAX = 64
PAGE_MIN, PAGE_MAX = 1, 500
DEFAULT_PAGE_NUM, DEFAULT_PAGE_SIZE = 1, 20

_UNSUPPORTED = "InvalidParameter.UnsupportedParameter"
_SHOWN_MAX = 40  # echoed values are cut so a base64 blob never lands in an error message
_QUERY_INT = re.compile(r"[+-]?[0-9]{1,12}")  # ASCII digits only; bounded so int() stays cheap


def require_model(body: object) -> str:
    """The `model` of a parsed create body, or Ark's 400 for a body without a usable one."""
    if not isinstance(body, Mapping):
        raise GatewayError(
            400, "InvalidParameter", "The request body must be a JSON object.", param=""
        )
    model = body.get("model")
    if model is None:
        raise missing_parameter("model")
    if not isinstance(model, str) or not model:
        raise invalid_parameter("model", "must be a non-empty string")
    return model


def validate_create(body: Mapping[str, Any], spec: ModelSpec) -> None:
    """Raise the first violation Ark would answer synchronously for `body` sent to `spec`."""
    check_content(body.get("content"), spec)
    _check_choice(body, "resolution", spec.resolutions, spec)
    _check_choice(body, "ratio", spec.ratios, spec)
    _check_duration(body.get("duration"), spec)
    _check_int(body, "frames", None, None)
    _check_int(body, "seed", SEED_MIN, SEED_MAX)
    _check_service_tier(body.get("service_tier"), spec)
    _check_int(body, "execution_expires_after", EXPIRES_MIN, EXPIRES_MAX)
    _check_int(body, "priority", PRIORITY_MIN, PRIORITY_MAX)
    for key in BOOLEAN_FIELDS:
        value = body.get(key)
        if value is not None and type(value) is not bool:
            raise invalid_parameter(key, "must be a boolean")
    _check_callback_url(body.get("callback_url"))
    _check_safety_identifier(body.get("safety_identifier"))
    _check_tools(body.get("tools"))
    _check_feature(body, "output_format", spec.output_formats, spec)
    _check_feature(body, "omni_reference_task_type", spec.task_types, spec)


def _shown(value: object) -> str:
    if isinstance(value, str):
        return value if len(value) <= _SHOWN_MAX else value[:_SHOWN_MAX] + "…"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)[:_SHOWN_MAX]
    return "an array" if isinstance(value, list) else "an object"


def _check_choice(
    body: Mapping[str, Any], key: str, allowed: tuple[str, ...], spec: ModelSpec
) -> None:
    value = body.get(key)
    # Exact, case-sensitive match: Ark wants lower-case `720p`.
    if value is not None and not (isinstance(value, str) and value in allowed):
        raise invalid_parameter(
            key, f"`{_shown(value)}` is not supported by model {spec.name}; "
                 f"expected one of {', '.join(allowed)}",
        )


def _check_duration(value: object, spec: ModelSpec) -> None:
    if value is None:
        return
    if type(value) is not int:
        raise invalid_parameter("duration", "must be an integer number of seconds")
    if not spec.accepts_duration(value):
        auto = " or -1" if spec.duration_auto else ""
        raise invalid_parameter(
            "duration", f"model {spec.name} accepts an integer in "
                        f"[{spec.duration_min}, {spec.duration_max}]{auto}, got {value}",
        )


def _check_int(body: Mapping[str, Any], key: str, low: int | None, high: int | None) -> None:
    value = body.get(key)
    if value is None:
        return
    # `type(...) is int`: JSON true/false are bools, which Python counts as ints.
    if type(value) is not int:
        raise invalid_parameter(key, "must be an integer")
    if low is not None and high is not None and not low <= value <= high:
        raise invalid_parameter(key, f"must be an integer in [{low}, {high}], got {value}")


def _check_service_tier(value: object, spec: ModelSpec) -> None:
    if value is None:
        return
    if not (isinstance(value, str) and value in SERVICE_TIERS):
        raise invalid_parameter("service_tier", f"`{_shown(value)}` is not one of default, flex")
    if value not in spec.service_tiers:
        raise invalid_parameter(
            "service_tier", f"`{value}` is not supported by model {spec.name}", code=_UNSUPPORTED
        )


def _check_callback_url(value: object) -> None:
    if value is None:
        return
    if isinstance(value, str):
        head = value[:8].lower()
        if (head.startswith("http://") and len(value) > 7) or (
            head == "https://" and len(value) > 8
        ):
            return
    raise invalid_parameter("callback_url", "must be an http:// or https:// URL")


def _check_safety_identifier(value: object) -> None:
    if value is not None and not (
        isinstance(value, str) and len(value) <= SAFETY_IDENTIFIER_MAX
    ):
        raise invalid_parameter(
            "safety_identifier", f"must be a string of at most {SAFETY_IDENTIFIER_MAX} characters"
        )


def _check_tools(value: object) -> None:
    if value is None:
        return
    if not isinstance(value, list):
        raise invalid_parameter("tools", 'must be an array like [{"type": "web_search"}]')
    for index, tool in enumerate(value):
        if not isinstance(tool, dict):
            raise invalid_parameter(f"tools[{index}]", "must be an object")
        if tool.get("type") != "web_search":
            raise invalid_parameter(f"tools[{index}].type", "the only tool type is web_search")


def _check_feature(
    body: Mapping[str, Any], key: str, allowed: tuple[str, ...], spec: ModelSpec
) -> None:
    """A parameter only some models have (2.5's `output_format`, `omni_reference_task_type`)."""
    if body.get(key) is None:
        return
    if not allowed:
        raise invalid_parameter(key, f"not supported by model {spec.name}", code=_UNSUPPORTED)
    _check_choice(body, key, allowed, spec)


@dataclass(frozen=True, slots=True)
class NativeListParams:
    """A validated native list query; empty `statuses` / `task_ids` mean "no filter"."""

    page_num: int = DEFAULT_PAGE_NUM
    page_size: int = DEFAULT_PAGE_SIZE
    statuses: tuple[str, ...] = ()
    task_ids: tuple[str, ...] = ()
    model: str | None = None
    service_tier: str = "default"


_SCALAR_KEYS = frozenset({"page_num", "page_size", "filter.model", "filter.service_tier"})


def parse_list_params(items: Sequence[tuple[str, str]]) -> NativeListParams:
    """Validate the raw query pairs of a native list call (in order, repeated keys kept)."""
    first: dict[str, str] = {}
    statuses: dict[str, None] = {}  # dicts as ordered sets: order of first appearance
    task_ids: dict[str, None] = {}
    for key, value in items:
        if not value:
            continue
        if key == "filter.status":
            for status in _split(value):
                if status not in LIST_STATUSES:
                    raise invalid_parameter(
                        key, f"`{_shown(status)}` is not one of {', '.join(LIST_STATUSES)}"
                    )
                statuses[status] = None
        elif key == "filter.task_ids":
            task_ids.update(dict.fromkeys(_split(value)))
        elif key in _SCALAR_KEYS:
            first.setdefault(key, value)
    tier = first.get("filter.service_tier", "default")
    if tier not in SERVICE_TIERS:
        raise invalid_parameter(
            "filter.service_tier", f"`{_shown(tier)}` is not one of default, flex"
        )
    return NativeListParams(
        page_num=_page(first, "page_num", DEFAULT_PAGE_NUM),
        page_size=_page(first, "page_size", DEFAULT_PAGE_SIZE),
        statuses=tuple(statuses),
        task_ids=tuple(task_ids),
        model=first.get("filter.model"),
        service_tier=tier,
    )


def _split(value: str) -> list[str]:
    return [part for part in (raw.strip() for raw in value.split(",")) if part]


def _page(first: Mapping[str, str], key: str, default: int) -> int:
    raw = first.get(key)
    if raw is None:
        return default
    if _QUERY_INT.fullmatch(raw) is None or not PAGE_MIN <= int(raw) <= PAGE_MAX:
        raise invalid_parameter(key, f"must be an integer in [{PAGE_MIN}, {PAGE_MAX}]")
    return int(raw)
