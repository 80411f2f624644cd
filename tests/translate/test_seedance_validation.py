"""Native create/list validation answers exactly what Ark would: status, code and param."""

from __future__ import annotations

import random
import time
from typing import Any

import pytest

from gateway.catalog import ModelSpec, preset_models
from gateway.errors import GatewayError
from gateway.translate.seedance_validation import (
    NativeListParams,
    parse_list_params,
    require_model,
    validate_create,
)

SPECS: dict[str, ModelSpec] = {
    spec.name: spec
    for preset in ("volcengine", "byteplus", "wisgate")
    for spec in preset_models(preset, "up")
}
V20 = "doubao-seedance-2-0-260128"
FAST = "doubao-seedance-2-0-fast-260128"
MINI = "doubao-seedance-2-0-mini-260615"
V25 = "doubao-seedance-2-5-260628"
BP20 = "dreamina-seedance-2-0-260128"
BP25 = "dreamina-seedance-2-5-260628"
RESELLER = "doubao-seedance-2.0"
RESELLER_FAST = "doubao-seedance-2-fast"

BAD = "InvalidParameter"
MISSING = "MissingParameter"
UNSUPPORTED = "InvalidParameter.UnsupportedParameter"
IMG_FORMAT = "InvalidImageURL.InvalidFormat"
IMG_EMPTY = "InvalidImageURL.EmptyURL"

PNG = "data:image/png;base64,iVBORw0KGgo="
WAV = "data:audio/wav;base64,UklGRg=="


def text(prompt: str = "a cat stretching in the morning sun") -> dict[str, Any]:
    return {"type": "text", "text": prompt}


def image(url: str = "https://example.com/a.png", role: str | None = None) -> dict[str, Any]:
    item: dict[str, Any] = {"type": "image_url", "image_url": {"url": url}}
    if role is not None:
        item["role"] = role
    return item


def video(url: str = "https://example.com/a.mp4", role: str | None = "reference_video"
          ) -> dict[str, Any]:
    item: dict[str, Any] = {"type": "video_url", "video_url": {"url": url}}
    if role is not None:
        item["role"] = role
    return item


def audio(url: str = "https://example.com/a.mp3", role: str | None = "reference_audio"
          ) -> dict[str, Any]:
    item: dict[str, Any] = {"type": "audio_url", "audio_url": {"url": url}}
    if role is not None:
        item["role"] = role
    return item


def draft(task_id: object = "cgt-20260518175249-8x55h") -> dict[str, Any]:
    return {"type": "draft_task", "draft_task": {"id": task_id}}


def ref(url: str = "https://example.com/r.png") -> dict[str, Any]:
    return image(url, "reference_image")


def body(*content: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"model": "m", "content": list(content) if content else [text()], **fields}


def rejection(spec_name: str, payload: dict[str, Any]) -> tuple[int, str, str | None]:
    with pytest.raises(GatewayError) as caught:
        validate_create(payload, SPECS[spec_name])
    return caught.value.status, caught.value.code, caught.value.param


# The exact body the official Python SDK 5.0.54 puts on the wire (seedance-native.md §2.1).
SDK_ALL_NULL = {
    "model": V20, "content": [text()], "safety_identifier": None, "callback_url": None,
    "return_last_frame": None, "service_tier": None, "execution_expires_after": None,
    "priority": None, "generate_audio": None, "draft": None, "camera_fixed": None,
    "watermark": None, "seed": None, "resolution": None, "ratio": "16:9", "duration": None,
    "frames": None, "tools": None, "output_format": None, "omni_reference_task_type": None,
    "foo": 1,
}

# The seed document's three examples, verbatim.
SEED_TEXT_TO_VIDEO = {
    "model": RESELLER,
    "content": [{"type": "text", "text": "一只小猫在清晨阳光里伸懒腰,镜头缓慢推进,画面温暖自然。"}],
    "resolution": "720p", "ratio": "16:9", "duration": 5, "seed": -1,
    "generate_audio": True, "watermark": False,
}
SEED_REFERENCE = {
    "model": RESELLER,
    "content": [
        {"type": "text",
         "text": "全程使用视频1的第一视角构图,全程使用音频1作为背景音乐。"
                 "第一人称视角果茶宣传广告。"},
        {"type": "image_url", "image_url": {"url": "https://example.com/reference.jpg"},
         "role": "reference_image"},
        {"type": "video_url", "video_url": {"url": "https://example.com/reference.mp4"},
         "role": "reference_video"},
        {"type": "audio_url", "audio_url": {"url": "https://example.com/reference.mp3"},
         "role": "reference_audio"},
    ],
    "resolution": "720p", "ratio": "16:9", "duration": 5, "generate_audio": True,
    "return_last_frame": True,
}
SEED_FIRST_LAST = {
    "model": RESELLER,
    "content": [
        {"type": "text", "text": "让画面从首帧自然过渡到尾帧,镜头保持平稳推进。"},
        {"type": "image_url", "image_url": {"url": "https://example.com/first-frame.png"},
         "role": "first_frame"},
        {"type": "image_url", "image_url": {"url": "https://example.com/last-frame.png"},
         "role": "last_frame"},
    ],
    "resolution": "720p", "ratio": "16:9", "duration": 5,
}

