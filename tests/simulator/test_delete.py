"""DELETE /tasks/{id}: cancel when queued, refuse when running or cancelled, else delete."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from .simkit import KEY, TASKS, Sim

pytestmark = pytest.mark.anyio


async def test_queued_task_is_cancelled_and_stays_gettable(make_sim: Callable[..., Sim]) -> None:
    sim = make_sim(delay=60)
    task_id = await sim.create()
    response = await sim.client.request("DELETE", f"{TASKS}/{task_id}", content=b"{}")
    assert (response.status_code, response.json()) == (200, {})

    sim.tick(3600)  # a cancelled task never resumes
    task = await sim.task(task_id)
    assert (task["status"], task["content"]) == ("cancelled", {})
    assert "usage" not in task


@pytest.mark.parametrize(("prompt", "before"), [
    ("[sim:never]", "running"),
    ("cancel me first", "cancelled"),
])
async def test_running_and_cancelled_tasks_cannot_be_deleted(
    make_sim: Callable[..., Sim], prompt: str, before: str,
) -> None:
    sim = make_sim(delay=60)
    task_id = await sim.create(prompt)
    if before == "running":
        sim.tick(30)
    else:
        await sim.client.delete(f"{TASKS}/{task_id}")

    response = await sim.client.delete(f"{TASKS}/{task_id}")
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["code"], error["type"]) == ("InvalidAction.TaskStatusNotAllowed", "BadRequest")
    assert error["message"].startswith(f"The task is {before} and cannot be")
    assert (await sim.task(task_id))["status"] == before


@pytest.mark.parametrize(("prompt", "status"), [
    ("a fox", "succeeded"), ("[sim:fail]", "failed"), ("[sim:expire]", "expired"),
])
async def test_finished_tasks_are_deleted(
    make_sim: Callable[..., Sim], prompt: str, status: str,
) -> None:
    sim = make_sim()
    task_id = await sim.create(prompt)
    assert (await sim.task(task_id))["status"] == status

    response = await sim.client.delete(f"{TASKS}/{task_id}")
    assert (response.status_code, response.json()) == (200, {})
    assert (await sim.client.get(f"{TASKS}/{task_id}")).status_code == 404
    assert (await sim.client.get(TASKS)).json()["total"] == 0
    assert (await sim.client.delete(f"{TASKS}/{task_id}")).status_code == 404


async def test_other_keys_cannot_delete(make_sim: Callable[..., Sim]) -> None:
    sim = make_sim(upstream_keys=(KEY, "key-b"))
    task_id = await sim.create()  # created with the client's default key
    other = await sim.client.delete(f"{TASKS}/{task_id}", headers={"Authorization": "Bearer key-b"})
    assert other.status_code == 404
