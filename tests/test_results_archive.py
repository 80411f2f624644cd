"""The result archive: a succeeded task's video and last frame are copied into the gateway's
result store and served from there, on both surfaces, after the upstream is gone.

Real sockets throughout: a gateway (archive on, a fast sweep) in front of the simulator, on
both task-store backends. Native answers point at `/files/{id}/{name}?expires=…&sig=…`
links that work without Authorization; a tampered or expired link is refused (403).
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.app import create_app
from gateway.results.links import LinkSigner
from tests.conftest import SimulatorFactory
from tests.leaks import LeakTrap, RecordingApp
from tests.servers import FAKE_ALICE_KEY, ServerThread, gateway_config
from tests.simulator.simkit import FakeClock

NATIVE = "/api/v3/contents/generations/tasks"
MODEL = "doubao-seedance-2-0-260128"
ALICE = {"Authorization": f"Bearer {FAKE_ALICE_KEY}"}
LINK_SECRET = "test-link-signing-secret-0123456789"
DAY = 86400


class Archived:
    def __init__(self, server: ServerThread, sim: ServerThread, clock: FakeClock,
                 results: Path) -> None:
        self.server, self.sim, self.clock, self.results = server, sim, clock, results

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.get(self.server.url + path, headers={**ALICE, **kwargs.pop("headers", {})},
                         timeout=10, **kwargs)

    def create(self) -> str:
        created = httpx.post(self.server.url + NATIVE, headers=ALICE, timeout=10, json={
            "model": MODEL, "content": [{"type": "text", "text": "a kite"}],
            "resolution": "720p", "ratio": "16:9", "duration": 5, "return_last_frame": True})
        assert created.status_code == 200, created.text
        return str(created.json()["id"])

    def archived_task(self, task_id: str) -> dict[str, Any]:
        """Polls the native GET until the task is archived (its URLs are the gateway's)."""
        deadline = time.monotonic() + 15
        while True:
            task = self.get(f"{NATIVE}/{task_id}")
            assert task.status_code == 200, task.text
            body: dict[str, Any] = task.json()
            if str(body.get("content", {}).get("video_url", "")).startswith(self.server.url):
                return body
            assert body["status"] in ("queued", "running", "succeeded"), task.text
            assert time.monotonic() < deadline, f"not archived in 15 s: {task.text}"
            time.sleep(0.1)


ArchivedFactory = Callable[..., Archived]


class MovingClock(FakeClock):
    """Real time, plus whatever the test skips ahead (polls need time to pass)."""

    def __call__(self) -> float:
        return time.time() + self.now




@pytest.fixture
def archived_gateway(start_simulator: SimulatorFactory, leak_trap: LeakTrap,
                     tmp_path: Path) -> Iterator[ArchivedFactory]:
    started: list[ServerThread] = []

    def start(store_url: str, env: dict[str, str] | None = None, **results: Any) -> Archived:
        sim = start_simulator(delay=0.3)
        clock = MovingClock(0.0)
        folder = tmp_path / "archive"
        extra = {"results": {"store": f"file://{folder}", "sweep_interval": 0.2,
                             "signing_secret": "${LINK_SECRET}", **results}}
        config = gateway_config(sim.url + "/api/v3", store_url=store_url, extra=extra,
                                env={"LINK_SECRET": LINK_SECRET, **(env or {})})
        server = ServerThread(RecordingApp(create_app(config, clock=clock), leak_trap)).start()
        started.append(server)
        return Archived(server, sim, clock, folder)

    yield start
    for server in started:
        server.stop()


def test_archive_serves_both_surfaces_after_the_upstream_is_gone(
        archived_gateway: ArchivedFactory, backend_url: str) -> None:
    gateway = archived_gateway(backend_url)
    task_id = gateway.create()
    task = gateway.archived_task(task_id)
    video_link, frame_link = task["content"]["video_url"], task["content"]["last_frame_url"]
    assert f"/files/{task_id}/video.mp4?expires=" in video_link
    assert f"/files/{task_id}/last_frame.png?expires=" in frame_link
    listed = gateway.get(NATIVE, params={"page_size": 10}).json()["items"]
    assert [t["content"]["video_url"] for t in listed if t["id"] == task_id] == [video_link]
    gateway.sim.stop()  # from here on the upstream answers nothing

    again = gateway.get(f"{NATIVE}/{task_id}")  # the record answers: no upstream call
    assert again.status_code == 200 and again.json()["status"] == "succeeded", again.text
    video = httpx.get(video_link, timeout=10)  # no Authorization: the link is the credential
    assert video.status_code == 200, video.text
    assert video.headers["content-type"] == "video/mp4"
    assert video.content[4:8] == b"ftyp"
    assert int(video.headers["content-length"]) == len(video.content)
    frame = httpx.get(frame_link, timeout=10)
    assert frame.status_code == 200 and frame.content.startswith(b"\x89PNG"), frame.text
    part = httpx.get(video_link, headers={"Range": "bytes=10-109"}, timeout=10)
    assert part.status_code == 206, part.text
    assert part.content == video.content[10:110]
    assert part.headers["content-range"] == f"bytes 10-109/{len(video.content)}"

    openai = gateway.get(f"/v1/videos/{task_id}/content")
    assert openai.status_code == 200, openai.text
    assert openai.content == video.content
    thumb = gateway.get(f"/v1/videos/{task_id}/content", params={"variant": "thumbnail"})
    assert thumb.status_code == 200 and thumb.content == frame.content, thumb.text
    tail = gateway.get(f"/v1/videos/{task_id}/content", headers={"Range": "bytes=-100"})
    assert tail.status_code == 206 and tail.content == video.content[-100:], tail.text
    stale = gateway.get(f"/v1/videos/{task_id}/content",
                        headers={"Range": "bytes=0-9", "If-Range": '"another-file"'})
    assert stale.status_code == 200 and stale.content == video.content
    beyond = gateway.get(f"/v1/videos/{task_id}/content",
                         headers={"Range": f"bytes={len(video.content)}-"})
    assert beyond.status_code == 416, beyond.text
    assert beyond.headers["content-range"] == f"bytes */{len(video.content)}"


def test_tampered_or_expired_links_are_refused(archived_gateway: ArchivedFactory,
                                               tmp_path: Path) -> None:
    gateway = archived_gateway(f"sqlite:///{tmp_path}/tasks.db")
    task_id = gateway.create()
    link = gateway.archived_task(task_id)["content"]["video_url"]
    assert httpx.get(link, timeout=10).status_code == 200
    forged = [
        link[:-1] + ("0" if link[-1] != "0" else "1"),  # one byte of the signature
        link.replace("video.mp4", "last_frame.png"),  # another file, the same signature
        link.replace("expires=", "expires=9"),  # a later expiry
        link.split("&sig=")[0],  # no signature
    ]
    for url in forged:
        refused = httpx.get(url, timeout=10)
        assert refused.status_code == 403, (url, refused.text)
        assert refused.json()["error"]["code"] == "AccessDenied"
    signer = LinkSigner(LINK_SECRET.encode(), ttl=60)
    gateway.clock.advance(-2 * 3600)  # a link signed two hours ago, valid for a minute
    expired = signer.link(gateway.server.url, task_id, "video.mp4", now=gateway.clock())
    gateway.clock.advance(2 * 3600)
    refused = httpx.get(expired, timeout=10)
    assert refused.status_code == 403, refused.text
    assert refused.json()["error"]["code"] == "AccessDenied"


def test_retention_removes_files_and_the_task(archived_gateway: ArchivedFactory,
                                              backend_url: str) -> None:
    gateway = archived_gateway(backend_url, retention_days=30)
    task_id = gateway.create()
    gateway.archived_task(task_id)
    stored = gateway.results / task_id
    assert sorted(p.name for p in stored.iterdir()) == [
        "last_frame.png", "manifest.json", "video.mp4"]
    gateway.clock.advance(29 * DAY)
    time.sleep(0.5)  # sweeps run: nothing is due yet
    assert (stored / "video.mp4").exists()
    gateway.clock.advance(2 * DAY)
    deadline = time.monotonic() + 5
    while stored.exists():
        assert time.monotonic() < deadline, "files past retention were not removed in 5 s"
        time.sleep(0.1)
    native = gateway.get(f"{NATIVE}/{task_id}")
    assert native.status_code == 404 and native.json()["error"]["code"] == "NotFound.TaskID"
    openai = gateway.get(f"/v1/videos/{task_id}/content")
    assert openai.status_code == 404, openai.text
    assert openai.json()["error"]["code"] == "video_not_found"


@pytest.mark.parametrize("surface", ["native", "openai"])
def test_deleting_a_task_removes_its_archive(archived_gateway: ArchivedFactory,
                                             tmp_path: Path, surface: str) -> None:
    """A deleted video is gone from the archive too: its signed link (no Authorization, so no
    task record is asked) answers 404, and the files, manifest and marker leave the store."""
    gateway = archived_gateway(f"sqlite:///{tmp_path}/tasks.db")
    task_id = gateway.create()
    links = gateway.archived_task(task_id)["content"]
    assert httpx.get(links["video_url"], timeout=10).status_code == 200
    path = f"{NATIVE}/{task_id}" if surface == "native" else f"/v1/videos/{task_id}"
    deleted = httpx.delete(gateway.server.url + path, headers=ALICE, timeout=10)
    assert deleted.status_code == 200, deleted.text

    for link in (links["video_url"], links["last_frame_url"]):
        refused = httpx.get(link, timeout=10)
        assert refused.status_code in (403, 404), (link, refused.text)
        assert refused.json()["error"]["code"] in ("NotFound", "AccessDenied")
    content = gateway.get(f"/v1/videos/{task_id}/content")
    assert content.status_code == 404, content.text
    assert content.json()["error"]["code"] == "video_not_found"
    native = gateway.get(f"{NATIVE}/{task_id}")
    assert native.status_code == 404 and native.json()["error"]["code"] == "NotFound.TaskID"
    assert not (gateway.results / task_id).exists()
    assert not (gateway.results / "_pending" / task_id).exists()
    metrics = httpx.get(gateway.server.url + "/metrics", timeout=10).text
    assert 'seedance_gateway_archive_removed_total{reason="deleted"} 1.0' in metrics
    assert 'seedance_gateway_archive_copies_total{outcome="archived"} 1.0' in metrics


def test_deleting_a_task_the_upstream_forgot_removes_its_archive(
        archived_gateway: ArchivedFactory, tmp_path: Path) -> None:
    """Ark forgets tasks after 7 days while the archive keeps them for 30: deleting one then
    forwards Ark's 404, drops the record, and must not leave the video served by its link."""
    gateway = archived_gateway(f"sqlite:///{tmp_path}/tasks.db")
    task_id = gateway.create()
    link = gateway.archived_task(task_id)["content"]["video_url"]
    lost = httpx.post(f"{gateway.sim.url}/_sim/tasks/{task_id}/lose", json={"requests": 5})
    assert lost.status_code == 200
    deleted = httpx.delete(f"{gateway.server.url}{NATIVE}/{task_id}", headers=ALICE, timeout=10)
    assert deleted.status_code == 404, deleted.text
    assert httpx.get(link, timeout=10).status_code in (403, 404)
    assert not (gateway.results / task_id).exists()


def test_native_urls_stay_arks_when_rewriting_is_off(archived_gateway: ArchivedFactory,
                                                     tmp_path: Path) -> None:
    gateway = archived_gateway(f"sqlite:///{tmp_path}/tasks.db", rewrite_native_urls=False)
    task_id = gateway.create()
    deadline = time.monotonic() + 15
    while not (gateway.results / task_id / "manifest.json").exists():
        assert gateway.get(f"{NATIVE}/{task_id}").status_code == 200  # polls see it finish
        assert time.monotonic() < deadline, "not archived in 15 s"
        time.sleep(0.1)
    task = gateway.get(f"{NATIVE}/{task_id}").json()
    assert task["content"]["video_url"].startswith(gateway.sim.url)
    gateway.sim.stop()
    served = gateway.get(f"/v1/videos/{task_id}/content")  # the archive serves it all the same
    assert served.status_code == 200 and served.content[4:8] == b"ftyp"


@pytest.fixture
def s3_server() -> Iterator[str]:
    """An S3-compatible server on 127.0.0.1 with a `results` bucket (nothing leaves the
    machine): the one .ci/run starts (`moto_server`, named by SEEDANCE_TEST_S3_URL), else moto
    in this process."""
    import boto3

    url = os.environ.get("SEEDANCE_TEST_S3_URL")
    server = None
    if not url:
        from moto.server import ThreadedMotoServer

        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
        server.start()
        host, port = server.get_host_and_port()
        url = f"http://{host}:{port}"
    try:
        s3 = boto3.client("s3", endpoint_url=url, region_name="us-east-1",
                          aws_access_key_id="test", aws_secret_access_key="test")
        if "results" not in {b["Name"] for b in s3.list_buckets()["Buckets"]}:
            s3.create_bucket(Bucket="results")
        yield url
    finally:
        if server is not None:
            server.stop()


def test_s3_backend_archives_and_serves(archived_gateway: ArchivedFactory, s3_server: str,
                                        backend_url: str) -> None:
    env = {"S3_ENDPOINT": s3_server, "S3_KEY_ID": "test", "S3_SECRET": "test"}
    prefix = f"archive-{uuid.uuid4().hex[:12]}"  # the server may be shared by other runs
    gateway = archived_gateway(backend_url, env, store=f"s3://results/{prefix}", s3={
        "endpoint_url": "${S3_ENDPOINT}", "region": "us-east-1",
        "access_key_id": "${S3_KEY_ID}", "secret_access_key": "${S3_SECRET}"})
    task_id = gateway.create()
    link = gateway.archived_task(task_id)["content"]["video_url"]
    import boto3

    s3 = boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1",
                      aws_access_key_id="test", aws_secret_access_key="test")
    stored = {o["Key"] for o in s3.list_objects_v2(Bucket="results", Prefix=prefix)["Contents"]}
    assert {f"{prefix}/{task_id}/video.mp4", f"{prefix}/{task_id}/last_frame.png",
            f"{prefix}/{task_id}/manifest.json"} <= stored
    gateway.sim.stop()
    video = httpx.get(link, timeout=10)
    assert video.status_code == 200 and video.content[4:8] == b"ftyp", video.text
    part = gateway.get(f"/v1/videos/{task_id}/content", headers={"Range": "bytes=4-7"})
    assert part.status_code == 206 and part.content == b"ftyp", part.text
    thumb = gateway.get(f"/v1/videos/{task_id}/content", params={"variant": "thumbnail"})
    assert thumb.status_code == 200 and thumb.content.startswith(b"\x89PNG")
