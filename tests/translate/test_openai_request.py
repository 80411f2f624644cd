"""OpenAI create (JSON or multipart) → the native Ark create body, per translation.md §4."""

from __future__ import annotations

import base64
import hashlib
import struct
import zlib
from collections.abc import Mapping
from typing import Any

import pytest

from gateway.catalog import OPENAI_ALIASES, RESELLER_ALIASES, Catalogue, preset_models
from gateway.errors import GatewayError
from gateway.translate.openai_form import unflatten_form
from gateway.translate.openai_request import OpenAICreate, UploadedFile, translate_create
from gateway.translate.seedance_validation import validate_create

CATALOGUE = Catalogue([*preset_models("volcengine", "ark")], {**OPENAI_ALIASES, **RESELLER_ALIASES})
# The seed document's reseller as its own upstream: 5–15 s, no -1, ratios 16:9 9:16 1:1.
RESELLER = Catalogue(preset_models("wisgate", "w"), {"sora-2": "doubao-seedance-2-fast"})

FAST = "doubao-seedance-2-0-fast-260128"
STANDARD = "doubao-seedance-2-0-260128"
V25 = "doubao-seedance-2-5-260628"


def png_1x1() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 6, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(b"\x00\xff\x00\x00\xff")) + chunk(b"IEND", b""))


PNG = png_1x1()
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00\xff\xd9"
WEBP = b"RIFF\x1a\x00\x00\x00WEBPVP8L\x0d\x00\x00\x00\x2f\x00\x00\x00\x10\x07\x10\x11\x11\x88\x88"


def data_url(mime: str, data: bytes) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def translate(
    fields: Mapping[str, Any],
    files: Mapping[str, UploadedFile] | None = None,
    *,
    catalogue: Catalogue = CATALOGUE,
    size_policy: str = "nearest",
    duration_policy: str = "clamp",
) -> OpenAICreate:
    return translate_create(
        fields, files=files or {}, catalogue=catalogue,
        size_policy=size_policy, duration_policy=duration_policy,  # type: ignore[arg-type]
    )


def body_of(fields: Mapping[str, Any], **kwargs: Any) -> dict[str, Any]:
    return translate(fields, **kwargs).body


def fails(fields: Mapping[str, Any], **kwargs: Any) -> GatewayError:
    with pytest.raises(GatewayError) as caught:
        translate(fields, **kwargs)
    assert caught.value.status == 400
    return caught.value


def text(prompt: str = "a cat") -> dict[str, Any]:
    return {"type": "text", "text": prompt}


def image(url: str, role: str) -> dict[str, Any]:
    return {"type": "image_url", "image_url": {"url": url}, "role": role}


def video(url: str) -> dict[str, Any]:
    return {"type": "video_url", "video_url": {"url": url}, "role": "reference_video"}


def audio(url: str) -> dict[str, Any]:
    return {"type": "audio_url", "audio_url": {"url": url}, "role": "reference_audio"}


# --- the whole body ---------------------------------------------------------------------------

def test_minimal_create() -> None:
    created = translate({"prompt": "a cat"})
    assert created.body == {"model": FAST, "content": [text()], "return_last_frame": True}
    assert created.spec.name == "sora-2"
    assert (created.prompt, created.requested_size, created.requested_seconds) == (
        "a cat", None, "5")


def test_the_python_sdk_create() -> None:
    created = translate({"prompt": "a cat", "model": "sora-2-pro", "seconds": "8",
                         "size": "1792x1024"})
    assert created.body == {
        "model": STANDARD, "content": [text()], "resolution": "1080p", "ratio": "16:9",
        "duration": 8, "return_last_frame": True,
    }
    assert (created.requested_size, created.requested_seconds) == ("1920x1080", "8")


def test_everything_at_once() -> None:
    created = translate({
        "prompt": "a cat", "model": "sora-2-pro", "size": "720x1280", "seconds": "12",
        "images": ["https://x/1.png"], "videos": ["https://x/v.mp4"],
        "audios": ["https://x/a.mp3"], "seed": "7", "generate_audio": "false",
        "watermark": True, "priority": 2, "tools": [{"type": "web_search"}],
        "callback_url": "https://hooks/x", "user": "alice", "execution_expires_after": 7200,
        "service_tier": "default", "quality": "high", "metadata": {"team": "a"},
    })
    assert created.body == {
        "model": STANDARD,
        "content": [text(), image("https://x/1.png", "reference_image"),
                    video("https://x/v.mp4"), audio("https://x/a.mp3")],
        "resolution": "720p", "ratio": "9:16", "duration": 12, "seed": 7,
        "generate_audio": False, "watermark": True, "service_tier": "default",
        "execution_expires_after": 7200, "priority": 2, "tools": [{"type": "web_search"}],
        "callback_url": "https://hooks/x",
        "safety_identifier": hashlib.sha256(b"alice").hexdigest(),
        "return_last_frame": True,
    }
    validate_create(created.body, created.spec)


