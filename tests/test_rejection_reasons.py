"""`rejected_requests_total{reason}` names the limit that refused a request: rpm, in_flight,
budget (tokens or cost), model (not allowed for the key), disabled, expired."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.conftest import GatewayFactory, SimulatorFactory
from tests.leaks import CANARY_ADMIN_KEY
from tests.servers import FAKE_BOB_KEY, ServerThread
from tests.test_metrics import scrape, value

ADMIN = {"Authorization": f"Bearer {CANARY_ADMIN_KEY}"}
MODEL = "doubao-seedance-2-0-fast-260128"
NATIVE = "/api/v3/contents/generations/tasks"
REJECTED = "seedance_gateway_rejected_requests_total"


def new_key(gateway: ServerThread, name: str, **policy: Any) -> dict[str, str]:
    created = httpx.post(f"{gateway.url}/admin/keys", headers=ADMIN,
                         json={"name": name, **policy})
    assert created.status_code == 201, created.text
    return {"Authorization": f"Bearer {created.json()['key']}"}


def create(gateway: ServerThread, headers: dict[str, str], surface: str,
           model: str = MODEL) -> httpx.Response:
    if surface == "native":
        return httpx.post(gateway.url + NATIVE, headers=headers, json={
            "model": model, "content": [{"type": "text", "text": "x"}]})
    return httpx.post(gateway.url + "/v1/videos", headers=headers,
                      json={"prompt": "x", "model": model})


def rpm(gateway: ServerThread, surface: str) -> httpx.Response:
    headers = new_key(gateway, "rita", rpm=1)
    path = NATIVE if surface == "native" else "/v1/videos"
    assert httpx.get(gateway.url + path, headers=headers).status_code == 200
    return httpx.get(gateway.url + path, headers=headers)


def in_flight(gateway: ServerThread, surface: str) -> httpx.Response:
    headers = new_key(gateway, "ivan", max_in_flight=1)
    assert create(gateway, headers, surface).status_code == 200
    return create(gateway, headers, surface)


def budget(gateway: ServerThread, surface: str) -> httpx.Response:
    return create(gateway, new_key(gateway, "bea", daily_tokens=1000), surface)


def model(gateway: ServerThread, surface: str) -> httpx.Response:
    return create(gateway, {"Authorization": f"Bearer {FAKE_BOB_KEY}"}, surface,
                  "doubao-seedance-2-0-260128")


def disabled(gateway: ServerThread, surface: str) -> httpx.Response:
    headers = new_key(gateway, "dora")
    assert httpx.patch(f"{gateway.url}/admin/keys/dora", headers=ADMIN,
                       json={"disabled": True}).status_code == 200
    return create(gateway, headers, surface)


def expired(gateway: ServerThread, surface: str) -> httpx.Response:
    return create(gateway, new_key(gateway, "eve", expires_at=1), surface)


REFUSALS: dict[str, tuple[Callable[[ServerThread, str], httpx.Response], int]] = {
    "rpm": (rpm, 429), "in_flight": (in_flight, 429), "budget": (budget, 429),
    "model": (model, 403), "disabled": (disabled, 403), "expired": (expired, 403),
}


@pytest.fixture
def gateway(start_simulator: SimulatorFactory, start_gateway: GatewayFactory) -> ServerThread:
    sim = start_simulator(delay=30)  # tasks stay running: in-flight slots stay held
    return start_gateway(sim.url + "/api/v3", bob_models=[MODEL], extra={
        "admin": {"keys": [{"name": "ops", "secret": "${ADMIN_KEY}"}]}},
        env={"ADMIN_KEY": CANARY_ADMIN_KEY})


@pytest.mark.parametrize("surface", ["native", "openai"])
@pytest.mark.parametrize("reason", list(REFUSALS))
def test_each_refusal_counts_its_reason(gateway: ServerThread, reason: str,
                                        surface: str) -> None:
    refuse, status = REFUSALS[reason]
    before = scrape(gateway.url)
    refused = refuse(gateway, surface)
    assert refused.status_code == status, refused.text
    after = scrape(gateway.url)
    counted = {r: value(after, REJECTED, surface=surface, reason=r)
               - value(before, REJECTED, surface=surface, reason=r)
               for r in ("rpm", "in_flight", "budget", "model", "disabled", "expired",
                         "other", "model_not_allowed")}
    assert counted == {**dict.fromkeys(counted, 0), reason: 1}


def test_a_cost_budget_refusal_counts_as_budget(start_simulator: SimulatorFactory,
                                                start_gateway: GatewayFactory) -> None:
    gateway = start_gateway(start_simulator(delay=30).url + "/api/v3", extra={
        "admin": {"keys": [{"name": "ops", "secret": "${ADMIN_KEY}"}]},
        "prices": {"currency": "EUR", "models": {MODEL: {"per_million_tokens": 1}}}},
        env={"ADMIN_KEY": CANARY_ADMIN_KEY})
    refused = create(gateway, new_key(gateway, "cody", daily_cost=0.01), "openai")
    assert refused.status_code == 429 and refused.json()["error"]["code"] == "daily_cost_exceeded"
    assert value(scrape(gateway.url), REJECTED, surface="openai", reason="budget") == 1