ACCEPTED: list[tuple[str, str, dict[str, Any]]] = [
    # (case, model, body)
    ("python sdk all-null body", V20, SDK_ALL_NULL),
    ("python sdk all-null body, byteplus", BP20, {**SDK_ALL_NULL, "model": BP20}),
    ("python sdk all-null body, 2.5", V25, {**SDK_ALL_NULL, "model": V25}),
    ("seed doc text-to-video", RESELLER, SEED_TEXT_TO_VIDEO),
    ("seed doc reference image+video+audio", RESELLER, SEED_REFERENCE),
    ("seed doc first+last frame", RESELLER, SEED_FIRST_LAST),
    ("seed doc text-to-video on fast", RESELLER_FAST,
     {**SEED_TEXT_TO_VIDEO, "model": RESELLER_FAST}),
    ("bare text", V20, body()),
    ("unknown top-level key forwarded", V20, body(foo={"bar": [1, 2]}, x_extra=None)),
    ("unknown item key forwarded", V20, body({**text(), "extra": 1})),
    ("several text items", V20, body(text("a"), text("b"))),
    ("empty prompt left to ark", V20, body(text(""))),
    ("prompt flags untouched", RESELLER,
     body(text("cat --rs 4k --rt 4:3 --dur 4 --fps 60 --wm true --seed x --cf false"))),
    ("prompt long flags untouched", FAST,
     body(text("cat --resolution 1080p --ratio 2:1 --duration 99 --camerafixed maybe"))),
    # first frame
    ("one image, role omitted", V20, body(text(), image())),
    ("one image, role null", V20, body(text(), {**image(), "role": None})),
    ("one image, first_frame", V20, body(text(), image(role="first_frame"))),
    ("image only, no text", V20, body(image())),
    ("first+last in reverse order", V20, body(image(role="last_frame"), image(role="first_frame"))),
    # URL forms
    ("image data uri png", V20, body(image(PNG))),
    ("image data uri jpeg", V20, body(image("data:image/jpeg;base64,/9j/"))),
    ("image data uri jpg spelling", V20, body(image("data:image/jpg;base64,/9j/"))),
    ("image data uri heic", V20, body(image("data:image/heic;base64,AAAA"))),
    ("image data uri gif", V20, body(image("data:image/gif;base64,R0lG"))),
    ("image asset", V20, body(image("asset://asset-20260101-abc"))),
    ("image http", V20, body(image("http://example.com/a.png"))),
    ("image scheme upper-case", V20, body(image("HTTPS://EXAMPLE.COM/A.PNG"))),
    ("video asset", V20, body(ref(), video("asset://vid-1"))),
    ("audio data uri wav", V20, body(ref(), audio(WAV))),
    ("audio data uri mp3", V20, body(ref(), audio("data:audio/mp3;base64,SUQz"))),
    ("audio data uri mpeg", V20, body(ref(), audio("data:audio/mpeg;base64,SUQz"))),
    ("audio data uri x-wav", V20, body(ref(), audio("data:audio/x-wav;base64,UklG"))),
    ("audio asset", V20, body(video(), audio("asset://aud-1"))),
    # multimodal reference
    ("9 reference images on 2.0", V20, body(*[ref()] * 9)),
    ("3 videos 3 audios on 2.0", V20, body(*[video()] * 3, *[audio()] * 3)),
    ("video only", V20, body(video())),
    ("image+audio", V20, body(ref(), audio())),
    ("video+audio", V20, body(video(), audio())),
    ("one reference image", V20, body(text(), ref())),
    ("30 reference images on 2.5", V25, body(*[ref()] * 30)),
    ("10 videos 10 audios on 2.5", V25, body(*[video()] * 10, *[audio()] * 10)),
    ("2.5 audio only", V25, body(text(), audio())),
    ("byteplus 2.5 audio only", BP25, body(audio())),
    # draft_task forwarded on every model
    ("draft_task alone", V20, body(draft())),
    ("draft_task with text", V25, body(text(), draft())),
    # resolution / ratio / duration per model
    *[(f"2.0 resolution {r}", V20, body(resolution=r)) for r in ("480p", "720p", "1080p", "4k")],
    *[(f"fast resolution {r}", FAST, body(resolution=r)) for r in ("480p", "720p")],
    *[(f"mini resolution {r}", MINI, body(resolution=r)) for r in ("480p", "720p")],
    *[(f"2.5 resolution {r}", V25, body(resolution=r)) for r in ("480p", "720p", "1080p")],
    *[(f"reseller resolution {r}", RESELLER, body(resolution=r)) for r in ("480p", "1080p")],
    *[(f"2.0 ratio {r}", V20, body(ratio=r))
      for r in ("16:9", "4:3", "1:1", "3:4", "9:16", "21:9", "adaptive")],
    *[(f"reseller ratio {r}", RESELLER, body(ratio=r)) for r in ("16:9", "9:16", "1:1")],
    *[(f"2.0 duration {d}", V20, body(duration=d)) for d in (4, 5, 15, -1)],
    *[(f"2.5 duration {d}", V25, body(duration=d)) for d in (4, 29, 30, -1)],
    *[(f"reseller duration {d}", RESELLER, body(duration=d)) for d in (5, 15)],
    # other parameters
    *[(f"seed {s}", V20, body(seed=s)) for s in (-1, 0, 2**31 - 1, 2**32 - 1)],
    ("service_tier default", V20, body(service_tier="default")),
    *[(f"execution_expires_after {e}", V20, body(execution_expires_after=e))
      for e in (3600, 172800, 259200)],
    *[(f"priority {p}", V20, body(priority=p)) for p in (0, 9)],
    *[(f"{k} {v}", V20, body(**{k: v}))
      for k in ("generate_audio", "watermark", "return_last_frame") for v in (True, False)],
    # §8.3: unverified whether 2.x rejects them, so explicit values are only type-checked
    ("frames on 2.0", V20, body(frames=121)),
    ("camera_fixed on 2.0", V20, body(camera_fixed=True)),
    ("draft on 2.0", V20, body(draft=True)),
    ("callback https", V20, body(callback_url="https://hooks.example.com/cb?secret=1")),
    ("callback http", V20, body(callback_url="http://10.0.0.1:8080/cb")),
    ("safety_identifier 64 chars", V20, body(safety_identifier="h" * 64)),
    ("safety_identifier empty", V20, body(safety_identifier="")),
    ("tools web_search", V20, body(tools=[{"type": "web_search"}])),
    ("tools empty", V20, body(tools=[])),
    *[(f"2.5 output_format {f}", V25, body(output_format=f)) for f in ("mp4", "mov")],
    *[(f"2.5 task type {t}", V25, body(omni_reference_task_type=t))
      for t in ("auto", "reference", "edit", "extend", "first_last_frame")],
    ("everything at once on 2.5", V25, body(
        text("edit --dur 3"), ref(), video(), audio(), resolution="1080p", ratio="adaptive",
        duration=-1, seed=7, service_tier="default", execution_expires_after=3600, priority=3,
        generate_audio=False, watermark=True, return_last_frame=True, callback_url="https://x.y/z",
        safety_identifier="user-hash", tools=[{"type": "web_search"}], output_format="mov",
        omni_reference_task_type="edit")),
]