# --- model ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("model", "name", "upstream_model"), [
    (None, "sora-2", FAST),
    ("", "sora-2", FAST),
    ("sora-2", "sora-2", FAST),
    ("sora-2-pro", "sora-2-pro", STANDARD),
    ("doubao-seedance-2.0", "doubao-seedance-2.0", STANDARD),
    ("doubao-seedance-2-fast", "doubao-seedance-2-fast", FAST),
    (STANDARD, STANDARD, STANDARD),
    (V25, V25, V25),
    ("doubao-seedance-2-0-mini-260615", "doubao-seedance-2-0-mini-260615",
     "doubao-seedance-2-0-mini-260615"),
])
def test_model_resolves_through_the_catalogue(
    model: str | None, name: str, upstream_model: str
) -> None:
    created = translate({"prompt": "p", "model": model})
    assert (created.spec.name, created.body["model"]) == (name, upstream_model)


def test_reseller_catalogue_keeps_reseller_ids() -> None:
    created = translate({"prompt": "p"}, catalogue=RESELLER)
    assert created.body["model"] == "doubao-seedance-2-fast"


@pytest.mark.parametrize(("model", "code"), [
    ("sora-3", "model_not_found"),
    ("gpt-4o", "model_not_found"),
    ("SORA-2", "model_not_found"),
    (5, "invalid_type"),
    (["sora-2"], "invalid_type"),
])
def test_unknown_model(model: object, code: str) -> None:
    error = fails({"prompt": "p", "model": model})
    assert (error.code, error.param) == (code, "model")


def test_default_model_missing_from_catalogue() -> None:
    bare = Catalogue(preset_models("volcengine", "ark"), {})
    error = fails({"prompt": "p"}, catalogue=bare)
    assert (error.code, error.param) == ("model_not_found", "model")
    assert "sora-2" in error.message


# --- prompt -----------------------------------------------------------------------------------

@pytest.mark.parametrize(("fields", "code"), [
    ({}, "missing_required_parameter"),
    ({"prompt": None}, "missing_required_parameter"),
    ({"prompt": 5}, "invalid_type"),
    ({"prompt": ["a"]}, "invalid_type"),
    ({"prompt": {"text": "a"}}, "invalid_type"),
    ({"prompt": ""}, "invalid_value"),
    ({"prompt": "   \n"}, "invalid_value"),
    ({"prompt": "x" * 32001}, "invalid_value"),
])
def test_prompt_errors(fields: dict[str, Any], code: str) -> None:
    error = fails(fields)
    assert (error.code, error.param) == (code, "prompt")


@pytest.mark.parametrize("prompt", ["x" * 32000, "a cat --rs 1080p --dur 4", " spaced ", "猫"])
def test_prompt_is_forwarded_untouched(prompt: str) -> None:
    assert body_of({"prompt": prompt})["content"][0] == text(prompt)


def test_prompt_sent_as_a_file_part() -> None:
    error = fails({}, files={"prompt": UploadedFile("p.txt", "text/plain", b"a cat")})
    assert (error.code, error.param) == ("invalid_type", "prompt")


# --- multipart and JSON are the same request --------------------------------------------------

EQUIVALENT = [
    ([("prompt", "p"), ("seconds", "8")], {"prompt": "p", "seconds": 8}),
    ([("prompt", "p"), ("seconds", "8")], {"prompt": "p", "seconds": "8"}),
    ([("prompt", "p"), ("size", "1280x720"), ("model", "sora-2-pro")],
     {"prompt": "p", "size": "1280x720", "model": "sora-2-pro"}),
    ([("prompt", "p"), ("seed", "42"), ("generate_audio", "false"), ("watermark", "true")],
     {"prompt": "p", "seed": 42, "generate_audio": False, "watermark": True}),
    ([("prompt", "p"), ("priority", "3"), ("execution_expires_after", "3600")],
     {"prompt": "p", "priority": 3, "execution_expires_after": 3600}),
    ([("prompt", "p"), ("return_last_frame", "false")],
     {"prompt": "p", "return_last_frame": False}),
    ([("prompt", "p"), ("camera_fixed", "0")], {"prompt": "p", "camera_fixed": False}),
    ([("prompt", "p"), ("input_reference[image_url]", "https://x/a.png")],
     {"prompt": "p", "input_reference": {"image_url": "https://x/a.png"}}),
    ([("prompt", "p"), ("images[]", "https://x/1.png"), ("images[]", "https://x/2.png")],
     {"prompt": "p", "images": ["https://x/1.png", "https://x/2.png"]}),
    ([("prompt", "p"), ("images[][url]", "https://x/1.png"), ("mode", "r2v")],
     {"prompt": "p", "images": [{"url": "https://x/1.png"}], "mode": "r2v"}),
    ([("prompt", "p"), ("tools[][type]", "web_search")],
     {"prompt": "p", "tools": [{"type": "web_search"}]}),
    ([("prompt", "p"), ("extra_body[watermark]", "true"), ("extra_body[seed]", "9")],
     {"prompt": "p", "extra_body": {"watermark": True, "seed": 9}}),
    ([("prompt", "p"), ("metadata[seed]", "9"), ("metadata[generate_audio]", "true")],
     {"prompt": "p", "metadata": {"seed": 9, "generate_audio": True}}),
    ([("prompt", "p"), ("duration", "6")], {"prompt": "p", "duration": 6}),
    ([("prompt", "p"), ("videos[]", "https://x/v.mp4"), ("audios[]", "https://x/a.wav")],
     {"prompt": "p", "videos": ["https://x/v.mp4"], "audios": ["https://x/a.wav"]}),
]


