"""Create and get: validation, the task object, its timed lifecycle and the prompt markers."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import anyio
import pytest

from .simkit import MODEL, TASKS, Sim

pytestmark = pytest.mark.anyio

# The official Python SDK sends every unset parameter as null.
SDK_NULLS = dict.fromkeys([
    "safety_identifier", "callback_url", "return_last_frame", "service_tier",
    "execution_expires_after", "priority", "generate_audio", "draft", "camera_fixed",
    "watermark", "seed", "resolution", "ratio", "duration", "frames", "tools", "output_format",
    "omni_reference_task_type",
])
TEXT = [{"type": "text", "text": "a red fox"}]


async def test_task_runs_queued_running_succeeded_in_real_time(
    make_sim: Callable[..., Sim],
) -> None:
    sim = make_sim(delay=0.3, real_time=True)
    task_id = await sim.create()
    seen: list[dict[str, Any]] = []
    with anyio.fail_after(3):
        while not seen or seen[-1]["status"] != "succeeded":
            seen.append(await sim.task(task_id))
            await anyio.sleep(0.02)

    statuses = [task["status"] for task in seen]
    assert list(dict.fromkeys(statuses)) == ["queued", "running", "succeeded"]
    assert all(task["content"] == {} and "usage" not in task for task in seen[:-1])
    done = seen[-1]
    assert done["content"]["video_url"].startswith(f"http://sim.test:8123/files/{task_id}/")
    assert done["error"] is None


async def test_lifecycle_timestamps_follow_the_delay(make_sim: Callable[..., Sim]) -> None:
    sim = make_sim(delay=30)
    task_id = await sim.create()
    created = (await sim.task(task_id))["created_at"]
    sim.tick(10)
    running = await sim.task(task_id)
    sim.tick(20)
    done = await sim.task(task_id)

    assert running["status"] == "running"
    assert running["updated_at"] - created in (9, 10, 11)
    assert done["status"] == "succeeded"
    assert done["updated_at"] - created in (29, 30, 31)


async def test_zero_delay_succeeds_at_once_and_delay_is_fixed_at_create(
    make_sim: Callable[..., Sim],
) -> None:
    sim = make_sim(delay=0)
    quick = await sim.create()
    sim.state.faults.delay = 100
    slow = await sim.create()
    assert (await sim.task(quick))["status"] == "succeeded"
    assert (await sim.task(slow))["status"] == "queued"


async def test_create_returns_an_ark_shaped_task_id(make_sim: Callable[..., Sim]) -> None:
    sim = make_sim()
    response = await sim.client.post(TASKS, json={"model": MODEL, "content": TEXT})
    assert list(response.json()) == ["id"]
    assert re.fullmatch(r"cgt-\d{14}-[a-z0-9]{5}", response.json()["id"])


async def test_sdk_style_body_with_nulls_and_unknown_fields_is_accepted(
    make_sim: Callable[..., Sim],
) -> None:
    sim = make_sim()
    body = {"model": MODEL, "content": TEXT, **SDK_NULLS, "ratio": "9:16", "foo": {"bar": 1}}
    response = await sim.client.post(TASKS, json=body)
    assert response.status_code == 200
    task = await sim.task(response.json()["id"])
    assert (task["ratio"], task["resolution"], task["duration"]) == ("9:16", "720p", 5)


@pytest.mark.parametrize(("body", "status", "code", "param"), [
    (b"not json", 400, "InvalidParameter", ""),
    (b"[1, 2]", 400, "InvalidParameter", ""),
    (b'{"content": []}', 400, "MissingParameter", "model"),
    (b'{"model": null, "content": [{"type": "text", "text": "x"}]}', 400, "MissingParameter",
     "model"),
    (b'{"model": "doubao-seedance-2-0-260128"}', 400, "MissingParameter", "content"),
    (b'{"model": "doubao-seedance-2-0-260128", "content": []}', 400, "InvalidParameter",
     "content"),
    (b'{"model": "doubao-seedance-2-0-260128", "content": "hi"}', 400, "InvalidParameter",
     "content"),
    (b'{"model": "doubao-seedance-9", "content": [{"type": "text"}]}', 404,
     "InvalidEndpointOrModel.NotFound", "model"),
    (b'{"model": "doubao-seedance-2-0-260128", "content": [{}], "ratio": "2:1"}', 400,
     "InvalidParameter", "ratio"),
    (b'{"model": "doubao-seedance-2-0-260128", "content": [{}], "duration": "5"}', 400,
     "InvalidParameter", "duration"),
])
async def test_create_rejects_what_ark_rejects_synchronously(
    make_sim: Callable[..., Sim], body: bytes, status: int, code: str, param: str,
) -> None:
    sim = make_sim()
    response = await sim.client.post(TASKS, content=body)
    assert response.status_code == status
    error = response.json()["error"]
    assert (error["code"], error["param"]) == (code, param)
    assert not sim.state.tasks


@pytest.mark.parametrize(("model", "reported"), [
    ("doubao-seedance-2-0-260128", "doubao-seedance-2-0-260128"),
    ("dreamina-seedance-2-0-fast-260128", "dreamina-seedance-2-0-fast-260128"),
    ("doubao-seedance-2.0", "doubao-seedance-2-0-260128"),
    ("doubao-seedance-2-fast", "doubao-seedance-2-0-fast-260128"),
])
async def test_task_reports_the_upstream_model_id(
    make_sim: Callable[..., Sim], model: str, reported: str,
) -> None:
    sim = make_sim()
    assert (await sim.task(await sim.create(model=model)))["model"] == reported


async def test_task_object_matches_the_observed_success_payload(
    make_sim: Callable[..., Sim],
) -> None:
    sim = make_sim()
    task = await sim.task(await sim.create())
    assert task["usage"] == {"completion_tokens": 108900, "total_tokens": 108900}
    assert isinstance(task["seed"], int)
    expected = {
        "model": MODEL, "status": "succeeded", "error": None, "resolution": "720p",
        "ratio": "16:9", "duration": 5, "framespersecond": 24, "service_tier": "default",
        "execution_expires_after": 172800, "generate_audio": True, "draft": False, "priority": 0,
    }
    assert {key: task[key] for key in expected} == expected
    assert set(task["content"]) == {"video_url"}
    assert "safety_identifier" not in task


async def test_task_echoes_request_values(make_sim: Callable[..., Sim]) -> None:
    sim = make_sim()
    task = await sim.task(await sim.create(
        seed=42, resolution="1080p", ratio="3:4", duration=15, generate_audio=False,
        execution_expires_after=3600, priority=3, safety_identifier="user-hash",
        return_last_frame=True,
    ))
    assert task["usage"]["completion_tokens"] == 732108  # 1248×1664, 15 s
    echoed = {
        "seed": 42, "resolution": "1080p", "ratio": "3:4", "duration": 15,
        "generate_audio": False, "execution_expires_after": 3600, "priority": 3,
        "safety_identifier": "user-hash",
    }
    assert {key: task[key] for key in echoed} == echoed
    assert set(task["content"]) == {"video_url", "last_frame_url"}


@pytest.mark.parametrize(("fields", "ratio", "duration", "tokens"), [
    ({"ratio": "adaptive", "duration": -1}, "16:9", 5, 108900),
    ({"resolution": "480p", "ratio": "21:9", "duration": 4}, "21:9", 4, 40594),
    ({"model": "doubao-seedance-2-5-260628", "resolution": "480p"}, "16:9", 5, 48437),  # 854×480
])
async def test_defaults_and_token_bill(
    make_sim: Callable[..., Sim], fields: dict[str, Any], ratio: str, duration: int, tokens: int,
) -> None:
    sim = make_sim()
    task = await sim.task(await sim.create(**fields))
    assert (task["ratio"], task["duration"]) == (ratio, duration)
    assert task["usage"]["completion_tokens"] == tokens


async def test_tasks_belong_to_the_upstream_key_that_created_them(
    make_sim: Callable[..., Sim],
) -> None:
    sim = make_sim(upstream_keys=("key-a", "key-b"))
    created = await sim.client.post(
        TASKS, json={"model": MODEL, "content": TEXT}, headers={"Authorization": "Bearer key-a"})
    task_id = created.json()["id"]

    mine = await sim.client.get(f"{TASKS}/{task_id}", headers={"Authorization": "Bearer key-a"})
    theirs = await sim.client.get(f"{TASKS}/{task_id}", headers={"Authorization": "Bearer key-b"})
    assert mine.status_code == 200
    assert theirs.status_code == 404


async def test_unknown_task_is_not_found(make_sim: Callable[..., Sim]) -> None:
    sim = make_sim()
    response = await sim.client.get(f"{TASKS}/cgt-20250331175019-zzzzz")
    assert response.status_code == 404
    error = response.json()["error"]
    assert (error["code"], error["type"]) == ("NotFound.TaskID", "NotFound")


@pytest.mark.parametrize(("prompt", "status", "error"), [
    ("[sim:fail] a fox", "failed", {
        "code": "OutputVideoSensitiveContentDetected",
        "message": "The request failed because the output video may contain sensitive "
                   "information.",
    }),
    ("a fox [sim:fail-input]", "failed", {
        "code": "InputImageSensitiveContentDetected.PrivacyInformation",
        "message": "The request failed because the input image may contain real person.",
    }),
    ("[sim:expire]", "expired", {
        "code": "TaskExpired", "message": "The task exceeded execution_expires_after.",
    }),
    ("[sim:never]", "running", None),
])
async def test_prompt_markers_choose_the_outcome(
    make_sim: Callable[..., Sim], prompt: str, status: str, error: dict[str, str] | None,
) -> None:
    sim = make_sim(delay=3)
    task_id = await sim.create(prompt)
    sim.tick(10_000)
    task = await sim.task(task_id)
    assert (task["status"], task["error"], task["content"]) == (status, error, {})
    assert "usage" not in task


async def test_only_the_first_text_item_carries_markers(make_sim: Callable[..., Sim]) -> None:
    sim = make_sim()
    content = [
        {"type": "image_url", "image_url": {"url": "https://example.com/[sim:fail].png"}},
        {"type": "text", "text": "a calm lake"},
        {"type": "text", "text": "[sim:fail]"},
    ]
    response = await sim.client.post(TASKS, json={"model": MODEL, "content": content})
    assert (await sim.task(response.json()["id"]))["status"] == "succeeded"
