"""Ark's synchronous checks on a native create's `content[]`: item shapes, URL forms, roles, counts.

Param paths name the offending JSON node the way Ark's own messages do ("the input image
'content[1]'"): `content` for array-wide and scenario rules, `content[i]` for an item that is not
an object, then `content[i].type`, `content[i].text`, `content[i].role`, `content[i].image_url`,
`content[i].image_url.url` (likewise `video_url`, `audio_url`) and `content[i].draft_task.id`.

Decisions where the docs are silent (seedance-native.md §2.3, §5; when unsure, accept):

- Several `text` items are accepted; nothing says Ark refuses them.
- `draft_task` items are forwarded on every model, alone or mixed with other items, any number:
  only 1.5 pro is documented to support drafts, but what 2.x answers is unverified.
- An image may omit `role` only when it is the sole media item (first-frame mode); in any other
  combination the missing role is `MissingParameter` at `content[i].role`. `video_url` and
  `audio_url` always need their role (they only exist in reference mode).
- Image URL missing, null or `""` → `InvalidImageURL.EmptyURL`, as is a `data:` URI with no
  payload; any other bad image URL → `InvalidImageURL.InvalidFormat`. Video and audio URLs:
  missing/null → `MissingParameter`, bad or empty → `InvalidParameter`.
- URL schemes `http://`, `https://`, `asset://` match case-insensitively and need something after
  `//`. `data:` URIs must be `data:<image|audio>/<fmt>;base64,` with a lower-case format (Ark's
  rule). Besides the documented formats we accept `image/jpg` and `audio/x-wav`, the spellings
  hand-written code and Python's `mimetypes` produce; the base64 payload itself is left to Ark
  (decoding up to 64 MB on every create is not worth it).
"""

from __future__ import annotations

from typing import Any

from gateway.catalog import ModelSpec
from gateway.errors import GatewayError, invalid_parameter, missing_parameter

ITEM_TYPES: tuple[str, ...] = ("text", "image_url", "video_url", "audio_url", "draft_task")
IMAGE_ROLES: tuple[str, ...] = ("first_frame", "last_frame", "reference_image")
FRAME_ROLES: tuple[str, ...] = ("first_frame", "last_frame")
IMAGE_DATA_FORMATS: frozenset[str] = frozenset(
    {"jpeg", "jpg", "png", "webp", "bmp", "tiff", "gif", "heic", "heif"}
)
AUDIO_DATA_FORMATS: frozenset[str] = frozenset({"wav", "x-wav", "mp3", "mpeg"})

_INVALID_IMAGE_FORMAT = "InvalidImageURL.InvalidFormat"
_EMPTY_IMAGE_URL = "InvalidImageURL.EmptyURL"
_BASE64_MARK = ";base64,"
_LONGEST_FORMAT = 16  # bounds the search for ";base64," so a huge non-data URL is not scanned


def check_content(content: object, spec: ModelSpec) -> None:
    """Raise the first `content` violation Ark would answer synchronously with a 400."""
    if content is None:
        raise missing_parameter("content")
    if not isinstance(content, list) or not content:
        raise invalid_parameter("content", "must be a non-empty array of content items")
    images: list[tuple[int, object]] = []  # (index, role or None)
    videos = audios = 0
    for index, item in enumerate(content):
        if not isinstance(item, dict):
            raise invalid_parameter(f"content[{index}]", "each content item must be an object")
        kind = item.get("type")
        if kind == "text":
            text = item.get("text")
            if text is None:
                raise missing_parameter(f"content[{index}].text")
            if not isinstance(text, str):
                raise invalid_parameter(f"content[{index}].text", "must be a string")
        elif kind == "image_url":
            _check_image_url(_payload_url(item, index, "image_url"), index)
            role = item.get("role")
            if role is not None and not (isinstance(role, str) and role in IMAGE_ROLES):
                raise invalid_parameter(
                    f"content[{index}].role",
                    "an image role must be one of first_frame, last_frame, reference_image",
                )
            images.append((index, role))
        elif kind == "video_url":
            _check_media_url(_payload_url(item, index, "video_url"), index, "video_url")
            _check_reference_role(item, index, "reference_video")
            videos += 1
        elif kind == "audio_url":
            _check_media_url(_payload_url(item, index, "audio_url"), index, "audio_url")
            _check_reference_role(item, index, "reference_audio")
            audios += 1
        elif kind == "draft_task":
            _check_draft_task(item, index)
        elif kind is None:
            raise missing_parameter(f"content[{index}].type")
        else:
            raise invalid_parameter(
                f"content[{index}].type", f"must be one of {', '.join(ITEM_TYPES)}"
            )
    if images or videos or audios:
        _check_scenario(images, videos, audios, spec)


def _payload_url(item: dict[str, Any], index: int, key: str) -> object:
    payload = item.get(key)
    if payload is None:
        raise missing_parameter(f"content[{index}].{key}")
    if not isinstance(payload, dict):
        raise invalid_parameter(f"content[{index}].{key}", "must be an object with a `url`")
    return payload.get("url")