@pytest.mark.parametrize(("items", "json_body"), EQUIVALENT)
def test_multipart_and_json_give_identical_bodies(
    items: list[tuple[str, str]], json_body: dict[str, Any]
) -> None:
    assert body_of(unflatten_form(items)) == body_of(json_body)


# --- seconds / duration -----------------------------------------------------------------------

@pytest.mark.parametrize(("model", "fields", "policy", "duration"), [
    ("sora-2", {"seconds": "4"}, "clamp", 4),
    ("sora-2", {"seconds": "8"}, "clamp", 8),
    ("sora-2", {"seconds": "12"}, "strict", 12),
    ("sora-2", {"seconds": 4}, "strict", 4),
    ("sora-2", {"seconds": 8.0}, "strict", 8),
    ("sora-2", {"seconds": "8.0"}, "strict", 8),
    ("sora-2", {"seconds": " 8 "}, "strict", 8),
    ("sora-2", {"seconds": "15"}, "strict", 15),
    ("sora-2", {"seconds": "16"}, "clamp", 15),
    ("sora-2", {"seconds": "20"}, "clamp", 15),
    ("sora-2", {"seconds": 3}, "clamp", 4),
    ("sora-2", {"seconds": "1"}, "clamp", 4),
    ("sora-2", {"seconds": "-1"}, "strict", -1),
    ("sora-2", {"seconds": -1}, "clamp", -1),
    ("sora-2", {"seconds": "1000000"}, "clamp", 15),
    (V25, {"seconds": "30"}, "strict", 30),
    (V25, {"seconds": "20"}, "strict", 20),
    (V25, {"seconds": "31"}, "clamp", 30),
    ("sora-2", {"duration": 10}, "strict", 10),
    ("sora-2", {"duration": "10"}, "strict", 10),
    ("sora-2", {"duration": 10, "seconds": "4"}, "strict", 10),
    ("sora-2", {"duration": None, "seconds": "4"}, "strict", 4),
    ("sora-2", {"duration": "", "seconds": "4"}, "strict", 4),
    ("sora-2", {"extra_body": {"duration": 7}}, "strict", 7),
    ("sora-2", {"metadata": {"duration": "6"}}, "strict", 6),
    ("sora-2", {"metadata": {"duration": "6"}, "duration": 9}, "strict", 9),
])
def test_duration(model: str, fields: dict[str, Any], policy: str, duration: int) -> None:
    body = body_of({"prompt": "p", "model": model, **fields}, duration_policy=policy)
    assert body["duration"] == duration


@pytest.mark.parametrize(("seconds", "policy", "duration"), [
    ("4", "clamp", 5),
    (4, "clamp", 5),
    ("5", "strict", 5),
    ("15", "strict", 15),
    ("16", "clamp", 15),
])
def test_duration_on_the_resellers_5_to_15_range(
    seconds: object, policy: str, duration: int
) -> None:
    body = body_of({"prompt": "p", "seconds": seconds}, catalogue=RESELLER,
                   duration_policy=policy)
    assert body["duration"] == duration


