"""Result files: pre-signed URLs without auth, expiry and tampering, Range, HEAD, MP4 and PNG."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest

from gateway.simulator.media import load_sample_video

from .simkit import TASKS, Sim, mp4_boxes

pytestmark = pytest.mark.anyio


def anonymous(sim: Sim) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(sim.app))


async def video_url(sim: Sim, **fields: Any) -> str:
    url: str = (await sim.task(await sim.create(**fields)))["content"]["video_url"]
    return url


def with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = {name: values[0] for name, values in parse_qs(parts.query).items()} | changes
    return parts._replace(query=urlencode(query)).geturl()


async def test_signed_video_url_works_without_auth(make_sim: Callable[..., Sim]) -> None:
    sim = make_sim()
    url = await video_url(sim)
    assert url.startswith("http://sim.test:8123/files/")
    query = parse_qs(urlsplit(url).query)
    assert query["X-Tos-Algorithm"] == ["TOS4-HMAC-SHA256"]
    assert query["X-Tos-Expires"] == ["86400"]

    response = await anonymous(sim).get(url)
    assert response.status_code == 200
    assert response.headers["content-type"] == "video/mp4"
    assert response.headers["accept-ranges"] == "bytes"
    assert response.content == load_sample_video()
    assert all(seen.path.startswith("/api/") for seen in sim.state.requests)


async def test_urls_are_resigned_on_every_get(make_sim: Callable[..., Sim]) -> None:
    sim = make_sim(url_ttl=60)
    task_id = await sim.create()
    first = (await sim.task(task_id))["content"]["video_url"]
    sim.tick(45)
    second = (await sim.task(task_id))["content"]["video_url"]
    sim.tick(45)

    assert first != second
    assert (await anonymous(sim).get(first)).status_code == 403
    assert (await anonymous(sim).get(second)).status_code == 200


async def test_expired_url_is_denied_with_tos_xml(make_sim: Callable[..., Sim]) -> None:
    sim = make_sim(url_ttl=600)
    url = await video_url(sim)
    sim.tick(601)
    response = await anonymous(sim).get(url)
    assert response.status_code == 403
    assert response.text == (
        "<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>")
    assert "cgt-" not in response.text


@pytest.mark.parametrize("tamper", [
    lambda url: with_query(url, **{"X-Tos-Expires": "999999"}),
    lambda url: with_query(url, **{"X-Tos-Signature": "0" * 64}),
    lambda url: with_query(url, **{"X-Tos-Date": "20990101T000000Z"}),
    lambda url: url.replace("video.mp4", "last_frame.png"),
    lambda url: url.split("?")[0],
])
async def test_tampered_url_is_denied(
    make_sim: Callable[..., Sim], tamper: Callable[[str], str],
) -> None:
    sim = make_sim()
    response = await anonymous(sim).get(tamper(await video_url(sim)))
    assert response.status_code == 403
    assert response.text.startswith("<Error><Code>AccessDenied</Code>")


async def test_signed_files_outlive_the_deleted_task(make_sim: Callable[..., Sim]) -> None:
    sim = make_sim()
    task_id = await sim.create()
    url = (await sim.task(task_id))["content"]["video_url"]
    await sim.client.delete(f"{TASKS}/{task_id}")
    assert (await anonymous(sim).get(url)).status_code == 200


async def test_sample_mp4_is_parseable_box_by_box(make_sim: Callable[..., Sim]) -> None:
    sim = make_sim()
    body = (await anonymous(sim).get(await video_url(sim))).content
    boxes = mp4_boxes(lambda offset, n: body[offset:offset + n], len(body))
    assert boxes[0][0] == "ftyp"
    assert {"moov", "mdat"} <= {kind for kind, _, _ in boxes}
    assert len(body) < 100_000


async def test_padded_mp4_has_the_exact_size_and_ends_in_a_free_box(
    make_sim: Callable[..., Sim],
) -> None:
    sim = make_sim(video_bytes=3_000_000)
    response = await anonymous(sim).get(await video_url(sim))
    body = response.content
    assert len(body) == int(response.headers["content-length"]) == 3_000_000

    boxes = mp4_boxes(lambda offset, n: body[offset:offset + n], len(body))
    sample = load_sample_video()
    assert body.startswith(sample)
    assert boxes[-1] == ("free", len(sample), 3_000_000 - len(sample))
    assert body[len(sample) + 8:].count(0) == 3_000_000 - len(sample) - 8


async def test_range_requests_return_the_right_bytes(make_sim: Callable[..., Sim]) -> None:
    sim = make_sim(video_bytes=1_000_000)
    url = await video_url(sim)
    client = anonymous(sim)
    whole = (await client.get(url)).content

    for header, start, stop in [
        ("bytes=0-99", 0, 100),
        ("bytes=20000-20999", 20000, 21000),  # spans the sample/padding boundary
        ("bytes=999990-", 999990, 1_000_000),
        ("bytes=-16", 999984, 1_000_000),
        ("bytes=500-5000000", 500, 1_000_000),
    ]:
        response = await client.get(url, headers={"Range": header})
        assert response.status_code == 206, header
        assert response.headers["content-range"] == f"bytes {start}-{stop - 1}/1000000"
        assert response.content == whole[start:stop], header

    unsatisfiable = await client.get(url, headers={"Range": "bytes=1000000-"})
    assert unsatisfiable.status_code == 416
    assert unsatisfiable.headers["content-range"] == "bytes */1000000"
    several = await client.get(url, headers={"Range": "bytes=0-1,5-6"})
    assert (several.status_code, len(several.content)) == (200, 1_000_000)


async def test_head_gives_headers_only(make_sim: Callable[..., Sim]) -> None:
    sim = make_sim(video_bytes=500_000)
    response = await anonymous(sim).head(await video_url(sim))
    assert response.status_code == 200
    assert response.headers["content-length"] == "500000"
    assert response.headers["content-type"] == "video/mp4"
    assert response.content == b""


async def test_last_frame_is_a_png_of_the_output_size(make_sim: Callable[..., Sim]) -> None:
    sim = make_sim()
    task = await sim.task(await sim.create(
        resolution="1080p", ratio="9:16", return_last_frame=True))
    response = await anonymous(sim).get(task["content"]["last_frame_url"])
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/png"

    png = response.content
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    length, kind = struct.unpack(">I4s", png[8:16])
    assert (length, kind) == (13, b"IHDR")
    width, height, depth, colour = struct.unpack(">IIBB", png[16:26])
    assert (width, height, depth, colour) == (1080, 1920, 8, 2)
    (idat_length,) = struct.unpack(">I", png[33:37])
    assert png[37:41] == b"IDAT"
    assert len(zlib.decompress(png[41:41 + idat_length])) == 1920 * (1 + 3 * 1080)
    assert png.endswith(b"IEND\xaeB`\x82")