@pytest.mark.parametrize(("model", "payload"), [c[1:] for c in ACCEPTED],
                         ids=[c[0] for c in ACCEPTED])
def test_accepted(model: str, payload: dict[str, Any]) -> None:
    validate_create(payload, SPECS[model])


REJECTED: list[tuple[str, str, dict[str, Any], str, str]] = [
    # (case, model, body, code, param)
    # content array
    ("content missing", V20, {"model": "m"}, MISSING, "content"),
    ("content null", V20, {"model": "m", "content": None}, MISSING, "content"),
    ("content empty", V20, {"model": "m", "content": []}, BAD, "content"),
    ("content a string", V20, {"model": "m", "content": "a cat"}, BAD, "content"),
    ("content an object", V20, {"model": "m", "content": text()}, BAD, "content"),
    ("item not an object", V20, body(text(), "a cat"), BAD, "content[1]"),  # type: ignore[arg-type]
    ("item null", V20, {"model": "m", "content": [None]}, BAD, "content[0]"),
    ("type missing", V20, body({"text": "a"}), MISSING, "content[0].type"),
    ("type null", V20, body({"type": None, "text": "a"}), MISSING, "content[0].type"),
    ("type unknown", V20, body(text(), {"type": "image"}), BAD, "content[1].type"),
    ("type not a string", V20, body({"type": ["text"]}), BAD, "content[0].type"),
    ("type upper-case", V20, body({"type": "TEXT", "text": "a"}), BAD, "content[0].type"),
    ("text missing", V20, body({"type": "text"}), MISSING, "content[0].text"),
    ("text not a string", V20, body({"type": "text", "text": 5}), BAD, "content[0].text"),
    # image URLs: Ark's InvalidImageURL codes
    ("image payload missing", V20, body({"type": "image_url"}), MISSING, "content[0].image_url"),
    ("image payload a string", V20, body({"type": "image_url", "image_url": "https://x/a.png"}),
     BAD, "content[0].image_url"),
    ("image url missing", V20, body({"type": "image_url", "image_url": {}}),
     IMG_EMPTY, "content[0].image_url.url"),
    ("image url empty", V20, body(text(), image("")), IMG_EMPTY, "content[1].image_url.url"),
    ("image data empty", V20, body(image("data:image/png;base64,")),
     IMG_EMPTY, "content[0].image_url.url"),
    ("image url not a string", V20, body({"type": "image_url", "image_url": {"url": 1}}),
     IMG_FORMAT, "content[0].image_url.url"),
    ("image ftp", V20, body(image("ftp://example.com/a.png")),
     IMG_FORMAT, "content[0].image_url.url"),
    ("image bare path", V20, body(image("/tmp/a.png")), IMG_FORMAT, "content[0].image_url.url"),
    ("image scheme only", V20, body(image("https://")), IMG_FORMAT, "content[0].image_url.url"),
    ("image empty asset", V20, body(image("asset://")), IMG_FORMAT, "content[0].image_url.url"),
    ("image data upper-case format", V20, body(image("data:image/PNG;base64,iVBO")),
     IMG_FORMAT, "content[0].image_url.url"),
    ("image data unknown format", V20, body(image("data:image/svg+xml;base64,PHN2")),
     IMG_FORMAT, "content[0].image_url.url"),
    ("image data without base64", V20, body(image("data:image/png,rawbytes")),
     IMG_FORMAT, "content[0].image_url.url"),
    ("image data of audio", V20, body(image(WAV)), IMG_FORMAT, "content[0].image_url.url"),
    ("image raw base64", V20, body(image("iVBORw0KGgo=")), IMG_FORMAT, "content[0].image_url.url"),
    # video / audio URLs
    ("video payload missing", V20, body({"type": "video_url", "role": "reference_video"}),
     MISSING, "content[0].video_url"),
    ("video url missing", V20,
     body({"type": "video_url", "video_url": {}, "role": "reference_video"}),
     MISSING, "content[0].video_url.url"),
    ("video url empty", V20, body(video("")), BAD, "content[0].video_url.url"),
    ("video data uri", V20, body(video("data:video/mp4;base64,AAAA")),
     BAD, "content[0].video_url.url"),
    ("video url a number", V20, body(video(3)), BAD, "content[0].video_url.url"),  # type: ignore[arg-type]
    ("audio url missing", V20, body(ref(), {"type": "audio_url", "audio_url": {"url": None},
                                            "role": "reference_audio"}),
     MISSING, "content[1].audio_url.url"),
    ("audio data ogg", V20, body(ref(), audio("data:audio/ogg;base64,T2dn")),
     BAD, "content[1].audio_url.url"),
    ("audio data upper-case", V20, body(ref(), audio("data:audio/WAV;base64,UklG")),
     BAD, "content[1].audio_url.url"),
    ("audio data empty payload", V20, body(ref(), audio("data:audio/wav;base64,")),
     BAD, "content[1].audio_url.url"),
    ("audio file path", V20, body(ref(), audio("C:/music.mp3")), BAD, "content[1].audio_url.url"),
    # draft_task shape
    ("draft_task payload missing", V20, body({"type": "draft_task"}),
     MISSING, "content[0].draft_task"),
    ("draft_task payload a string", V20, body({"type": "draft_task", "draft_task": "cgt-1"}),
     BAD, "content[0].draft_task"),
    ("draft_task id missing", V20, body({"type": "draft_task", "draft_task": {}}),
     MISSING, "content[0].draft_task.id"),
    ("draft_task id empty", V20, body(draft("")), BAD, "content[0].draft_task.id"),
    ("draft_task id a number", V20, body(draft(7)), BAD, "content[0].draft_task.id"),
    # roles
    ("image role unknown", V20, body(image(role="reference_video")), BAD, "content[0].role"),
    ("image role not a string", V20, body({**image(), "role": ["first_frame"]}),
     BAD, "content[0].role"),
    ("video role missing", V20, body(video(role=None)), MISSING, "content[0].role"),
    ("video role wrong", V20, body(video(role="reference_image")), BAD, "content[0].role"),
    ("audio role missing", V20, body(ref(), audio(role=None)), MISSING, "content[1].role"),
    ("audio role wrong", V20, body(ref(), audio(role="reference_video")), BAD, "content[1].role"),
    # scenarios are mutually exclusive
    ("first_frame + reference image", V20, body(image(role="first_frame"), ref()), BAD, "content"),
    ("first_frame + video", V20, body(image(role="first_frame"), video()), BAD, "content"),
    ("last_frame + audio", V20, body(image(role="first_frame"), image(role="last_frame"), audio()),
     BAD, "content"),
    ("role omitted next to video", V20, body(text(), image(), video()), MISSING, "content[1].role"),
    ("role omitted next to reference", V20, body(ref(), image()), MISSING, "content[1].role"),
    ("two images, roles omitted", V20, body(image(), image()), MISSING, "content[0].role"),
    ("first+last, last role omitted", V20, body(image(role="first_frame"), image()),
     MISSING, "content[1].role"),
    ("two first frames", V20, body(image(role="first_frame"), image(role="first_frame")),
     BAD, "content"),
    ("two last frames", V20, body(image(role="last_frame"), image(role="last_frame")),
     BAD, "content"),
    ("three frame images", V20, body(image(role="first_frame"), image(role="last_frame"),
                                     image(role="first_frame")), BAD, "content"),
    ("lone last_frame", V20, body(text(), image(role="last_frame")), BAD, "content[1].role"),
    # counts per model
    ("10 reference images on 2.0", V20, body(*[ref()] * 10), BAD, "content"),
    ("4 videos on 2.0", V20, body(*[video()] * 4), BAD, "content"),
    ("4 audios on 2.0", V20, body(ref(), *[audio()] * 4), BAD, "content"),
    ("31 reference images on 2.5", V25, body(*[ref()] * 31), BAD, "content"),
    ("11 videos on 2.5", V25, body(*[video()] * 11), BAD, "content"),
    ("11 audios on 2.5", V25, body(*[audio()] * 11), BAD, "content"),
    ("audio only on 2.0", V20, body(text(), audio()), BAD, "content"),
    ("audio only on fast", FAST, body(audio()), BAD, "content"),
    ("audio only on reseller", RESELLER, body(audio(), audio()), BAD, "content"),
    # resolution
    *[(f"{m} rejects {r}", m, body(resolution=r), BAD, "resolution")
      for m in (FAST, MINI, RESELLER_FAST) for r in ("1080p", "4k")],
    ("2.5 rejects 4k", V25, body(resolution="4k"), BAD, "resolution"),
    ("reseller rejects 4k", RESELLER, body(resolution="4k"), BAD, "resolution"),
    ("resolution upper-case", V20, body(resolution="720P"), BAD, "resolution"),
    ("resolution as pixels", V20, body(resolution="1280x720"), BAD, "resolution"),
    ("resolution a number", V20, body(resolution=720), BAD, "resolution"),
    ("resolution empty", V20, body(resolution=""), BAD, "resolution"),
    # ratio
    ("reseller rejects 4:3", RESELLER, body(ratio="4:3"), BAD, "ratio"),
    ("reseller rejects adaptive", RESELLER, body(ratio="adaptive"), BAD, "ratio"),
    *[(f"ratio {r}", V20, body(ratio=r), BAD, "ratio")
      for r in ("2:1", "9:21", "keep_ratio", "16x9")],
    ("ratio a list", V20, body(ratio=[16, 9]), BAD, "ratio"),
    # duration
    ("reseller rejects 4", RESELLER, body(duration=4), BAD, "duration"),
    ("reseller rejects auto", RESELLER, body(duration=-1), BAD, "duration"),
    ("reseller rejects 16", RESELLER_FAST, body(duration=16), BAD, "duration"),
    *[(f"2.0 duration {d}", V20, body(duration=d), BAD, "duration") for d in (3, 16, 30, 0, -2)],
    ("2.5 duration 31", V25, body(duration=31), BAD, "duration"),
    ("duration true", V20, body(duration=True), BAD, "duration"),
    ("duration 5.0", V20, body(duration=5.0), BAD, "duration"),
    ("duration 5.5", V20, body(duration=5.5), BAD, "duration"),
    ("duration string", V20, body(duration="5"), BAD, "duration"),
    ("frames a string", V20, body(frames="121"), BAD, "frames"),
    ("frames a bool", V20, body(frames=False), BAD, "frames"),
    # seed
    ("seed -2", V20, body(seed=-2), BAD, "seed"),
    ("seed 2**32", V20, body(seed=2**32), BAD, "seed"),
    ("seed float", V20, body(seed=1.5), BAD, "seed"),
    ("seed string", V20, body(seed="42"), BAD, "seed"),
    # service tier
    ("flex on 2.0", V20, body(service_tier="flex"), UNSUPPORTED, "service_tier"),
    ("flex on fast", FAST, body(service_tier="flex"), UNSUPPORTED, "service_tier"),
    ("flex on 2.5", V25, body(service_tier="flex"), UNSUPPORTED, "service_tier"),
    ("flex on reseller", RESELLER, body(service_tier="flex"), UNSUPPORTED, "service_tier"),
    ("service_tier unknown", V20, body(service_tier="scale"), BAD, "service_tier"),
    ("service_tier upper-case", V20, body(service_tier="Default"), BAD, "service_tier"),
    ("service_tier a bool", V20, body(service_tier=True), BAD, "service_tier"),
    # execution_expires_after / priority
    ("expires 3599", V20, body(execution_expires_after=3599), BAD, "execution_expires_after"),
    ("expires 259201", V20, body(execution_expires_after=259201), BAD, "execution_expires_after"),
    ("expires string", V20, body(execution_expires_after="3600"), BAD, "execution_expires_after"),
    ("priority -1", V20, body(priority=-1), BAD, "priority"),
    ("priority 10", V20, body(priority=10), BAD, "priority"),
    ("priority bool", V20, body(priority=True), BAD, "priority"),
    # booleans
    *[(f"{k} as string", V20, body(**{k: "true"}), BAD, k)
      for k in ("generate_audio", "watermark", "return_last_frame", "camera_fixed", "draft")],
    *[(f"{k} as 1", V20, body(**{k: 1}), BAD, k)
      for k in ("generate_audio", "watermark", "return_last_frame", "camera_fixed", "draft")],
    # callback / safety identifier / tools
    ("callback ftp", V20, body(callback_url="ftp://x/y"), BAD, "callback_url"),
    ("callback no scheme", V20, body(callback_url="hooks.example.com/cb"), BAD, "callback_url"),
    ("callback empty", V20, body(callback_url=""), BAD, "callback_url"),
    ("callback an object", V20, body(callback_url={"url": "https://x"}), BAD, "callback_url"),
    ("safety_identifier 65 chars", V20, body(safety_identifier="h" * 65), BAD, "safety_identifier"),
    ("safety_identifier a number", V20, body(safety_identifier=42), BAD, "safety_identifier"),
    ("tools an object", V20, body(tools={"type": "web_search"}), BAD, "tools"),
    ("tools item a string", V20, body(tools=["web_search"]), BAD, "tools[0]"),
    ("tools type unknown", V20, body(tools=[{"type": "web_search"}, {"type": "code"}]),
     BAD, "tools[1].type"),
    ("tools type missing", V20, body(tools=[{}]), BAD, "tools[0].type"),
    # 2.5-only parameters
    ("output_format on 2.0", V20, body(output_format="mp4"), UNSUPPORTED, "output_format"),
    ("output_format on reseller", RESELLER, body(output_format="mov"),
     UNSUPPORTED, "output_format"),
    ("output_format webm on 2.5", V25, body(output_format="webm"), BAD, "output_format"),
    ("task type on 2.0", V20, body(omni_reference_task_type="auto"),
     UNSUPPORTED, "omni_reference_task_type"),
    ("task type unknown on 2.5", V25, body(omni_reference_task_type="remix"),
     BAD, "omni_reference_task_type"),
    # the first violated rule wins, content first
    ("content before resolution", FAST, body(image(""), resolution="4k"),
     IMG_EMPTY, "content[0].image_url.url"),
    ("resolution before duration", FAST, body(resolution="4k", duration=99), BAD, "resolution"),
    ("earliest item first", V20, body({"type": "x"}, image("")), BAD, "content[0].type"),
]