@pytest.mark.parametrize(("catalogue", "model", "fields", "policy", "code", "param"), [
    (RESELLER, "sora-2", {"seconds": "4"}, "strict", "invalid_value", "seconds"),
    (RESELLER, "sora-2", {"seconds": "16"}, "strict", "invalid_value", "seconds"),
    (RESELLER, "sora-2", {"seconds": "-1"}, "clamp", "invalid_value", "seconds"),
    (RESELLER, "sora-2", {"seconds": "-1"}, "strict", "invalid_value", "seconds"),
    (CATALOGUE, "sora-2", {"seconds": "16"}, "strict", "invalid_value", "seconds"),
    (CATALOGUE, "sora-2", {"seconds": "3"}, "strict", "invalid_value", "seconds"),
    (CATALOGUE, V25, {"seconds": "31"}, "strict", "invalid_value", "seconds"),
    (CATALOGUE, "sora-2", {"seconds": "8.5"}, "clamp", "invalid_value", "seconds"),
    (CATALOGUE, "sora-2", {"seconds": "8.5"}, "strict", "invalid_value", "seconds"),
    (CATALOGUE, "sora-2", {"seconds": 8.5}, "clamp", "invalid_value", "seconds"),
    (CATALOGUE, "sora-2", {"seconds": "0"}, "clamp", "invalid_value", "seconds"),
    (CATALOGUE, "sora-2", {"seconds": "-3"}, "clamp", "invalid_value", "seconds"),
    (CATALOGUE, "sora-2", {"seconds": "eight"}, "clamp", "invalid_type", "seconds"),
    (CATALOGUE, "sora-2", {"seconds": "8s"}, "clamp", "invalid_type", "seconds"),
    (CATALOGUE, "sora-2", {"seconds": "1e1"}, "clamp", "invalid_type", "seconds"),
    (CATALOGUE, "sora-2", {"seconds": "nan"}, "clamp", "invalid_type", "seconds"),
    (CATALOGUE, "sora-2", {"seconds": True}, "clamp", "invalid_type", "seconds"),
    (CATALOGUE, "sora-2", {"seconds": ["8"]}, "clamp", "invalid_type", "seconds"),
    (CATALOGUE, "sora-2", {"seconds": float("inf")}, "clamp", "invalid_value", "seconds"),
    (CATALOGUE, "sora-2", {"duration": 4.5}, "clamp", "invalid_value", "duration"),
    (CATALOGUE, "sora-2", {"duration": "x", "seconds": "8"}, "clamp", "invalid_type",
     "duration"),
])
def test_duration_errors(
    catalogue: Catalogue, model: str, fields: dict[str, Any], policy: str, code: str, param: str,
) -> None:
    error = fails({"prompt": "p", "model": model, **fields}, catalogue=catalogue,
                  duration_policy=policy)
    assert (error.code, error.param) == (code, param)


@pytest.mark.parametrize(("model", "fields", "requested"), [
    ("sora-2", {}, "5"),
    ("sora-2", {"seconds": "8"}, "8"),
    ("sora-2", {"seconds": "20"}, "15"),  # what will be rendered, after clamping
    ("sora-2", {"seconds": "-1"}, None),
    (V25, {}, None),  # 2.5's default is "the model chooses"
    (V25, {"seconds": 12}, "12"),
])
def test_requested_seconds(model: str, fields: dict[str, Any], requested: str | None) -> None:
    assert translate({"prompt": "p", "model": model, **fields}).requested_seconds == requested


def test_no_seconds_leaves_ark_its_default() -> None:
    assert "duration" not in body_of({"prompt": "p"})


# --- size -------------------------------------------------------------------------------------

@pytest.mark.parametrize(("model", "fields", "policy", "expected", "requested"), [
    ("sora-2", {"size": "1280x720"}, "strict", ("720p", "16:9"), "1280x720"),
    ("sora-2", {"size": "720x1280"}, "strict", ("720p", "9:16"), "720x1280"),
    ("sora-2-pro", {"size": "1792x1024"}, "strict", ("1080p", "16:9"), "1920x1080"),
    ("sora-2-pro", {"size": "1024x1792"}, "strict", ("1080p", "9:16"), "1080x1920"),
    ("sora-2", {"size": "1792x1024"}, "nearest", ("720p", "16:9"), "1280x720"),
    ("sora-2", {"size": "1920x1080"}, "nearest", ("720p", "16:9"), "1280x720"),
    ("sora-2", {"size": "1000x1000"}, "nearest", ("720p", "1:1"), "960x960"),
    ("sora-2", {"size": "3840x2160"}, "nearest", ("720p", "16:9"), "1280x720"),
    (V25, {"size": "854x480"}, "strict", ("480p", "16:9"), "854x480"),
    (STANDARD, {"size": "854x480"}, "strict", ("480p", "16:9"), "864x496"),
    # Native knobs override what size implied.
    ("sora-2", {"size": "1280x720", "resolution": "480p"}, "strict", ("480p", "16:9"),
     "864x496"),
    ("sora-2", {"size": "1280x720", "ratio": "adaptive"}, "strict", ("720p", "adaptive"),
     "1280x720"),
    ("sora-2", {"size": "1920x1080", "resolution": "720p", "ratio": "21:9"}, "strict",
     ("720p", "21:9"), "1470x630"),
    ("sora-2", {"resolution": "480p", "ratio": "1:1"}, "strict", ("480p", "1:1"), "640x640"),
    ("sora-2", {"size": "1280x720", "extra_body": {"ratio": "9:16"}}, "strict",
     ("720p", "9:16"), "720x1280"),
    ("sora-2", {"size": "1280x720", "metadata": {"resolution": "480p"}}, "strict",
     ("480p", "16:9"), "864x496"),
])
def test_size(
    model: str, fields: dict[str, Any], policy: str, expected: tuple[str, str], requested: str,
) -> None:
    created = translate({"prompt": "p", "model": model, **fields}, size_policy=policy)
    assert (created.body["resolution"], created.body["ratio"]) == expected
    assert created.requested_size == requested


