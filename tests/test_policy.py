"""Per-key policy on both surfaces, budgets from estimate to exact, and the usage report."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from gateway.catalog import preset_models
from gateway.keys.policy import estimate_tokens
from tests.conftest import GatewayFactory, SimulatorFactory
from tests.leaks import CANARY_ADMIN_KEY
from tests.servers import FAKE_ALICE_KEY, FAKE_UPSTREAM_KEY, ServerThread

ADMIN = {"Authorization": f"Bearer {CANARY_ADMIN_KEY}"}
MODEL = "doubao-seedance-2-0-fast-260128"
FAST = next(s for s in preset_models("volcengine", "ark") if s.name == MODEL)
TOKENS_720P_5S = 1280 * 720 * (24 * 5 + 1) // 1024  # 108900, Ark's documented example
NATIVE = "/api/v3/contents/generations/tasks"


@pytest.fixture
def team(start_simulator: SimulatorFactory, start_gateway: GatewayFactory,
         backend_url: str) -> ServerThread:
    sim = start_simulator(delay=30)  # tasks stay queued/running: slots stay held
    return start_gateway(sim.url + "/api/v3", store_url=backend_url,
                         extra={"admin": {"keys": [{"name": "ops", "secret": "${ADMIN_KEY}"}]}},
                         env={"ADMIN_KEY": CANARY_ADMIN_KEY})


def new_key(gateway: ServerThread, name: str, **policy: Any) -> str:
    created = httpx.post(f"{gateway.url}/admin/keys", headers=ADMIN,
                         json={"name": name, **policy})
    assert created.status_code == 201, created.text
    return str(created.json()["key"])


def create(gateway: ServerThread, key: str, surface: str, **extra: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"}
    if surface == "native":
        body = {"model": MODEL, "content": [{"type": "text", "text": "x"}], "resolution": "720p",
                "ratio": "16:9", "duration": 5, **extra}
        return httpx.post(gateway.url + NATIVE, headers=headers, json=body)
    body = {"prompt": "x", "model": MODEL, "size": "1280x720", "seconds": "5", **extra}
    return httpx.post(gateway.url + "/v1/videos", headers=headers, json=body)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"resolution": "720p", "ratio": "16:9", "duration": 5}, TOKENS_720P_5S),
        ({}, TOKENS_720P_5S),  # the model's defaults: 720p, 5 s
        ({"resolution": "480p", "ratio": "9:16", "duration": 10}, 496 * 864 * 241 // 1024),
        ({"resolution": "720p", "ratio": "adaptive", "duration": 5}, TOKENS_720P_5S),
        ({"resolution": "720p", "ratio": "16:9", "duration": -1}, 1280 * 720 * 361 // 1024),
    ],
)
def test_estimates_follow_arks_formula(body: dict[str, Any], expected: int) -> None:
    assert estimate_tokens(FAST, body) == expected


def refusal(response: httpx.Response, surface: str) -> tuple[int, str, str, int]:
    error = response.json()["error"]
    kind = error["type"]
    assert kind == ("TooManyRequests" if surface == "native" else "rate_limit_error")
    return response.status_code, error["code"], error["message"], int(
        response.headers["retry-after"])


@pytest.mark.parametrize("surface", ["native", "openai"])
def test_max_in_flight(team: ServerThread, surface: str) -> None:
    key = new_key(team, f"inflight-{surface}", max_in_flight=2)
    assert [create(team, key, surface).status_code for _ in range(2)] == [200, 200]
    status, code, message, retry = refusal(create(team, key, surface), surface)
    assert (status, code) == (429, "max_in_flight_exceeded")
    assert "2 tasks queued or running" in message and retry > 0


@pytest.mark.parametrize("surface", ["native", "openai"])
def test_daily_and_monthly_budgets(team: ServerThread, surface: str) -> None:
    daily = new_key(team, f"daily-{surface}", daily_tokens=TOKENS_720P_5S * 2)
    assert create(team, daily, surface).status_code == 200
    assert create(team, daily, surface).status_code == 200
    status, code, message, retry = refusal(create(team, daily, surface), surface)
    assert (status, code) == (429, "daily_tokens_exceeded")
    assert f"used {TOKENS_720P_5S * 2} of its daily budget" in message
    assert 0 < retry <= 86400
    monthly = new_key(team, f"monthly-{surface}", monthly_tokens=TOKENS_720P_5S - 1)
    status, code, _, retry = refusal(create(team, monthly, surface), surface)
    assert code == "monthly_tokens_exceeded" and 0 < retry <= 31 * 86400


@pytest.mark.parametrize("surface", ["native", "openai"])
def test_requests_per_minute(team: ServerThread, surface: str) -> None:
    key = new_key(team, f"rpm-{surface}", rpm=3)
    path = NATIVE if surface == "native" else "/v1/videos"
    codes = [httpx.get(team.url + path, headers={"Authorization": f"Bearer {key}"}).status_code
             for _ in range(4)]
    if codes[-1] == 200:  # the minute turned mid-test: the window restarted
        codes = [httpx.get(team.url + path,
                           headers={"Authorization": f"Bearer {key}"}).status_code
                 for _ in range(4)]
    assert codes[:3] == [200, 200, 200] and codes[3] == 429


def test_budget_settles_from_estimate_to_the_real_bill(
    start_simulator: SimulatorFactory, start_gateway: GatewayFactory, backend_url: str
) -> None:
    sim = start_simulator(delay=0.2)
    gateway = start_gateway(sim.url + "/api/v3", store_url=backend_url,
                            extra={"admin": {"keys": [{"name": "ops", "secret": "${ADMIN_KEY}"}]}},
                            env={"ADMIN_KEY": CANARY_ADMIN_KEY})
    # The budget fits one estimate (10 s at 720p) but the real bill of two 5 s tasks too.
    estimate_10s = 1280 * 720 * 241 // 1024
    key = new_key(gateway, "henry", daily_tokens=estimate_10s + 1000)
    first = create(gateway, key, "native", duration=10)
    assert first.status_code == 200
    held = httpx.get(f"{gateway.url}/admin/usage", headers=ADMIN, params={"key": "henry"}).json()
    assert held["totals"] == [{"key": "henry", "tasks": 1, "tokens": estimate_10s,
                               "cost": None}]
    assert create(gateway, key, "native", duration=5).status_code == 429  # estimate held

    deadline = time.monotonic() + 10
    while httpx.get(f"{gateway.url}{NATIVE}/{first.json()['id']}",
                    headers={"Authorization": f"Bearer {key}"}).json()["status"] != "succeeded":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    settled = httpx.get(f"{gateway.url}/admin/usage", headers=ADMIN).json()
    [row] = [r for r in settled["data"] if r["key"] == "henry"]
    assert row["tokens"] == estimate_10s  # the simulator bills exactly Ark's formula
    # A failed task gives its estimate back once it is seen failing.
    ivy = new_key(gateway, "ivy", daily_tokens=TOKENS_720P_5S)
    failed = create(gateway, ivy, "native", content=[{"type": "text", "text": "[sim:fail] no"}])
    assert failed.status_code == 200
    url = f"{gateway.url}{NATIVE}/{failed.json()['id']}"
    deadline = time.monotonic() + 10
    while httpx.get(url, headers={"Authorization": f"Bearer {ivy}"}).json()["status"] != "failed":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    usage = httpx.get(f"{gateway.url}/admin/usage", headers=ADMIN, params={"key": "ivy"}).json()
    assert usage["totals"] == [{"key": "ivy", "tasks": 1, "tokens": 0, "cost": None}]
    assert create(gateway, ivy, "native").status_code == 200  # the budget is whole again


def test_failed_create_gives_the_hold_back(
    start_simulator: SimulatorFactory, start_gateway: GatewayFactory, backend_url: str
) -> None:
    sim = start_simulator(error_rate=1.0)
    gateway = start_gateway(sim.url + "/api/v3", store_url=backend_url,
                            extra={"admin": {"keys": [{"name": "ops", "secret": "${ADMIN_KEY}"}]}},
                            env={"ADMIN_KEY": CANARY_ADMIN_KEY})
    key = new_key(gateway, "jack", max_in_flight=1)
    for _ in range(3):  # never holds the only slot: each failed create gave it back
        assert create(gateway, key, "native").status_code == 500
    usage = httpx.get(f"{gateway.url}/admin/usage", headers=ADMIN, params={"key": "jack"})
    assert usage.json()["data"] == []


def test_usage_report_api_and_cli(simulator: ServerThread, start_gateway: GatewayFactory,
                                  tmp_path: Path, backend_url: str) -> None:
    db = backend_url
    gateway = start_gateway(simulator.url + "/api/v3", store_url=db,
                            extra={"admin": {"keys": [{"name": "ops", "secret": "${ADMIN_KEY}"}]}},
                            env={"ADMIN_KEY": CANARY_ADMIN_KEY})
    for _ in range(2):
        assert create(gateway, FAKE_ALICE_KEY, "openai").status_code == 200
    report = httpx.get(f"{gateway.url}/admin/usage", headers=ADMIN).json()
    today = time.strftime("%Y-%m-%d", time.gmtime())
    assert report["data"] == [{"key": "alice", "model": MODEL, "day": today, "tasks": 2,
                               "tokens": 2 * TOKENS_720P_5S, "cost": None}]
    bad = httpx.get(f"{gateway.url}/admin/usage", headers=ADMIN, params={"from": "yesterday"})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "from"
    assert httpx.get(f"{gateway.url}/admin/usage").status_code == 401

    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({
        "upstreams": [{"name": "ark", "base_url": simulator.url + "/api/v3",
                       "keys": [{"name": "main", "secret": "${UPSTREAM_KEY}"}]}],
        "client_keys": [{"name": "alice", "secret": "${ALICE_KEY}"}], "store": {"url": db}}))
    result = subprocess.run(
        [sys.executable, "-m", "gateway", "usage", "--config", str(config), "--json"],
        capture_output=True, text=True, timeout=30,
        env={"UPSTREAM_KEY": FAKE_UPSTREAM_KEY, "ALICE_KEY": FAKE_ALICE_KEY, "PATH": "/usr/bin"})
    assert result.returncode == 0, result.stderr
    assert yaml.safe_load(result.stdout)["totals"] == [
        {"key": "alice", "tasks": 2, "tokens": 2 * TOKENS_720P_5S, "cost": None}]
