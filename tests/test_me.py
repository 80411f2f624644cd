"""GET /me over real sockets: a key's models, limits, usage, what is left, tasks in flight."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from tests.conftest import GatewayFactory, SimulatorFactory
from tests.leaks import CANARY_ADMIN_KEY
from tests.servers import FAKE_ALICE_KEY, FAKE_BOB_KEY, ServerThread

ADMIN = {"Authorization": f"Bearer {CANARY_ADMIN_KEY}"}
MODEL = "doubao-seedance-2-0-fast-260128"
NATIVE = "/api/v3/contents/generations/tasks"
TOKENS_720P_5S = 1280 * 720 * (24 * 5 + 1) // 1024  # 108900
PRICES = {"currency": "CNY", "models": {MODEL: {"per_million_tokens": 10}}}


def me(gateway: ServerThread, key: str) -> httpx.Response:
    return httpx.get(gateway.url + "/me", headers={"Authorization": f"Bearer {key}"})


def create(gateway: ServerThread, key: str) -> httpx.Response:
    return httpx.post(gateway.url + NATIVE, headers={"Authorization": f"Bearer {key}"}, json={
        "model": MODEL, "content": [{"type": "text", "text": "x"}], "resolution": "720p",
        "ratio": "16:9", "duration": 5})


@pytest.fixture
def team(start_simulator: SimulatorFactory, start_gateway: GatewayFactory,
         backend_url: str) -> ServerThread:
    sim = start_simulator(delay=30)  # tasks stay running: they stay in flight
    return start_gateway(sim.url + "/api/v3", store_url=backend_url, extra={
        "admin": {"keys": [{"name": "ops", "secret": "${ADMIN_KEY}"}]}, "prices": PRICES},
        bob_models=["sora-2", MODEL], env={"ADMIN_KEY": CANARY_ADMIN_KEY})


def test_me_shows_a_stored_key_limits_usage_and_what_is_left(team: ServerThread) -> None:
    created = httpx.post(f"{team.url}/admin/keys", headers=ADMIN, json={
        "name": "member-1", "models": [MODEL], "rpm": 100, "max_in_flight": 3,
        "daily_tokens": 500_000, "monthly_tokens": 2_000_000, "daily_cost": 5,
        "monthly_cost": 100})
    assert created.status_code == 201, created.text
    key = created.json()["key"]
    empty = me(team, key)
    assert empty.status_code == 200 and empty.headers["content-type"].startswith(
        "application/json")
    assert empty.json()["usage"]["today"]["cost"] is None  # nothing priced yet
    for _ in range(2):
        assert create(team, key).status_code == 200
    body = me(team, key).json()
    now = time.gmtime()
    day, month = time.strftime("%Y-%m-%d", now), time.strftime("%Y-%m", now)
    assert body == {
        "object": "gateway.key", "name": "member-1", "models": [MODEL],
        "limits": {"rpm": 100, "max_in_flight": 3, "daily_tokens": 500_000,
                   "monthly_tokens": 2_000_000, "daily_cost": 5.0, "monthly_cost": 100.0},
        "usage": {"today": {"day": day, "tasks": 2, "tokens": 2 * TOKENS_720P_5S,
                            "cost": 2.178},
                  "month": {"month": month, "tasks": 2, "tokens": 2 * TOKENS_720P_5S,
                            "cost": 2.178}},
        "remaining": {"daily_tokens": 500_000 - 2 * TOKENS_720P_5S,
                      "monthly_tokens": 2_000_000 - 2 * TOKENS_720P_5S,
                      "daily_cost": 2.822, "monthly_cost": 97.822},
        "currency": "CNY", "in_flight": 2, "webhook_url": None,
    }


def test_me_for_a_config_key_has_no_limits(team: ServerThread) -> None:
    assert create(team, FAKE_BOB_KEY).status_code == 200
    body: dict[str, Any] = me(team, FAKE_BOB_KEY).json()
    assert body["name"] == "bob"
    # The same ids /v1/models lists for the key.
    listed = httpx.get(team.url + "/v1/models",
                       headers={"Authorization": f"Bearer {FAKE_BOB_KEY}"})
    if listed.status_code == 200:
        assert body["models"] == [m["id"] for m in listed.json()["data"]]
    assert body["models"] == sorted(["sora-2", MODEL])
    assert set(body["limits"].values()) == {None}
    assert set(body["remaining"].values()) == {None}
    assert body["in_flight"] == 1 and body["usage"]["today"]["tasks"] == 1
    assert me(team, FAKE_ALICE_KEY).json()["in_flight"] == 0


@pytest.mark.parametrize("authorization", [None, "Bearer sgw-not-a-key", "Basic abc"])
def test_me_refuses_a_bad_key_in_openai_envelope(team: ServerThread,
                                                 authorization: str | None) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    answer = httpx.get(team.url + "/me", headers=headers)
    videos = httpx.get(team.url + "/v1/videos", headers=headers)
    assert answer.status_code == videos.status_code == 401
    assert set(answer.json()["error"]) == {"message", "type", "param", "code"}
    assert answer.json() == videos.json()
    assert CANARY_ADMIN_KEY not in answer.text


def test_me_answers_only_get(team: ServerThread) -> None:
    answer = httpx.post(team.url + "/me", headers={"Authorization": f"Bearer {FAKE_BOB_KEY}"})
    assert answer.status_code == 405 and "error" in answer.json()
    assert set(answer.json()["error"]) == {"message", "type", "param", "code"}