@pytest.mark.parametrize(("fields", "policy", "code"), [
    ({"size": "1920x1080"}, "strict", "invalid_value"),
    ({"size": "3840x2160"}, "strict", "invalid_value"),
    ({"size": "1280x720x1"}, "nearest", "invalid_value"),
    ({"size": "0x720"}, "nearest", "invalid_value"),
    ({"size": "big"}, "nearest", "invalid_value"),
    ({"size": 1280}, "nearest", "invalid_type"),
    ({"size": ["1280x720"]}, "nearest", "invalid_type"),
    # Both overridden: size is only checked for form.
    ({"size": "nope", "resolution": "720p", "ratio": "16:9"}, "nearest", "invalid_value"),
])
def test_size_errors(fields: dict[str, Any], policy: str, code: str) -> None:
    error = fails({"prompt": "p", **fields}, size_policy=policy)
    assert (error.code, error.param) == (code, "size")


def test_strict_size_is_moot_when_both_knobs_override_it() -> None:
    body = body_of({"prompt": "p", "size": "1920x1080", "resolution": "720p", "ratio": "16:9"},
                   size_policy="strict")
    assert (body["resolution"], body["ratio"]) == ("720p", "16:9")


def test_no_size_leaves_ark_its_defaults() -> None:
    created = translate({"prompt": "p", "size": ""})
    assert "resolution" not in created.body and "ratio" not in created.body
    assert created.requested_size is None


# --- input_reference --------------------------------------------------------------------------

@pytest.mark.parametrize(("upload", "mime"), [
    (UploadedFile("ref.png", "image/png", PNG), "image/png"),
    (UploadedFile("upload", "application/octet-stream", PNG), "image/png"),
    (UploadedFile("upload", "application/octet-stream", JPEG), "image/jpeg"),
    (UploadedFile(None, None, JPEG), "image/jpeg"),
    (UploadedFile("ref.png", "image/png", WEBP), "image/webp"),  # the bytes decide
    (UploadedFile("blob", "image/jpeg", WEBP), "image/webp"),
    (UploadedFile("x.gif", "image/gif", b"GIF89a\x01\x00\x01\x00"), "image/gif"),
])
def test_input_reference_file_part(upload: UploadedFile, mime: str) -> None:
    body = body_of({"prompt": "p"}, files={"input_reference": upload})
    assert body["content"] == [text("p"), image(data_url(mime, upload.data), "first_frame")]


@pytest.mark.parametrize("data", [b"", b"hello", b"%PDF-1.7", b"\x00\x00\x00\x18ftypmp42"])
def test_input_reference_that_is_not_an_image(data: bytes) -> None:
    upload = UploadedFile("ref.png", "image/png", data)
    error = fails({"prompt": "p"}, files={"input_reference": upload})
    assert (error.code, error.param) == ("invalid_value", "input_reference")


@pytest.mark.parametrize(("reference", "url"), [
    ({"image_url": "https://x/a.png"}, "https://x/a.png"),
    ({"image_url": "data:image/png;base64,AAAA"}, "data:image/png;base64,AAAA"),
    ({"image_url": {"url": "https://x/a.png"}}, "https://x/a.png"),
    ({"image_url": "asset://asset-123"}, "asset://asset-123"),
    ({"url": "https://x/a.png"}, "https://x/a.png"),
    ({"image_url": "https://x/a.png", "file_id": None}, "https://x/a.png"),
    ("https://x/a.png", "https://x/a.png"),
    ("data:image/jpeg;base64,AAAA", "data:image/jpeg;base64,AAAA"),
])
def test_input_reference_image_url(reference: object, url: str) -> None:
    body = body_of({"prompt": "p", "input_reference": reference})
    assert body["content"] == [text("p"), image(url, "first_frame")]


def test_input_reference_image_url_from_multipart() -> None:
    fields = unflatten_form([("prompt", "p"), ("input_reference[image_url]", "https://x/a.png")])
    assert body_of(fields)["content"][1] == image("https://x/a.png", "first_frame")


@pytest.mark.parametrize("fields", [
    {"input_reference": {"file_id": "file-abc123"}},
    {"input_reference": {"file_id": "file-abc123", "image_url": "https://x/a.png"}},
    unflatten_form([("input_reference[file_id]", "file-abc123")]),
])
def test_input_reference_file_id_is_unsupported(fields: dict[str, Any]) -> None:
    error = fails({"prompt": "p", **fields})
    assert (error.code, error.param) == ("unsupported_parameter", "input_reference")
    assert "Files API" in error.message and "image_url" in error.message