@pytest.mark.parametrize(("model", "payload", "code", "param"), [c[1:] for c in REJECTED],
                         ids=[c[0] for c in REJECTED])
def test_rejected(model: str, payload: dict[str, Any], code: str, param: str) -> None:
    assert rejection(model, payload) == (400, code, param)


def test_messages_read_like_arks() -> None:
    with pytest.raises(GatewayError) as caught:
        validate_create(body(ratio="4:3"), SPECS[RESELLER])
    assert caught.value.message.startswith(
        "The parameter `ratio` specified in the request are not valid: `4:3`"
    )
    assert caught.value.ark_body()["error"] == {
        "code": "InvalidParameter", "message": caught.value.message, "param": "ratio",
        "type": "BadRequest",
    }
    with pytest.raises(GatewayError) as caught:
        validate_create({"model": "m"}, SPECS[V20])
    assert "`content`" in caught.value.message


def test_echoed_values_are_shortened() -> None:
    blob = "data:image/png;base64," + "A" * 100_000
    with pytest.raises(GatewayError) as caught:
        validate_create(body(ratio=blob), SPECS[V20])
    assert len(caught.value.message) < 400


def test_prompt_text_is_not_modified() -> None:
    prompt = "a cat --rs 4k --rt 4:3 --dur 4 --seed 11 --wm true"
    payload = body(text(prompt))
    validate_create(payload, SPECS[RESELLER])
    assert payload["content"] == [{"type": "text", "text": prompt}]


