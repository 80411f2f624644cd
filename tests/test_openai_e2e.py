"""End to end over real sockets: the official `openai` SDK → gateway → simulator."""

from __future__ import annotations

import base64
import struct
import time
import zlib
from typing import Any

import httpx
import openai
import orjson
import pytest
from openai import OpenAI

from tests.conftest import GatewayFactory, SimulatorFactory
from tests.openapi import validate, validate_error
from tests.servers import FAKE_ALICE_KEY, FAKE_BOB_KEY, ServerThread

pytestmark = pytest.mark.filterwarnings("ignore:The Sora API:DeprecationWarning")


def client(gateway: ServerThread, key: str = FAKE_ALICE_KEY) -> OpenAI:
    return OpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0, timeout=20)


def png(width: int = 2, height: int = 2) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(
            ">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    raw = b"".join(b"\x00" + b"\x80\x20\x20" * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2,
            0, 0, 0)) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def posted_bodies(simulator: ServerThread) -> list[dict[str, Any]]:
    return [orjson.loads(r.body) for r in simulator.app.state.simulator.requests
            if r.method == "POST"]


def raw(gateway: ServerThread, method: str, path: str, **kwargs: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {FAKE_ALICE_KEY}", **kwargs.pop("headers", {})}
    return httpx.request(method, gateway.url + path, headers=headers, timeout=20, **kwargs)


def test_create_and_poll_download_list_delete(
    simulator: ServerThread, gateway: ServerThread
) -> None:
    sdk = client(gateway)
    video = sdk.videos.create_and_poll(model="sora-2", prompt="a paper boat on a river",
                                       size="1280x720", seconds="8")
    assert video.status == "completed", video.error
    assert (video.model, video.size, video.seconds, video.progress) == (
        "sora-2", "1280x720", "8", 100)
    assert video.completed_at is not None and video.expires_at == video.completed_at + 86400
    validate("VideoResource", video.model_dump())

    sent = posted_bodies(simulator)[-1]
    assert sent["model"] == "doubao-seedance-2-0-fast-260128"
    assert (sent["resolution"], sent["ratio"], sent["duration"]) == ("720p", "16:9", 8)
    assert sent["content"] == [{"type": "text", "text": "a paper boat on a river"}]
    assert sent["return_last_frame"] is True

    mp4 = sdk.videos.download_content(video.id).read()
    assert mp4[4:8] == b"ftyp" and len(mp4) > 1000
    thumbnail = sdk.videos.download_content(video.id, variant="thumbnail").read()
    assert thumbnail.startswith(b"\x89PNG\r\n\x1a\n")
    width, height = struct.unpack(">II", thumbnail[16:24])
    assert (width, height) == (1280, 720)

    page = sdk.videos.list()
    validate("VideoListResource", page.model_dump())
    assert [v.id for v in page.data] == [video.id]

    deleted = sdk.videos.delete(video.id)
    assert (deleted.id, deleted.deleted, deleted.object) == (video.id, True, "video.deleted")
    validate("DeletedVideoResource", deleted.model_dump())
    with pytest.raises(openai.NotFoundError):
        sdk.videos.retrieve(video.id)


def test_retrieve_sends_poll_hint_until_terminal(gateway: ServerThread) -> None:
    created = raw(gateway, "POST", "/v1/videos", json={"prompt": "x", "seconds": "4"})
    assert created.status_code == 200
    assert created.json()["status"] == "queued"
    assert created.headers["openai-poll-after-ms"] == "100"
    deadline = time.monotonic() + 10
    while (got := raw(gateway, "GET", f"/v1/videos/{created.json()['id']}")).json()[
            "status"] != "completed" and time.monotonic() < deadline:
        assert got.headers["openai-poll-after-ms"] == "100"
        time.sleep(0.05)
    assert got.json()["status"] == "completed"
    assert "openai-poll-after-ms" not in got.headers


def test_list_pages_across_several_pages(gateway: ServerThread) -> None:
    sdk = client(gateway)
    ids = [sdk.videos.create(prompt=f"clip {i}").id for i in range(7)]
    first = sdk.videos.list(limit=3)
    assert first.has_more is True and len(first.data) == 3
    assert first.data[0].id == ids[-1]  # newest first by default
    walked = [v.id for v in sdk.videos.list(limit=3)]  # the SDK follows `after`
    assert walked == list(reversed(ids))
    ascending = [v.id for v in sdk.videos.list(limit=2, order="asc")]
    assert ascending == ids
    last = raw(gateway, "GET", "/v1/videos", params={"limit": 3, "after": ids[2]}).json()
    assert [v["id"] for v in last["data"]] == list(reversed(ids[:2]))
    assert last["has_more"] is False and last["last_id"] == ids[0]
    assert client(gateway, FAKE_BOB_KEY).videos.list().data == []


def test_input_reference_upload_reaches_upstream_as_first_frame(
    simulator: ServerThread, gateway: ServerThread
) -> None:
    image = png()
    sdk = client(gateway)
    sdk.videos.create(prompt="animate this", input_reference=("ref.png", image, "image/png"))
    sdk.videos.create(prompt="bare bytes", input_reference=image)  # filename "upload"
    expected = {"type": "image_url", "role": "first_frame",
                "image_url": {"url": "data:image/png;base64," + base64.b64encode(image).decode()}}
    for body in posted_bodies(simulator)[-2:]:
        assert body["content"][1] == expected


def test_json_create_as_old_sdks_curl_and_batch_send_it(
    simulator: ServerThread, gateway: ServerThread
) -> None:
    response = raw(gateway, "POST", "/v1/videos", json={
        "prompt": "a cat", "model": "sora-2-pro", "seconds": "12", "size": "1792x1024",
        "input_reference": {"image_url": "https://example.com/cat.png"},
    })
    assert response.status_code == 200, response.text
    video = response.json()
    validate("VideoResource", video)
    assert (video["model"], video["status"], video["seconds"]) == ("sora-2-pro", "queued", "12")
    sent = posted_bodies(simulator)[-1]
    assert sent["model"] == "doubao-seedance-2-0-260128"
    assert (sent["resolution"], sent["ratio"]) == ("1080p", "16:9")
    assert sent["content"][1]["image_url"]["url"] == "https://example.com/cat.png"


def test_bracket_fields_in_multipart(simulator: ServerThread, gateway: ServerThread) -> None:
    response = raw(gateway, "POST", "/v1/videos", files=[
        ("prompt", (None, "two refs")), ("images[]", (None, "https://example.com/a.png")),
        ("images[]", (None, "https://example.com/b.png")), ("mode", (None, "r2v")),
        ("seed", (None, "42")), ("watermark", (None, "true")),
    ])
    assert response.status_code == 200, response.text
    sent = posted_bodies(simulator)[-1]
    assert [c.get("role") for c in sent["content"]] == [None, "reference_image",
                                                         "reference_image"]
    assert (sent["seed"], sent["watermark"]) == (42, True)


@pytest.mark.parametrize(
    ("body", "status", "code", "param"),
    [
        ({"prompt": "x", "model": "sora-9"}, 400, "model_not_found", "model"),
        ({"prompt": "x", "input_reference": {"file_id": "file-1"}}, 400,
         "unsupported_parameter", "input_reference"),
        ({"prompt": "x", "seconds": "8.5"}, 400, None, "seconds"),
        ({"prompt": "x", "size": "big"}, 400, None, "size"),
        ({"model": "sora-2"}, 400, None, "prompt"),
        ({"prompt": "x", "ratio": "5:4"}, 400, "InvalidParameter", "ratio"),  # native rule
    ],
)
def test_create_errors_are_openai_shaped(
    gateway: ServerThread, body: dict[str, Any], status: int, code: str | None, param: str
) -> None:
    response = raw(gateway, "POST", "/v1/videos", json=body)
    assert response.status_code == status, response.text
    validate_error(response.json())
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["param"] == param
    if code is not None:
        assert error["code"] == code
    assert response.headers["x-request-id"]


def test_auth_failures_are_openai_shaped(gateway: ServerThread) -> None:
    with pytest.raises(openai.AuthenticationError):
        client(gateway, "sgw-wrong").videos.list()
    for method, path in [("GET", "/v1/videos"), ("POST", "/v1/videos"),
                         ("GET", "/v1/videos/cgt-x/content")]:
        response = httpx.request(method, gateway.url + path)
        assert response.status_code == 401
        validate_error(response.json())
        assert response.json()["error"]["type"] == "authentication_error"
        assert response.headers["x-request-id"]


def test_other_members_videos_are_invisible(gateway: ServerThread) -> None:
    video = client(gateway).videos.create(prompt="mine")
    bob = client(gateway, FAKE_BOB_KEY)
    for call in (lambda: bob.videos.retrieve(video.id), lambda: bob.videos.delete(video.id),
                 lambda: bob.videos.download_content(video.id)):
        with pytest.raises(openai.NotFoundError):
            call()


def test_content_variants_and_not_ready(start_simulator: SimulatorFactory,
                                        start_gateway: GatewayFactory) -> None:
    sim = start_simulator(delay=30)
    gateway = start_gateway(sim.url + "/api/v3")
    video = client(gateway).videos.create(prompt="slow")
    not_ready = raw(gateway, "GET", f"/v1/videos/{video.id}/content")
    assert not_ready.status_code == 404
    assert not_ready.json()["error"]["code"] == "video_not_ready"
    assert "not ready" in not_ready.json()["error"]["message"]
    sprites = raw(gateway, "GET", f"/v1/videos/{video.id}/content",
                  params={"variant": "spritesheet"})
    assert sprites.status_code == 404
    validate_error(sprites.json())


def test_download_honours_range(gateway: ServerThread) -> None:
    sdk = client(gateway)
    video = sdk.videos.create_and_poll(prompt="ranged", seconds="4")
    whole = sdk.videos.download_content(video.id).read()
    part = raw(gateway, "GET", f"/v1/videos/{video.id}/content",
               headers={"Range": "bytes=100-199"})
    assert part.status_code == 206
    assert part.content == whole[100:200]
    assert part.headers["content-range"] == f"bytes 100-199/{len(whole)}"


def test_expired_signed_url_is_refreshed_once(start_simulator: SimulatorFactory,
                                              start_gateway: GatewayFactory) -> None:
    sim = start_simulator(delay=0.05, url_ttl=1)
    gateway = start_gateway(sim.url + "/api/v3")
    sdk = client(gateway)
    video = sdk.videos.create_and_poll(prompt="expiring", seconds="4")
    time.sleep(2.1)  # the stored signed URL is now stale
    assert sdk.videos.download_content(video.id).read()[4:8] == b"ftyp"


@pytest.mark.parametrize(
    ("marker", "code"),
    [("[sim:fail]", "OutputVideoSensitiveContentDetected"), ("[sim:expire]", "expired")],
)
def test_failed_and_expired_tasks(gateway: ServerThread, marker: str, code: str) -> None:
    video = client(gateway).videos.create_and_poll(prompt=f"{marker} doomed")
    assert video.status == "failed"
    assert video.error is not None and video.error.code == code
    validate("VideoResource", video.model_dump())


def test_cancelled_task_reports_cancelled(start_simulator: SimulatorFactory,
                                          start_gateway: GatewayFactory) -> None:
    sim = start_simulator(delay=30)
    gateway = start_gateway(sim.url + "/api/v3")
    sdk = client(gateway)
    video = sdk.videos.create(prompt="never mind")
    assert sdk.videos.delete(video.id).deleted is True  # queued: Ark cancels it
    again = raw(gateway, "DELETE", f"/v1/videos/{video.id}")
    assert again.status_code == 400
    assert "cancelled" in again.json()["error"]["message"]


def test_refused_cancel_of_running_video_says_so(start_simulator: SimulatorFactory,
                                                 start_gateway: GatewayFactory) -> None:
    sim = start_simulator(delay=0.05)
    gateway = start_gateway(sim.url + "/api/v3")
    sdk = client(gateway)
    video = sdk.videos.create(prompt="[sim:never] long one")
    deadline = time.monotonic() + 5
    while sdk.videos.retrieve(video.id).status != "in_progress" and time.monotonic() < deadline:
        time.sleep(0.05)
    with pytest.raises(openai.BadRequestError) as refused:
        sdk.videos.delete(video.id)
    assert "cannot be deleted now" in str(refused.value)
    assert "running" in str(refused.value) or "being generated" in str(refused.value)


@pytest.mark.parametrize(
    ("method", "path", "operation"),
    [("POST", "/v1/videos/cgt-1/remix", "remix"), ("POST", "/v1/videos/edits", "edits"),
     ("POST", "/v1/videos/extensions", "extensions"),
     ("POST", "/v1/videos/characters", "characters"),
     ("GET", "/v1/videos/characters/char_1", "characters")],
)
def test_unsupported_operations_say_which(
    gateway: ServerThread, method: str, path: str, operation: str
) -> None:
    response = raw(gateway, method, path, json={"prompt": "x"})
    assert response.status_code == 400
    validate_error(response.json())
    assert operation in response.json()["error"]["message"]


def test_upstream_rate_limit_is_429_with_retry_after(start_simulator: SimulatorFactory,
                                                     start_gateway: GatewayFactory) -> None:
    sim = start_simulator(rate_limit_rate=1.0)
    gateway = start_gateway(sim.url + "/api/v3")
    response = raw(gateway, "POST", "/v1/videos", json={"prompt": "x"})
    assert response.status_code == 429
    assert response.json()["error"]["type"] == "rate_limit_error"
    assert int(response.headers["retry-after"]) >= 1