@pytest.mark.parametrize(("reference", "code"), [
    ({}, "invalid_value"),
    ({"image_url": ""}, "invalid_value"),
    ({"image_url": 5}, "invalid_value"),
    ({"foo": "bar"}, "invalid_value"),
    (["https://x/a.png"], "invalid_value"),
    (5, "invalid_value"),
    ("a picture of a cat", "invalid_type"),
    ("ftp://x/a.png", "invalid_type"),
])
def test_input_reference_errors(reference: object, code: str) -> None:
    error = fails({"prompt": "p", "input_reference": reference})
    assert (error.code, error.param) == (code, "input_reference")


def test_input_reference_file_and_url_together() -> None:
    error = fails({"prompt": "p", "input_reference": {"image_url": "https://x/a.png"}},
                  files={"input_reference": UploadedFile("a.png", "image/png", PNG)})
    assert (error.code, error.param) == ("invalid_value", "input_reference")


# --- images / videos / audios / mode ----------------------------------------------------------

A, B, C = "https://x/a.png", "https://x/b.png", "https://x/c.png"
V, S = "https://x/v.mp4", "https://x/s.mp3"


@pytest.mark.parametrize(("fields", "media"), [
    ({"images": [A]}, [image(A, "first_frame")]),
    ({"images": [A, B]}, [image(A, "first_frame"), image(B, "last_frame")]),
    ({"images": [A, B, C]}, [image(A, "reference_image"), image(B, "reference_image"),
                             image(C, "reference_image")]),
    ({"images": [A], "videos": [V]}, [image(A, "reference_image"), video(V)]),
    ({"images": [A], "audios": [S]}, [image(A, "reference_image"), audio(S)]),
    ({"videos": [V]}, [video(V)]),
    ({"videos": [V], "audios": [S]}, [video(V), audio(S)]),
    ({"audios": [S]}, [audio(S)]),
    ({"images": [A], "mode": "r2v"}, [image(A, "reference_image")]),
    ({"images": [A, B], "mode": "r2v"}, [image(A, "reference_image"),
                                         image(B, "reference_image")]),
    ({"images": [A, B], "mode": "i2v"}, [image(A, "first_frame"), image(B, "last_frame")]),
    ({"images": [A], "mode": "I2V"}, [image(A, "first_frame")]),
    ({"images": [A], "mode": "R2V"}, [image(A, "reference_image")]),
    ({"images": [A], "mode": ""}, [image(A, "first_frame")]),
    ({"mode": "r2v"}, []),
    ({"images": []}, []),
    ({"images": A}, [image(A, "first_frame")]),
    ({"images": {"1": B, "0": A}}, [image(A, "first_frame"), image(B, "last_frame")]),
    ({"images": [{"url": A}, {"image_url": B}]}, [image(A, "first_frame"),
                                                  image(B, "last_frame")]),
    ({"images": [{"image_url": {"url": A}}]}, [image(A, "first_frame")]),
    ({"images": [{"type": "image_url", "image_url": {"url": A}, "role": "last_frame"}]},
     [image(A, "first_frame")]),
    ({"videos": [{"url": V}], "audios": [{"audio_url": {"url": S}}]}, [video(V), audio(S)]),
    ({"videos": [{"video_url": V}]}, [video(V)]),
    ({"extra_body": {"images": [A, B, C]}}, [image(A, "reference_image"),
                                             image(B, "reference_image"),
                                             image(C, "reference_image")]),
    ({"extra_body": {"mode": "r2v"}, "images": [A]}, [image(A, "reference_image")]),
    ({"metadata": {"mode": "r2v"}, "images": [A]}, [image(A, "reference_image")]),
    ({"metadata": {"images": A}}, []),  # metadata carries knobs, not media
    # input_reference is prepended to images[].
    ({"input_reference": {"image_url": A}, "images": [B]},
     [image(A, "first_frame"), image(B, "last_frame")]),
    ({"input_reference": {"image_url": A}, "images": [B, C]},
     [image(A, "reference_image"), image(B, "reference_image"), image(C, "reference_image")]),
    ({"input_reference": {"image_url": A}, "mode": "r2v"}, [image(A, "reference_image")]),
    ({"input_reference": {"image_url": A}, "videos": [V]}, [image(A, "reference_image"),
                                                           video(V)]),
])
def test_media_and_mode(fields: dict[str, Any], media: list[dict[str, Any]]) -> None:
    assert body_of({"prompt": "p", **fields})["content"] == [text("p"), *media]


