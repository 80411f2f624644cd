"""End to end over real sockets: the official Ark Python SDK against a uvicorn-served simulator."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import uvicorn
from volcenginesdkarkruntime import Ark  # type: ignore[import-untyped]
from volcenginesdkarkruntime._exceptions import (  # type: ignore[import-untyped]
    ArkAuthenticationError,
    ArkNotFoundError,
)

from gateway.simulator import SimulatorSettings, create_simulator_app

from .simkit import KEY, MODEL, mp4_boxes

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    app = create_simulator_app(SimulatorSettings(delay=0.0, video_bytes=2_000_000))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "simulator did not start"
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


def test_sdk_create_get_list_delete(base_url: str) -> None:
    tasks = Ark(base_url=f"{base_url}/api/v3", api_key=KEY).content_generation.tasks
    created = tasks.create(model=MODEL, content=[{"type": "text", "text": "a fox"}],
                           return_last_frame=True)
    task = tasks.get(task_id=created.id)
    assert (task.status, task.model, task.duration, task.ratio) == ("succeeded", MODEL, 5, "16:9")
    assert task.usage is not None and task.usage.completion_tokens == 108900
    assert task.content is not None and task.content.video_url.startswith(base_url)
    assert [item.id for item in tasks.list(page_size=5, status="succeeded").items] == [created.id]

    tasks.delete(task_id=created.id)
    with pytest.raises(ArkNotFoundError):
        tasks.get(task_id=created.id)

    with pytest.raises(ArkAuthenticationError):
        Ark(base_url=f"{base_url}/api/v3", api_key="wrong").content_generation.tasks.get(
            task_id=created.id)


def test_padded_video_downloads_over_a_socket(base_url: str) -> None:
    tasks = Ark(base_url=f"{base_url}/api/v3", api_key=KEY).content_generation.tasks
    task = tasks.get(task_id=tasks.create(model=MODEL, content=[{"type": "text", "text": "x"}]).id)
    assert task.content is not None
    with httpx.Client() as client:
        body = client.get(task.content.video_url).content
        tail = client.get(task.content.video_url, headers={"Range": "bytes=-100"})
    assert len(body) == 2_000_000
    assert mp4_boxes(lambda offset, n: body[offset:offset + n], len(body))[0][0] == "ftyp"
    assert (tail.status_code, tail.content) == (206, body[-100:])
