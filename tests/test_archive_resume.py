"""An archive copy cut short by kill -9 is finished by the next start on the same store.

A real `python -m gateway serve` process copies a big video that the simulator serves slowly
(the `file_bytes_per_second` knob); it is killed while the pending marker exists and part of
the file is written but no manifest is, then started again: its first sweep finds the marker
and copies the file again, whole.
"""

from __future__ import annotations

import hashlib
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from gateway.simulator.media import CHUNK_SIZE, load_sample_video, padded_video
from tests.conftest import SimulatorFactory
from tests.servers import FAKE_ALICE_KEY, RestartableGateway

ALICE = {"Authorization": f"Bearer {FAKE_ALICE_KEY}"}
NATIVE = "/api/v3/contents/generations/tasks"
VIDEO_BYTES = 12 * 1024 * 1024
SLOW = 2 * 1024 * 1024  # bytes per second: the copy takes ~6 s, the first 4 MiB write at ~2 s


def expected_digest(size: int) -> str:
    """What the simulator serves as a `size`-byte video, hashed without holding it whole."""
    digest = hashlib.sha256()
    for chunk in padded_video(load_sample_video(), size).chunks(0, size, bytes(CHUNK_SIZE)):
        digest.update(chunk)
    return digest.hexdigest()


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


def wait_for(check: Callable[[], bool], what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"{what}: not within {timeout} s"
        time.sleep(0.05)


def test_kill_9_mid_copy_resumes_on_restart(start_simulator: SimulatorFactory,
                                            tmp_path: Path) -> None:
    sim = start_simulator(delay=0.2, video_bytes=VIDEO_BYTES)
    assert httpx.post(sim.url + "/_sim/faults", json={"file_bytes_per_second": SLOW},
                      timeout=10).status_code == 200
    folder = tmp_path / "archive"
    config = {
        "upstreams": [{"name": "ark", "base_url": sim.url + "/api/v3",
                       "keys": [{"name": "main", "secret": "${UPSTREAM_KEY}"}]}],
        "client_keys": [{"name": "alice", "secret": "${ALICE_KEY}"}],
        "store": {"url": f"sqlite:///{tmp_path}/tasks.db"},
        "results": {"archive": True, "store": f"file://{folder}", "sweep_interval": 0.2,
                    "signing_secret": "${LINK_SECRET}"},
    }
    link_secret = {"LINK_SECRET": "test-link-signing-secret-0123456789"}
    serve = RestartableGateway(tmp_path, config, link_secret).start
    first = serve("first.log")
    try:
        created = httpx.post(first.url + NATIVE, headers=ALICE, timeout=10, json={
            "model": "doubao-seedance-2-0-260128",
            "content": [{"type": "text", "text": "a kite"}]})
        assert created.status_code == 200, created.text
        task_id = created.json()["id"]
        stored, marker = folder / task_id, folder / "_pending" / task_id

        def succeeded() -> bool:  # a poll sees it finish: that marks it pending, starts the copy
            task = httpx.get(f"{first.url}{NATIVE}/{task_id}", headers=ALICE, timeout=10)
            return bool(task.json()["status"] == "succeeded")

        wait_for(succeeded, "the task did not succeed", 15)

        def part_written() -> bool:
            parts = list(stored.glob(".video.mp4.*.part")) if stored.exists() else []
            return any(p.stat().st_size > 0 for p in parts)

        wait_for(part_written, "the copy wrote nothing", 20)
        os.kill(first.proc.pid, signal.SIGKILL)
        first.proc.wait()
    finally:
        first.stop()
    assert marker.exists(), "the pending marker is gone before the copy finished"
    assert not (stored / "manifest.json").exists(), "killed too late: the copy had finished"
    assert not (stored / "video.mp4").exists()
    abandoned = list(stored.glob(".video.mp4.*.part"))
    assert abandoned, "the killed copy left no partial file"
    for part in abandoned:  # as if the restart came an hour later: the part is abandoned
        old = time.time() - 3600
        os.utime(part, (old, old))

    # Full speed now: the second start finishes what the first one began.
    assert httpx.post(sim.url + "/_sim/faults", json={"file_bytes_per_second": 0},
                      timeout=10).status_code == 200
    second = serve("second.log")
    try:
        wait_for(lambda: (stored / "manifest.json").exists(), "no manifest after restart", 30)
        wait_for(lambda: not marker.exists(), "the pending marker stayed", 10)
    finally:
        second.stop()
    video = stored / "video.mp4"
    assert video.stat().st_size == VIDEO_BYTES
    assert file_digest(video) == expected_digest(VIDEO_BYTES)
    assert not list(stored.glob(".*.part")), "the killed copy's partial file stayed"