@pytest.mark.parametrize(("fields", "code", "param"), [
    ({"mode": "t2v"}, "invalid_value", "mode"),
    ({"mode": 1}, "invalid_type", "mode"),
    ({"mode": "i2v"}, "invalid_value", "mode"),
    ({"mode": "i2v", "images": [A, B, C]}, "invalid_value", "mode"),
    ({"mode": "i2v", "images": [A], "videos": [V]}, "invalid_value", "mode"),
    ({"mode": "i2v", "images": [A], "audios": [S]}, "invalid_value", "mode"),
    ({"mode": "i2v", "input_reference": {"image_url": A}, "images": [B, C]}, "invalid_value",
     "mode"),
    ({"images": 5}, "invalid_type", "images"),
    ({"videos": {"url": V}}, "invalid_type", "videos"),
    ({"images": [5]}, "invalid_value", "images"),
    ({"images": [""]}, "invalid_value", "images"),
    ({"images": [{"foo": A}]}, "invalid_value", "images"),
    ({"audios": [{"video_url": S}]}, "invalid_value", "audios"),
    ({"images": [{"file_id": "file-1"}]}, "unsupported_parameter", "images"),
    ({"videos": [{"file_id": "file-1"}]}, "unsupported_parameter", "videos"),
])
def test_media_errors(fields: dict[str, Any], code: str, param: str) -> None:
    error = fails({"prompt": "p", **fields})
    assert (error.code, error.param) == (code, param)


# --- native knobs: where they come from and how they are typed --------------------------------

@pytest.mark.parametrize(("fields", "seed"), [
    ({"metadata": {"seed": "1"}}, 1),
    ({"extra_body": {"seed": 2}}, 2),
    ({"seed": 3}, 3),
    ({"metadata": {"seed": "1"}, "extra_body": {"seed": 2}}, 2),
    ({"metadata": {"seed": "1"}, "seed": 3}, 3),
    ({"extra_body": {"seed": 2}, "seed": 3}, 3),
    ({"metadata": {"seed": "1"}, "extra_body": {"seed": 2}, "seed": 3}, 3),
    ({"metadata": {"seed": "1"}, "extra_body": {"seed": 2}, "seed": None}, 2),
    ({"metadata": {"seed": "1"}, "extra_body": {"seed": None}, "seed": ""}, 1),
    ({"metadata": {"seed": "1"}, "extra_body": {"seed": " "}}, 1),
])
def test_knob_precedence(fields: dict[str, Any], seed: int) -> None:
    assert body_of({"prompt": "p", **fields})["seed"] == seed


@pytest.mark.parametrize(("knob", "value", "expected"), [
    *((knob, raw, parsed) for knob in ("generate_audio", "watermark", "return_last_frame",
                                       "camera_fixed")
      for raw, parsed in (("true", True), ("false", False), ("1", True), ("0", False),
                          ("TRUE", True), ("False", False), (" true ", True),
                          (True, True), (False, False))),
    ("seed", "42", 42), ("seed", "-1", -1), ("seed", "+7", 7), ("seed", " 9 ", 9),
    ("seed", 42, 42), ("seed", 1.5, 1.5), ("seed", True, True),  # JSON types pass as sent
    ("priority", "0", 0), ("priority", "9", 9), ("priority", 4, 4),
    ("execution_expires_after", "3600", 3600), ("execution_expires_after", 86400, 86400),
    ("generate_audio", 1, 1),  # a JSON number is left for the native validator to judge
    ("tools", '[{"type": "web_search"}]', [{"type": "web_search"}]),
    ("tools", '{"type": "web_search"}', [{"type": "web_search"}]),
    ("tools", "web_search", [{"type": "web_search"}]),
    ("tools", "web_search, other", [{"type": "web_search"}, {"type": "other"}]),
    ("tools", [{"type": "web_search"}], [{"type": "web_search"}]),
    ("resolution", "1080p", "1080p"),
    ("ratio", "21:9", "21:9"),
    ("service_tier", "flex", "flex"),
    ("callback_url", "https://hooks.example/cb?s=1", "https://hooks.example/cb?s=1"),
    ("safety_identifier", "user-1", "user-1"),
    ("output_format", "mov", "mov"),
    ("omni_reference_task_type", "edit", "edit"),
])
def test_knob_coercion(knob: str, value: object, expected: object) -> None:
    for fields in ({knob: value}, {"extra_body": {knob: value}}, {"metadata": {knob: value}}):
        assert body_of({"prompt": "p", **fields})[knob] == expected


@pytest.mark.parametrize(("knob", "value", "code"), [
    ("generate_audio", "yes", "invalid_type"),
    ("watermark", "on", "invalid_type"),
    ("return_last_frame", "2", "invalid_type"),
    ("camera_fixed", "truthy", "invalid_type"),
    ("seed", "4.5", "invalid_type"),
    ("seed", "abc", "invalid_type"),
    ("priority", "1e3", "invalid_type"),
    ("execution_expires_after", "1h", "invalid_type"),
    ("tools", "[not json", "invalid_value"),
])
def test_knob_coercion_errors(knob: str, value: str, code: str) -> None:
    for fields in ({knob: value}, {"metadata": {knob: value}}):
        error = fails({"prompt": "p", **fields})
        assert (error.code, error.param) == (code, knob)