def test_validation_does_not_mutate_the_body() -> None:
    payload = {**SEED_REFERENCE, "foo": None}
    snapshot = repr(payload)
    validate_create(payload, SPECS[RESELLER])
    assert repr(payload) == snapshot


# --- require_model ---------------------------------------------------------------------------

@pytest.mark.parametrize(("payload", "code", "param"), [
    ([], BAD, ""),
    ("doubao", BAD, ""),
    (None, BAD, ""),
    (42, BAD, ""),
    ({}, MISSING, "model"),
    ({"model": None}, MISSING, "model"),
    ({"model": ""}, BAD, "model"),
    ({"model": 7}, BAD, "model"),
    ({"model": ["doubao-seedance-2.0"]}, BAD, "model"),
    ({"model": True}, BAD, "model"),
])
def test_require_model_rejects(payload: object, code: str, param: str) -> None:
    with pytest.raises(GatewayError) as caught:
        require_model(payload)
    assert (caught.value.status, caught.value.code, caught.value.param) == (400, code, param)


@pytest.mark.parametrize("model", [V20, RESELLER, "ep-20260101000000-abcde", "sora-2"])
def test_require_model_accepts(model: str) -> None:
    assert require_model({"model": model, "content": None}) == model


# --- list query ------------------------------------------------------------------------------