def _check_image_url(url: object, index: int) -> None:
    if url is None or url == "":
        raise _image_url_error(index, "the image URL is empty", _EMPTY_IMAGE_URL)
    if not isinstance(url, str):
        raise _image_url_error(index, "the image URL must be a string", _INVALID_IMAGE_FORMAT)
    if _is_remote(url):
        return
    payload_at = _data_payload_at(url, "image", IMAGE_DATA_FORMATS)
    if payload_at < 0:
        raise _image_url_error(
            index,
            "expected an http(s) URL, asset://<ID> or data:image/<format>;base64,<data> with a "
            "lower-case format among jpeg, png, webp, bmp, tiff, gif, heic, heif",
            _INVALID_IMAGE_FORMAT,
        )
    if payload_at == len(url):
        raise _image_url_error(index, "the base64 image data is empty", _EMPTY_IMAGE_URL)


def _image_url_error(index: int, detail: str, code: str) -> GatewayError:
    return invalid_parameter(f"content[{index}].image_url.url", detail, code=code)


def _check_media_url(url: object, index: int, key: str) -> None:
    param = f"content[{index}].{key}.url"
    if url is None:
        raise missing_parameter(param)
    if isinstance(url, str) and _is_remote(url):
        return
    if key == "audio_url" and isinstance(url, str):
        payload_at = _data_payload_at(url, "audio", AUDIO_DATA_FORMATS)
        if 0 <= payload_at < len(url):
            return
        raise invalid_parameter(
            param, "expected an http(s) URL, asset://<ID> or data:audio/<wav|mp3>;base64,<data>"
        )
    # Video takes no data: URI (seedance-native.md §5.2).
    raise invalid_parameter(param, "expected an http(s) URL or asset://<ID>")


def _check_reference_role(item: dict[str, Any], index: int, expected: str) -> None:
    role = item.get("role")
    if role is None:
        raise missing_parameter(f"content[{index}].role")
    if role != expected:
        raise invalid_parameter(f"content[{index}].role", f"must be {expected}")


def _check_draft_task(item: dict[str, Any], index: int) -> None:
    draft = item.get("draft_task")
    if draft is None:
        raise missing_parameter(f"content[{index}].draft_task")
    if not isinstance(draft, dict):
        raise invalid_parameter(f"content[{index}].draft_task", "must be an object with an `id`")
    task_id = draft.get("id")
    if task_id is None:
        raise missing_parameter(f"content[{index}].draft_task.id")
    if not isinstance(task_id, str) or not task_id:
        raise invalid_parameter(f"content[{index}].draft_task.id", "must be a non-empty string")


def _is_remote(url: str) -> bool:
    head = url[:8].lower()
    if head.startswith("http://"):
        return len(url) > 7
    return head in ("https://", "asset://") and len(url) > 8


def _data_payload_at(url: str, media: str, formats: frozenset[str]) -> int:
    """Where the base64 payload of a `data:<media>/<fmt>;base64,` URI starts, or -1."""
    prefix = "data:" + media + "/"
    if not url.startswith(prefix):
        return -1
    start = len(prefix)
    mark = url.find(_BASE64_MARK, start, start + _LONGEST_FORMAT + len(_BASE64_MARK))
    if mark < 0 or url[start:mark] not in formats:
        return -1
    return mark + len(_BASE64_MARK)


def _check_scenario(
    images: list[tuple[int, object]], videos: int, audios: int, spec: ModelSpec
) -> None:
    """First frame, first+last frame and multimodal reference are mutually exclusive."""
    frames = [role for _, role in images if role in FRAME_ROLES]
    references = sum(1 for _, role in images if role == "reference_image")
    if frames and (references or videos or audios):
        raise invalid_parameter(
            "content",
            "first_frame/last_frame images cannot be combined with reference images, videos "
            "or audios in one request",
        )
    unroled = [index for index, role in images if role is None]
    if unroled and (len(images) > 1 or videos or audios):
        # A role may be omitted only by a lone first-frame image.
        raise missing_parameter(f"content[{unroled[0]}].role")
    if frames or unroled:
        _check_frames(images)
        return
    if references > spec.max_images:
        raise invalid_parameter(
            "content", f"model {spec.name} accepts at most {spec.max_images} reference images"
        )
    if videos > spec.max_videos:
        raise invalid_parameter(
            "content", f"model {spec.name} accepts at most {spec.max_videos} reference videos"
        )
    if audios > spec.max_audios:
        raise invalid_parameter(
            "content", f"model {spec.name} accepts at most {spec.max_audios} reference audios"
        )
    if audios and not references and not videos and not spec.audio_only:
        raise invalid_parameter(
            "content",
            f"model {spec.name} needs at least one reference image or video alongside audio",
        )


def _check_frames(images: list[tuple[int, object]]) -> None:
    if len(images) > 2:
        raise invalid_parameter(
            "content", "first/last frame mode takes at most 2 images (first_frame, last_frame)"
        )
    if len(images) == 2:
        if {images[0][1], images[1][1]} != {"first_frame", "last_frame"}:
            raise invalid_parameter(
                "content", "first/last frame mode needs one first_frame and one last_frame image"
            )
        return
    index, role = images[0]
    if role == "last_frame":
        raise invalid_parameter(
            f"content[{index}].role", "a last_frame image needs a first_frame image alongside it"
        )
