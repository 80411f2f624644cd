"""An OpenAI `POST /v1/videos` create, translated into the native Ark create body (§4).

Decisions where translation.md §4 is silent:

- Native knobs, `duration` and `mode` are read from `metadata`, then `extra_body`, then the top
  level, the later winning (the top level is the most explicit; the Python SDK merges
  `extra_body` there anyway). `images`/`videos`/`audios` come from `extra_body` or the top level.
  `null` or a blank string means "not sent" at that layer.
- Besides the spec's knobs, the 2.5-only native `output_format` and `omni_reference_task_type`
  pass (the native validator decides per model). Other unknown fields (`quality`, `n`, other
  `metadata` keys, …) are OpenAI-side and dropped; `characters` is a 400 `unsupported_parameter`,
  since dropping it would silently lose what the client asked for.
- Strings (multipart, `metadata`) are coerced by the knob's type: booleans from `true/false/1/0`
  (any case), integers from integer literals, `tools` from JSON or comma-separated tool types; a
  string that does not coerce is a 400 `invalid_type`. Other JSON values pass unchanged.
- `duration` (native) wins over `seconds`. `"8.0"` and `8.0` are 8; `-1` passes only on a model
  that chooses its own duration; zero and other negatives are 400 under either policy.
- No `size`: no `resolution`/`ratio` in the body (Ark's defaults). With both `resolution` and
  `ratio` overridden, `size` is only checked for form.
- `input_reference` is prepended to `images[]`, then the mode rules apply (so with one more image
  and no mode it is the first frame of an i2v pair; in r2v the first reference image). A file part
  and an `image_url` together are a 400. A plain-string `input_reference` that is a URL
  (`http(s)://`, `data:image/`, `asset://`) is used as one; other strings are `invalid_type`.
- Explicit `mode: i2v` with videos/audios, without images or with more than two is a 400 on `mode`.
- A text field (`prompt`, `model`, `size`, `seconds`) sent as a file part is `invalid_type`; file
  parts other than `input_reference` are dropped like unknown fields. A blank prompt is a 400.
- `requested_size` is Ark's pixel size for the final resolution+ratio when known, else the `size`
  sent; `requested_seconds` is the final duration, or the model's default when none was sent
  (None when the model picks). They describe the video until Ark reports.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from gateway.catalog import Catalogue, ModelSpec
from gateway.errors import GatewayError
from gateway.translate.openai_form import sniff_image_mime
from gateway.translate.openai_sizes import SizePolicy, map_size, output_size, parse_size

DurationPolicy = Literal["clamp", "strict"]

DEFAULT_MODEL = "sora-2"
PROMPT_MAX = 32000
BOOLEAN_KNOBS = frozenset({"generate_audio", "watermark", "return_last_frame", "camera_fixed"})
INTEGER_KNOBS = frozenset({"seed", "execution_expires_after", "priority"})
# Body order; each overrides what `size`/`seconds` implied.
NATIVE_KNOBS: tuple[str, ...] = (
    "resolution", "ratio", "seed", "generate_audio", "watermark", "return_last_frame",
    "camera_fixed", "service_tier", "execution_expires_after", "priority", "tools",
    "callback_url", "safety_identifier", "output_format", "omni_reference_task_type",
)
TEXT_FIELDS = frozenset({"prompt", "model", "size", "seconds"})
MODES = ("i2v", "r2v")
I2V_ROLES = ("first_frame", "last_frame")

_INTEGER = re.compile(r"[+-]?[0-9]{1,12}")
_SECONDS = re.compile(r"[+-]?[0-9]{1,9}(?:\.[0-9]{1,9})?")
_IMAGE_URL = re.compile(r"(?:https?://|data:image/|asset://)", re.IGNORECASE)
_SHOWN_MAX = 40


@dataclass(frozen=True)
class UploadedFile:
    """A multipart file part, as received."""

    filename: str | None
    content_type: str | None
    data: bytes


@dataclass(frozen=True)
class OpenAICreate:
    """A translated create: the native body plus what the OpenAI `Video` reports before Ark does."""

    spec: ModelSpec
    body: dict[str, Any]  # the native Ark create body, "model" = spec.upstream_model
    prompt: str
    requested_size: str | None
    requested_seconds: str | None


def translate_create(
    fields: Mapping[str, Any],
    *,
    files: Mapping[str, UploadedFile],
    catalogue: Catalogue,
    size_policy: SizePolicy,
    duration_policy: DurationPolicy,
) -> OpenAICreate:
    """The native create body for an OpenAI create (JSON body, or unflattened multipart)."""
    sent_as_files = sorted(TEXT_FIELDS.intersection(files).difference(fields))
    if sent_as_files:
        raise _wrong_type(sent_as_files[0], "a string, but got a file instead")
    prompt = _prompt(fields.get("prompt"))
    spec = _model(fields.get("model"), catalogue)
    if _given(fields.get("characters")) and fields["characters"] not in ([], {}):
        raise _bad("unsupported_parameter", "characters", "Sora characters are not available on "
                   "this gateway; send the character's image in images[] with mode 'r2v'.")
    layers = _layers(fields)
    knobs = {name: _coerce(name, value) for name in NATIVE_KNOBS
             if (value := _pick(layers, name)) is not None}

    body: dict[str, Any] = {"model": spec.upstream_model, "content": [
        {"type": "text", "text": prompt}, *_media_content(fields, files, layers)]}
    size = _text(fields.get("size"), "size")
    if size is not None and "resolution" in knobs and "ratio" in knobs:
        parse_size(size)
    elif size is not None:
        body["resolution"], body["ratio"] = map_size(size, spec, size_policy)
    duration, duration_param = _pick(layers, "duration"), "duration"
    if duration is None and _given(fields.get("seconds")):
        duration, duration_param = fields["seconds"], "seconds"
    if duration is not None:
        body["duration"] = _duration(duration, spec, duration_policy, duration_param)
    body.update(knobs)

    user = _text(_pick(layers, "user"), "user")
    if user is not None and "safety_identifier" not in body:
        # Ark wants an opaque end-user id of at most 64 chars: a sha256 hex digest is exactly 64.
        body["safety_identifier"] = hashlib.sha256(user.encode()).hexdigest()
    body.setdefault("return_last_frame", True)  # so the `thumbnail` variant can be served
    resolution, ratio = body.get("resolution"), body.get("ratio")
    implied_size = (output_size(resolution, ratio, spec.family)
                    if isinstance(resolution, str) and isinstance(ratio, str) else None)
    seconds = body.get("duration", spec.default_duration)
    return OpenAICreate(spec, body, prompt, implied_size or size,
                        str(seconds) if seconds > 0 else None)


def _prompt(value: object) -> str:
    if value is None:
        raise _bad("missing_required_parameter", "prompt", "Missing required parameter: 'prompt'.")
    if not isinstance(value, str):
        raise _wrong_type("prompt", "a string")
    if not value.strip():
        raise _invalid("prompt", "it must not be empty")
    if len(value) > PROMPT_MAX:
        raise _invalid("prompt", f"it is {len(value)} characters long; the maximum is {PROMPT_MAX}")
    return value


def _model(value: object, catalogue: Catalogue) -> ModelSpec:
    name = _text(value, "model") or DEFAULT_MODEL
    spec = catalogue.resolve(name)
    if spec is None:
        raise _bad("model_not_found", "model", f"The model '{_shown(name)}' does not exist on "
                   f"this gateway. Available models: {', '.join(catalogue.names())}.")
    return spec


def _layers(fields: Mapping[str, Any]) -> tuple[Mapping[str, Any], ...]:
    """Where native knobs may come from, lowest precedence first."""
    layers: list[Mapping[str, Any]] = []
    for name in ("metadata", "extra_body"):
        layer = fields.get(name)
        if layer is not None and not isinstance(layer, Mapping):
            raise _wrong_type(name, "an object")
        layers.append(layer or {})
    return (*layers, fields)


def _pick(layers: tuple[Mapping[str, Any], ...], name: str) -> Any:
    for layer in reversed(layers):
        if _given(layer.get(name)):
            return layer[name]
    return None


def _given(value: object) -> bool:
    return value is not None and not (isinstance(value, str) and not value.strip())


def _coerce(name: str, value: Any) -> Any:
    if not isinstance(value, str):
        return value  # a JSON-typed value: the native validator judges it
    text = value.strip()
    if name in BOOLEAN_KNOBS:
        if text.lower() not in ("true", "1", "false", "0"):
            raise _wrong_type(name, f"a boolean ('true' or 'false'), got '{_shown(text)}'")
        return text.lower() in ("true", "1")
    if name in INTEGER_KNOBS:
        if not _INTEGER.fullmatch(text):
            raise _wrong_type(name, f"an integer, got '{_shown(text)}'")
        return int(text)
    if name == "tools" and text.startswith(("[", "{")):
        try:
            tools = orjson.loads(text)
        except orjson.JSONDecodeError:
            raise _invalid("tools", "not valid JSON") from None
        return tools if isinstance(tools, list) else [tools]
    if name == "tools":
        return [{"type": tool.strip()} for tool in text.split(",") if tool.strip()]
    return value


def _duration(value: object, spec: ModelSpec, policy: DurationPolicy, param: str) -> int:
    if isinstance(value, str) and _SECONDS.fullmatch(value.strip()):
        number = float(value.strip())
    elif isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
    else:
        raise _wrong_type(param, f"whole seconds such as '8', got '{_shown(str(value))}'")
    if not number.is_integer():
        raise _invalid(param, f"'{_shown(str(value))}' is not a whole number of seconds")
    seconds, low, high = int(number), spec.duration_min, spec.duration_max
    if seconds == -1 and spec.duration_auto:
        return -1  # Ark's "the model chooses"
    if seconds <= 0 or (policy == "strict" and not low <= seconds <= high):
        raise _invalid(param, f"{seconds}; model '{spec.name}' renders {low} to {high} seconds")
    return min(max(seconds, low), high)


def _media_content(
    fields: Mapping[str, Any], files: Mapping[str, UploadedFile],
    layers: tuple[Mapping[str, Any], ...],
) -> list[dict[str, Any]]:
    media = layers[1:]  # not `metadata`: its values are flat strings
    first = _input_reference(fields.get("input_reference"), files.get("input_reference"))
    images = [*([first] if first else []), *_urls(_pick(media, "images"), "images", "image")]
    videos = _urls(_pick(media, "videos"), "videos", "video")
    audios = _urls(_pick(media, "audios"), "audios", "audio")
    mode = (_text(_pick(layers, "mode"), "mode") or "").lower()
    if mode and mode not in MODES:
        raise _invalid("mode", f"'{_shown(mode)}'; expected 'i2v' or 'r2v'")
    if not mode:
        mode = "i2v" if 1 <= len(images) <= 2 and not videos and not audios else "r2v"
    if mode == "i2v":
        if videos or audios or not 1 <= len(images) <= 2:
            raise _invalid("mode", "'i2v' takes one or two images (first and last frame) and "
                           "nothing else; use 'r2v' for reference images, videos and audios")
        return [_item("image", url, role) for url, role in zip(images, I2V_ROLES, strict=False)]
    return [*(_item("image", url, "reference_image") for url in images),
            *(_item("video", url, "reference_video") for url in videos),
            *(_item("audio", url, "reference_audio") for url in audios)]


def _item(kind: str, url: str, role: str) -> dict[str, Any]:
    return {"type": f"{kind}_url", f"{kind}_url": {"url": url}, "role": role}


def _input_reference(value: object, upload: UploadedFile | None) -> str | None:
    if upload is not None:
        if _given(value):
            raise _invalid("input_reference", "send either a file or an image_url, not both")
        mime = sniff_image_mime(upload.data)
        if mime is None:
            raise _invalid("input_reference", "the file is not a PNG, JPEG, WebP, GIF, BMP, TIFF "
                           "or HEIC/HEIF image")
        return f"data:{mime};base64,{base64.b64encode(upload.data).decode('ascii')}"
    if not _given(value):
        return None
    if isinstance(value, str) and not _IMAGE_URL.match(value):
        raise _wrong_type("input_reference", "a file or an object with 'image_url', but got a "
                          "string instead")
    url = _url_of(value, "image", "input_reference")
    if url is None:
        raise _invalid("input_reference", "expected an object with 'image_url' (a URL or a data "
                       "URL)")
    return url


def _urls(value: object, param: str, kind: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    elif isinstance(value, Mapping) and value and all(key.isdigit() for key in value):
        value = [value[key] for key in sorted(value, key=int)]  # `images[0]=…` (indices format)
    if not isinstance(value, list):
        raise _wrong_type(param, "an array")
    urls = [_url_of(item, kind, param) for item in value]
    if any(url is None for url in urls):
        raise _invalid(param, f"each item must be a URL or an object with 'url' or '{kind}_url'")
    return [url for url in urls if url is not None]


def _url_of(item: object, kind: str, param: str) -> str | None:
    if isinstance(item, str):
        return item if item.strip() else None
    if not isinstance(item, Mapping):
        return None
    if _given(item.get("file_id")):
        raise _bad("unsupported_parameter", param, f"'{param}' by file_id is not supported: this "
                   "gateway has no Files API. Send the image bytes as a file part or an image_url "
                   "(a URL or a data URL).")
    for key in ("url", f"{kind}_url"):
        url = item.get(key)
        url = url.get("url") if isinstance(url, Mapping) else url
        if isinstance(url, str) and url.strip():
            return url
    return None


def _text(value: object, param: str) -> str | None:
    if not _given(value):
        return None
    if not isinstance(value, str):
        raise _wrong_type(param, "a string")
    return value


def _shown(value: str) -> str:
    return value if len(value) <= _SHOWN_MAX else value[:_SHOWN_MAX] + "…"


def _invalid(param: str, detail: str) -> GatewayError:
    return _bad("invalid_value", param, f"Invalid value for '{param}': {detail}.")


def _wrong_type(param: str, expected: str) -> GatewayError:
    return _bad("invalid_type", param, f"Invalid type for '{param}': expected {expected}.")


def _bad(code: str, param: str, message: str) -> GatewayError:
    return GatewayError(400, code, message, param=param)