LIST_ACCEPTED: list[tuple[str, list[tuple[str, str]], NativeListParams]] = [
    ("defaults", [], NativeListParams(1, 20, (), (), None, "default")),
    ("page bounds low", [("page_num", "1"), ("page_size", "1")],
     NativeListParams(page_num=1, page_size=1)),
    ("page bounds high", [("page_num", "500"), ("page_size", "500")],
     NativeListParams(page_num=500, page_size=500)),
    ("plus sign like Go's Atoi", [("page_size", "+7")], NativeListParams(page_size=7)),
    ("leading zeros", [("page_num", "007")], NativeListParams(page_num=7)),
    ("empty values are absent", [("page_num", ""), ("filter.status", ""), ("filter.model", "")],
     NativeListParams()),
    ("repeated scalar: first wins", [("page_size", "5"), ("page_size", "900")],
     NativeListParams(page_size=5)),
    *[(f"status {s}", [("filter.status", s)], NativeListParams(statuses=(s,)))
      for s in ("queued", "running", "cancelled", "succeeded", "failed")],
    ("repeated status means any of", [("filter.status", "queued"), ("filter.status", "running")],
     NativeListParams(statuses=("queued", "running"))),
    ("comma-joined status", [("filter.status", "failed,succeeded")],
     NativeListParams(statuses=("failed", "succeeded"))),
    ("repeated task_ids", [("filter.task_ids", "cgt-a"), ("filter.task_ids", "cgt-b")],
     NativeListParams(task_ids=("cgt-a", "cgt-b"))),
    ("comma-joined task_ids tolerated", [("filter.task_ids", "cgt-a, cgt-b,,")],
     NativeListParams(task_ids=("cgt-a", "cgt-b"))),
    ("task_ids deduplicated in order",
     [("filter.task_ids", "cgt-b"), ("filter.task_ids", "cgt-a,cgt-b")],
     NativeListParams(task_ids=("cgt-b", "cgt-a"))),
    ("model exact", [("filter.model", "ep-20260101000000-abcde")],
     NativeListParams(model="ep-20260101000000-abcde")),
    ("model not normalised", [("filter.model", " Doubao ")], NativeListParams(model=" Doubao ")),
    ("tier flex", [("filter.service_tier", "flex")], NativeListParams(service_tier="flex")),
    ("tier default", [("filter.service_tier", "default")], NativeListParams()),
    ("unknown keys ignored", [("filter.foo", "x"), ("page", "9"), ("filter[status]", "expired")],
     NativeListParams()),
    ("everything", [("page_num", "2"), ("page_size", "50"), ("filter.status", "succeeded"),
                    ("filter.task_ids", "cgt-1"), ("filter.model", V20),
                    ("filter.service_tier", "default")],
     NativeListParams(2, 50, ("succeeded",), ("cgt-1",), V20, "default")),
]