@pytest.mark.parametrize(("fields", "param"), [
    ({"metadata": "seed=1"}, "metadata"),
    ({"metadata": ["seed"]}, "metadata"),
    ({"extra_body": '{"seed": 1}'}, "extra_body"),
])
def test_layers_must_be_objects(fields: dict[str, Any], param: str) -> None:
    error = fails({"prompt": "p", **fields})
    assert (error.code, error.param) == ("invalid_type", param)


# --- user, return_last_frame, OpenAI-only fields ----------------------------------------------

@pytest.mark.parametrize(("fields", "identifier"), [
    ({"user": "alice"}, hashlib.sha256(b"alice").hexdigest()),
    ({"user": "用户"}, hashlib.sha256("用户".encode()).hexdigest()),
    ({"user": "alice", "safety_identifier": "given"}, "given"),
    ({"user": "alice", "metadata": {"safety_identifier": "meta"}}, "meta"),
    ({"user": "alice", "extra_body": {"safety_identifier": "extra"}}, "extra"),
    ({"extra_body": {"user": "bob"}}, hashlib.sha256(b"bob").hexdigest()),
    ({"user": ""}, None),
    ({}, None),
])
def test_user_becomes_a_safety_identifier(fields: dict[str, Any], identifier: str | None) -> None:
    assert body_of({"prompt": "p", **fields}).get("safety_identifier") == identifier


@pytest.mark.parametrize("user", ["A", "user-123", "x" * 5000, "alice@example.com"])
def test_user_hash_fits_arks_64_char_limit(user: str) -> None:
    identifier = body_of({"prompt": "p", "user": user})["safety_identifier"]
    assert len(identifier) == 64 and user not in identifier


def test_user_must_be_a_string() -> None:
    error = fails({"prompt": "p", "user": 42})
    assert (error.code, error.param) == ("invalid_type", "user")


@pytest.mark.parametrize(("fields", "value"), [
    ({}, True),
    ({"return_last_frame": False}, False),
    ({"return_last_frame": "false"}, False),
    ({"return_last_frame": None}, True),
    ({"metadata": {"return_last_frame": "false"}}, False),
    ({"extra_body": {"return_last_frame": True}}, True),
])
def test_return_last_frame_defaults_to_true(fields: dict[str, Any], value: bool) -> None:
    assert body_of({"prompt": "p", **fields})["return_last_frame"] is value


@pytest.mark.parametrize("fields", [
    {"characters": [{"id": "char_1"}]},
    unflatten_form([("characters[][id]", "char_1")]),
    {"characters": "char_1"},
])
def test_characters_are_unsupported(fields: dict[str, Any]) -> None:
    error = fails({"prompt": "p", **fields})
    assert (error.code, error.param) == ("unsupported_parameter", "characters")


@pytest.mark.parametrize("fields", [
    {"quality": "high"},
    {"n": 2},
    {"response_format": "url"},
    {"remixed_from_video_id": "video_1"},
    {"metadata": {"team": "growth", "trace": "abc"}},
    {"extra_body": {"something_new": 1}},
    {"frames": 121, "draft": True},
    {"characters": []},
    {"characters": None},
])
def test_openai_side_fields_are_dropped(fields: dict[str, Any]) -> None:
    assert body_of({"prompt": "p", **fields}) == body_of({"prompt": "p"})


def test_other_file_parts_are_dropped() -> None:
    files = {"video": UploadedFile("in.mp4", "video/mp4", b"\x00\x00\x00\x18ftypmp42")}
    assert body_of({"prompt": "p"}, files=files) == body_of({"prompt": "p"})


# --- the native validator accepts what we build -----------------------------------------------

@pytest.mark.parametrize("fields", [
    {"prompt": "p"},
    {"prompt": "p", "model": "sora-2-pro", "size": "3840x2160", "seconds": "12"},
    {"prompt": "p", "size": "1920x1080", "seconds": "20"},
    {"prompt": "p", "input_reference": {"image_url": A}, "images": [B]},
    {"prompt": "p", "images": [A, B, C], "videos": [V], "audios": [S]},
    {"prompt": "p", "model": V25, "seconds": "-1", "output_format": "mov"},
    {"prompt": "p", "user": "alice", "seed": "7", "priority": "3", "tools": "web_search"},
])
def test_translated_bodies_pass_native_validation(fields: dict[str, Any]) -> None:
    created = translate(fields)
    validate_create(created.body, created.spec)


def test_uploaded_png_passes_native_validation() -> None:
    created = translate({"prompt": "p"},
                        files={"input_reference": UploadedFile("upload", None, PNG)})
    validate_create(created.body, created.spec)
