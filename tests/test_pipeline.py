"""The create pipeline's steps, in order, on both surfaces: one table of requests and outcomes.

Every row runs against a real gateway in front of the simulator. A row names the key's policy,
what is wrong with the request (nothing, or several things at once, so the step that answers
shows the order: model → key permission → validation → policy → upstream), and the answer
expected; the simulator's request log says whether the upstream was asked.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from tests.conftest import GatewayFactory, SimulatorFactory
from tests.leaks import CANARY_ADMIN_KEY
from tests.servers import ServerThread

ADMIN = {"Authorization": f"Bearer {CANARY_ADMIN_KEY}"}
MODEL = "doubao-seedance-2-0-fast-260128"
OTHER_MODEL = "doubao-seedance-2-0-260128"
NATIVE = "/api/v3/contents/generations/tasks"


@dataclass(frozen=True)
class Row:
    name: str
    expect_status: int | dict[str, int]  # one for both surfaces, or surface → status
    expect_code: dict[str, str]  # surface → error code (empty: success)
    policy: dict[str, Any] = field(default_factory=dict)
    model: str = MODEL
    invalid: bool = False  # a duration no model accepts
    spend_first: bool = False  # one valid create first (uses the rpm of 1, the budget)
    upstream_creates: int = 0  # of the request under test


ROWS = [
    Row("accepted", 200, {}, upstream_creates=1),
    Row("unknown model, before permission and validation", {"native": 404, "openai": 400},
        {"native": "InvalidEndpointOrModel.NotFound", "openai": "model_not_found"},
        policy={"models": [MODEL]}, model="no-such-model", invalid=True),
    Row("permission before validation", 403,
        {"native": "AccessDenied", "openai": "AccessDenied"},
        policy={"models": [MODEL]}, model=OTHER_MODEL, invalid=True),
    Row("validation before the rate policy", 400,
        {"native": "InvalidParameter", "openai": "invalid_type"},
        policy={"rpm": 1}, invalid=True, spend_first=True),
    Row("rate policy", 429, {"native": "rpm_exceeded", "openai": "rpm_exceeded"},
        policy={"rpm": 1}, spend_first=True),
    Row("in-flight policy", 429,
        {"native": "max_in_flight_exceeded", "openai": "max_in_flight_exceeded"},
        policy={"max_in_flight": 1}, spend_first=True),
    Row("budget policy", 429,
        {"native": "daily_tokens_exceeded", "openai": "daily_tokens_exceeded"},
        policy={"daily_tokens": 1000}),
]


@pytest.fixture
def gateway(start_simulator: SimulatorFactory, start_gateway: GatewayFactory,
            backend_url: str) -> ServerThread:
    sim = start_simulator(delay=60)  # tasks stay queued: in-flight slots stay held
    gateway = start_gateway(
        sim.url + "/api/v3", store_url=backend_url,
        extra={"admin": {"keys": [{"name": "ops", "secret": "${ADMIN_KEY}"}]}},
        env={"ADMIN_KEY": CANARY_ADMIN_KEY})
    gateway.simulator = sim  # type: ignore[attr-defined]
    return gateway


def _create(gateway: ServerThread, key: str, surface: str, *, model: str,
            invalid: bool) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"}
    if surface == "native":
        body: dict[str, Any] = {"model": model, "content": [{"type": "text", "text": "x"}],
                                "resolution": "720p", "ratio": "16:9",
                                "duration": 99 if invalid else 5}
        return httpx.post(gateway.url + NATIVE, headers=headers, json=body)
    body = {"prompt": "x", "model": model, "size": "1280x720",
            "seconds": "seven" if invalid else "5"}
    return httpx.post(gateway.url + "/v1/videos", headers=headers, json=body)


def _upstream_creates(sim: ServerThread) -> int:
    seen = httpx.get(sim.url + "/_sim/requests").json()
    return sum(1 for r in seen if r["method"] == "POST" and r["path"].endswith("/tasks"))


@pytest.mark.parametrize("surface", ["native", "openai"])
@pytest.mark.parametrize("row", ROWS, ids=[r.name for r in ROWS])
def test_create_pipeline_steps(gateway: ServerThread, surface: str, row: Row) -> None:
    sim: ServerThread = gateway.simulator  # type: ignore[attr-defined]
    made = httpx.post(f"{gateway.url}/admin/keys", headers=ADMIN,
                      json={"name": f"member-{surface}", **row.policy})
    assert made.status_code == 201, made.text
    key = made.json()["key"]
    if row.spend_first:
        first = _create(gateway, key, surface, model=MODEL, invalid=False)
        assert first.status_code == 200, first.text
    httpx.delete(sim.url + "/_sim/requests")

    answer = _create(gateway, key, surface, model=row.model, invalid=row.invalid)

    status = row.expect_status
    assert answer.status_code == (status if isinstance(status, int) else status[surface]), \
        answer.text
    if row.expect_code:
        error = answer.json()["error"]
        assert error["code"] == row.expect_code[surface], error
    else:
        task_id = answer.json()["id"]
        path = f"{NATIVE}/{task_id}" if surface == "native" else f"/v1/videos/{task_id}"
        owned = httpx.get(gateway.url + path, headers={"Authorization": f"Bearer {key}"})
        assert owned.status_code == 200, owned.text
    assert _upstream_creates(sim) == row.upstream_creates