@pytest.mark.parametrize(("items", "expected"), [c[1:] for c in LIST_ACCEPTED],
                         ids=[c[0] for c in LIST_ACCEPTED])
def test_list_params_accepted(items: list[tuple[str, str]], expected: NativeListParams) -> None:
    assert parse_list_params(items) == expected


LIST_REJECTED: list[tuple[str, list[tuple[str, str]], str]] = [
    *[(f"{key} {value}", [(key, value)], key)
      for key in ("page_num", "page_size")
      for value in ("0", "501", "-1", "abc", "1.5", "1e2", " 5", "٥", "5_0", "9" * 5000)],
    ("status expired", [("filter.status", "expired")], "filter.status"),
    ("status upper-case", [("filter.status", "Queued")], "filter.status"),
    ("status unknown", [("filter.status", "in_progress")], "filter.status"),
    ("status expired in a repeat", [("filter.status", "failed"), ("filter.status", "expired")],
     "filter.status"),
    ("status expired comma-joined", [("filter.status", "failed,expired")], "filter.status"),
    ("tier unknown", [("filter.service_tier", "scale")], "filter.service_tier"),
    ("tier upper-case", [("filter.service_tier", "Flex")], "filter.service_tier"),
    ("first scalar is the one checked", [("page_size", "0"), ("page_size", "5")], "page_size"),
]


@pytest.mark.parametrize(("items", "param"), [c[1:] for c in LIST_REJECTED],
                         ids=[c[0][:40] for c in LIST_REJECTED])
def test_list_params_rejected(items: list[tuple[str, str]], param: str) -> None:
    with pytest.raises(GatewayError) as caught:
        parse_list_params(items)
    assert (caught.value.status, caught.value.code, caught.value.param) == (400, BAD, param)


# --- fuzz: any JSON in, only GatewayError out -------------------------------------------------

FIELDS = (
    "model", "content", "resolution", "ratio", "duration", "frames", "seed", "service_tier",
    "execution_expires_after", "priority", "generate_audio", "watermark", "return_last_frame",
    "camera_fixed", "draft", "callback_url", "safety_identifier", "tools", "output_format",
    "omni_reference_task_type",
)
ITEM_KEYS = (
    "type", "text", "role", "image_url", "video_url", "audio_url", "draft_task", "url", "id",
)
STRINGS = (
    "", "text", "image_url", "video_url", "audio_url", "draft_task", "first_frame", "last_frame",
    "reference_image", "reference_video", "reference_audio", "web_search", "720p", "4k", "16:9",
    "adaptive", "default", "flex", "mp4", "auto", "https://x/y", "asset://a", "asset://",
    PNG, WAV, "data:image/png;base64,", "data:", "data:image/", "https://", "\x00", "ü" * 70,
)


def random_json(rng: random.Random, depth: int = 0) -> Any:
    roll = rng.random()
    if depth > 3 or roll < 0.45:
        return rng.choice([
            None, True, False, 0, -1, 5, 5.0, 2**64, -(2**70), 1e308, float("nan"),
            rng.choice(STRINGS), rng.randint(-10, 300_000),
        ])
    if roll < 0.7:
        return [random_json(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    keys = ITEM_KEYS if rng.random() < 0.7 else STRINGS
    return {rng.choice(keys): random_json(rng, depth + 1) for _ in range(rng.randint(0, 4))}


def random_item(rng: random.Random) -> Any:
    """A content item that is often nearly valid, so the deep rules get exercised too."""
    base = rng.choice([text(), image(), image(PNG, "first_frame"), image(role="last_frame"),
                       ref(), video(), audio(), audio(WAV), draft()])
    item = {**base}
    for _ in range(rng.choice((0, 0, 0, 0, 1, 2))):
        key = rng.choice(ITEM_KEYS)
        if rng.random() < 0.5 and isinstance(item.get(key), dict):
            item[key] = {**item[key], rng.choice(ITEM_KEYS): random_json(rng)}
        else:
            item[key] = random_json(rng)
    return item if rng.random() < 0.97 else random_json(rng)


def random_body(rng: random.Random) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "content": [random_item(rng) for _ in range(rng.choice((0, 1, 1, 2, 3, 12)))],
    }
    for key in rng.sample(FIELDS, rng.choice((0, 0, 1, 2, 6))):
        payload[key] = random_json(rng) if rng.random() < 0.6 else rng.choice(STRINGS)
    if rng.random() < 0.1:
        payload["content"] = random_json(rng)
    return payload


def test_fuzz_create_only_raises_gateway_errors() -> None:
    rng = random.Random(20260824)
    specs = list(SPECS.values())
    outcomes = {"accepted": 0, "rejected": 0}
    for _ in range(6000):
        payload = random_body(rng)
        try:
            require_model({"model": rng.choice(list(SPECS)), **payload})
            validate_create(payload, rng.choice(specs))
        except GatewayError as err:
            assert err.status == 400
            assert err.code and isinstance(err.param, str)
            assert err.message.startswith("The parameter") or err.code == MISSING
            outcomes["rejected"] += 1
        else:
            outcomes["accepted"] += 1
    # Both paths must actually be exercised, or the fuzz proves little.
    assert outcomes["accepted"] > 300 and outcomes["rejected"] > 300, outcomes


def test_fuzz_require_model_only_raises_gateway_errors() -> None:
    rng = random.Random(7)
    for _ in range(2000):
        candidate = random_json(rng) if rng.random() < 0.5 else {"model": random_json(rng)}
        try:
            assert isinstance(require_model(candidate), str)
        except GatewayError as err:
            assert err.status == 400


def test_fuzz_list_params_only_raises_gateway_errors() -> None:
    rng = random.Random(11)
    keys = ("page_num", "page_size", "filter.status", "filter.task_ids", "filter.model",
            "filter.service_tier", "x")
    values = ("", "0", "1", "20", "500", "501", "-5", "+3", "queued", "expired", "a,b", ",",
              "flex", "default", "ü", "9" * 30, " 1 ")
    for _ in range(3000):
        items = [(rng.choice(keys), rng.choice(values)) for _ in range(rng.randint(0, 6))]
        try:
            params = parse_list_params(items)
        except GatewayError as err:
            assert err.status == 400 and err.code == BAD
            assert err.param in keys
        else:
            assert 1 <= params.page_num <= 500 and 1 <= params.page_size <= 500
            assert params.service_tier in ("default", "flex")
            assert set(params.statuses) <= {"queued", "running", "cancelled", "succeeded", "failed"}


def test_typical_create_is_fast() -> None:
    """It runs on every create; a generous bound keeps this stable on slow CI machines."""
    payload = body(text("a cat"), image(role="first_frame"), resolution="720p", ratio="16:9",
                   duration=5, seed=-1, generate_audio=True, watermark=False)
    spec = SPECS[V20]
    rounds = 2000
    started = time.perf_counter()
    for _ in range(rounds):
        validate_create(payload, spec)
    per_call = (time.perf_counter() - started) / rounds
    assert per_call < 200e-6, f"{per_call * 1e6:.1f} µs per create"
