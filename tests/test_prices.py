"""Prices and cost: task_cost, cost in /admin/usage and the usage CLI, the cost_total metric,
and daily/monthly cost budgets held at the estimate and settled at the real bill, on both
stores."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from gateway.config import ConfigError, PricesConfig, parse_config
from gateway.keys.prices import has_video_input, price_per_million, task_cost
from tests.conftest import GatewayFactory, SimulatorFactory
from tests.leaks import CANARY_ADMIN_KEY
from tests.servers import (
    FAKE_ALICE_KEY,
    FAKE_BOB_KEY,
    FAKE_UPSTREAM_KEY,
    ServerThread,
    gateway_config,
)
from tests.test_metrics import scrape, value

ADMIN = {"Authorization": f"Bearer {CANARY_ADMIN_KEY}"}
MODEL = "doubao-seedance-2-0-fast-260128"
NATIVE = "/api/v3/contents/generations/tasks"
TOKENS_720P_5S = 1280 * 720 * (24 * 5 + 1) // 1024  # 108900
# 10 per million: one 720p 5 s task costs 1.089 (1 089 000 millionths).
PRICES = {"currency": "CNY", "models": {
    "sora-2": {"per_million_tokens": 10, "per_million_tokens_video_input": 5}}}
TASK_COST = 1.089


def team(start_simulator: SimulatorFactory, start_gateway: GatewayFactory, backend_url: str,
         *, delay: float = 0.6, **extra: Any) -> ServerThread:
    sim = start_simulator(delay=delay)
    return start_gateway(sim.url + "/api/v3", store_url=backend_url, extra={
        "admin": {"keys": [{"name": "ops", "secret": "${ADMIN_KEY}"}]}, "prices": PRICES,
        **extra}, env={"ADMIN_KEY": CANARY_ADMIN_KEY})


def new_key(gateway: ServerThread, name: str, **policy: Any) -> str:
    created = httpx.post(f"{gateway.url}/admin/keys", headers=ADMIN,
                         json={"name": name, **policy})
    assert created.status_code == 201, created.text
    return str(created.json()["key"])


def create(gateway: ServerThread, key: str, surface: str = "native") -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"}
    if surface == "native":
        return httpx.post(gateway.url + NATIVE, headers=headers, json={
            "model": MODEL, "content": [{"type": "text", "text": "x"}], "resolution": "720p",
            "ratio": "16:9", "duration": 5})
    return httpx.post(gateway.url + "/v1/videos", headers=headers, json={
        "prompt": "x", "model": MODEL, "size": "1280x720", "seconds": "5"})


def wait_finished(gateway: ServerThread, key: str, task_id: str) -> str:
    deadline = time.monotonic() + 15
    while True:
        status = str(httpx.get(f"{gateway.url}{NATIVE}/{task_id}",
                               headers={"Authorization": f"Bearer {key}"}).json()["status"])
        if status in ("succeeded", "failed") or time.monotonic() > deadline:
            return status
        time.sleep(0.05)


def usage(gateway: ServerThread, key: str) -> dict[str, Any]:
    report: dict[str, Any] = httpx.get(f"{gateway.url}/admin/usage", headers=ADMIN,
                                       params={"key": key}).json()
    return report


# --- task_cost and the prices table ----------------------------------------------------------


def test_task_cost_uses_the_model_price_and_the_video_input_price() -> None:
    prices = gateway_config("http://127.0.0.1:9/api/v3", store_url="sqlite://:memory:",
                            extra={"prices": PRICES}).prices
    # Written for the alias sora-2, kept under its upstream model id (what records store).
    assert set(prices.models) == {MODEL}
    assert task_cost(prices, MODEL, TOKENS_720P_5S, video_input=False) == TASK_COST
    assert task_cost(prices, MODEL, TOKENS_720P_5S, video_input=True) == 0.5445
    assert task_cost(prices, MODEL, 1, video_input=False) == 0.00001
    assert task_cost(prices, "doubao-seedance-2-0-260128", 1000, video_input=False) is None
    assert task_cost(PricesConfig(), MODEL, 1000, video_input=False) is None
    assert price_per_million(prices, MODEL, video_input=True) == 5


def test_video_input_is_any_video_url_item_of_the_content() -> None:
    assert has_video_input({"content": [{"type": "text", "text": "x"}, {
        "type": "video_url", "video_url": {"url": "https://example.com/a.mp4"}}]})
    assert not has_video_input({"content": [{"type": "image_url", "image_url": {"url": "u"}}]})
    assert not has_video_input({"content": "video_url"})


@pytest.mark.parametrize(("prices", "message"), [
    ({"models": {"no-such-model": {"per_million_tokens": 1}}}, "unknown model 'no-such-model'"),
    ({"models": {MODEL: {"per_million_tokens": -1}}}, "prices.models"),
    ({"models": {"sora-2": {"per_million_tokens": 1}, MODEL: {"per_million_tokens": 2}}},
     "two different prices"),
])
def test_a_bad_prices_table_is_refused_naming_it(prices: dict[str, Any], message: str) -> None:
    data = {"upstreams": [{"name": "ark", "base_url": "http://127.0.0.1:9/api/v3",
                           "keys": [{"name": "main", "secret": "${K}"}]}],
            "models": {"aliases": {"sora-2": MODEL}},
            "client_keys": [{"name": "alice", "secret": "${K}"}], "prices": prices}
    with pytest.raises(ConfigError, match=message):
        parse_config(data, env={"K": FAKE_UPSTREAM_KEY})


# --- budgets, usage, metric, on both stores --------------------------------------------------


def test_cost_budget_holds_the_estimate_and_settles_the_real_cost(
    start_simulator: SimulatorFactory, start_gateway: GatewayFactory, backend_url: str
) -> None:
    gateway = team(start_simulator, start_gateway, backend_url)
    key = new_key(gateway, "cara", daily_cost=1.5)
    assert httpx.get(f"{gateway.url}/admin/keys/cara", headers=ADMIN).json()["daily_cost"] == 1.5
    first = create(gateway, key)
    assert first.status_code == 200, first.text
    held = usage(gateway, "cara")
    assert held["currency"] == "CNY"
    assert held["totals"] == [{"key": "cara", "tasks": 1, "tokens": TOKENS_720P_5S,
                               "cost": TASK_COST}]
    # 1.089 held of 1.5: the next task (about 1.089 more) is refused, in each API's shape.
    for surface in ("native", "openai"):
        refused = create(gateway, key, surface)
        assert refused.status_code == 429, refused.text
        error = refused.json()["error"]
        assert error["code"] == "daily_cost_exceeded" and error["param"] == "daily_cost"
        assert "1.089 of its daily budget of 1.5" in error["message"]
        assert 0 < int(refused.headers["retry-after"]) <= 86400
    assert wait_finished(gateway, key, first.json()["id"]) == "succeeded"
    deadline = time.monotonic() + 10
    while scrape(gateway.url).get(("seedance_gateway_cost_total", frozenset(
            {"model": MODEL, "key": "cara", "currency": "CNY"}.items()))) != TASK_COST:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    settled = usage(gateway, "cara")
    today = time.strftime("%Y-%m-%d", time.gmtime())
    assert settled["data"] == [{"key": "cara", "model": MODEL, "day": today, "tasks": 1,
                                "tokens": TOKENS_720P_5S, "cost": TASK_COST}]
    assert settled["months"] == [{"key": "cara", "month": today[:7], "tasks": 1,
                                  "tokens": TOKENS_720P_5S, "cost": TASK_COST}]
    # A larger budget set later admits the next task at once.
    assert httpx.patch(f"{gateway.url}/admin/keys/cara", headers=ADMIN,
                       json={"daily_cost": 2.2}).status_code == 200
    assert create(gateway, key).status_code == 200


def test_a_failed_task_gives_its_cost_back(
    start_simulator: SimulatorFactory, start_gateway: GatewayFactory, backend_url: str
) -> None:
    gateway = team(start_simulator, start_gateway, backend_url)
    key = new_key(gateway, "finn", monthly_cost=1.2)
    failed = httpx.post(gateway.url + NATIVE, headers={"Authorization": f"Bearer {key}"}, json={
        "model": MODEL, "content": [{"type": "text", "text": "[sim:fail] no"}]})
    assert failed.status_code == 200
    refused = create(gateway, key)
    assert refused.status_code == 429 and refused.json()["error"]["code"] == \
        "monthly_cost_exceeded"
    assert wait_finished(gateway, key, failed.json()["id"]) == "failed"
    assert usage(gateway, "finn")["totals"] == [{"key": "finn", "tasks": 1, "tokens": 0,
                                                 "cost": 0.0}]
    assert create(gateway, key).status_code == 200  # the budget is whole again


def test_config_keys_take_cost_budgets_and_unpriced_models_cost_null(
    start_simulator: SimulatorFactory, start_gateway: GatewayFactory, backend_url: str
) -> None:
    gateway = team(start_simulator, start_gateway, backend_url, delay=30, client_keys=[
        {"name": "alice", "secret": "${ALICE_KEY}", "daily_cost": 2},
        {"name": "bob", "secret": "${BOB_KEY}"}])
    assert httpx.get(f"{gateway.url}/admin/keys/alice",
                     headers=ADMIN).json()["daily_cost"] == 2
    assert create(gateway, FAKE_ALICE_KEY, "openai").status_code == 200
    assert create(gateway, FAKE_ALICE_KEY, "openai").status_code == 429  # 2.178 > 2
    bob = httpx.post(gateway.url + NATIVE, headers={"Authorization": f"Bearer {FAKE_BOB_KEY}"},
                     json={"model": "doubao-seedance-2-0-260128",  # no price configured
                           "content": [{"type": "text", "text": "x"}]})
    assert bob.status_code == 200
    [row] = usage(gateway, "bob")["data"]
    assert row["cost"] is None and row["tokens"] > 0


def test_usage_cli_shows_cost(start_simulator: SimulatorFactory, start_gateway: GatewayFactory,
                              tmp_path: Path, backend_url: str) -> None:
    gateway = team(start_simulator, start_gateway, backend_url, delay=30)
    assert create(gateway, FAKE_ALICE_KEY).status_code == 200
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({
        "upstreams": [{"name": "ark", "base_url": "http://127.0.0.1:9/api/v3",
                       "keys": [{"name": "main", "secret": "${UPSTREAM_KEY}"}]}],
        "models": {"aliases": {"sora-2": MODEL}}, "prices": PRICES,
        "client_keys": [{"name": "alice", "secret": "${ALICE_KEY}"}],
        "store": {"url": backend_url}}))
    env = {"UPSTREAM_KEY": FAKE_UPSTREAM_KEY, "ALICE_KEY": FAKE_ALICE_KEY, "PATH": "/usr/bin"}
    command = [sys.executable, "-m", "gateway", "usage", "--config", str(config)]
    table = subprocess.run(command, capture_output=True, text=True, timeout=30, env=env)
    assert table.returncode == 0, table.stderr
    assert "(cost in CNY)" in table.stdout
    total = next(line for line in table.stdout.splitlines() if line.startswith("total"))
    assert total.split()[-1] == "1.089"
    report = yaml.safe_load(subprocess.run([*command, "--json"], capture_output=True, text=True,
                                           timeout=30, env=env).stdout)
    assert report["totals"] == [{"key": "alice", "tasks": 1, "tokens": TOKENS_720P_5S,
                                 "cost": TASK_COST}]


def test_cost_total_is_exported_from_the_start(simulator: ServerThread,
                                               start_gateway: GatewayFactory) -> None:
    gateway = start_gateway(simulator.url + "/api/v3", extra={"prices": PRICES})
    samples = scrape(gateway.url)
    assert value(samples, "seedance_gateway_cost_total", key="alice", model=MODEL,
                 currency="CNY") == 0
    assert ("seedance_gateway_cost_total", frozenset(
        {"model": MODEL, "key": "bob", "currency": "CNY"}.items())) in samples


@pytest.mark.anyio
async def test_a_schema_5_store_gains_cost_columns_and_keeps_its_usage(tmp_path: Path) -> None:
    """A database a version 5 gateway left (no cost columns) opens, keeps its keys and usage,
    and holds and settles priced reservations from then on."""
    import sqlite3

    from gateway.store.base import KeyRecord, Limits, Reservation
    from gateway.store.sqlite import SCHEMA_VERSION, SQLiteTaskStore

    path = str(tmp_path / "t.db")
    store = SQLiteTaskStore(path)
    await store.open()
    await store.add_key(KeyRecord(name="kim", digest="d" * 64, prefix="sgw-abc"))
    old = Reservation(ref="cgt-old", key="kim", model="m", day="2026-12-01", month="2026-12",
                      tokens=1000)
    assert await store.reserve(old, Limits(max_in_flight=5)) is None
    await store.settle("cgt-old", 900)
    await store.close()
    db = sqlite3.connect(path)  # as a version 5 gateway left it
    for table, column in (("client_keys", "daily_cost"), ("client_keys", "monthly_cost"),
                          ("reservations", "price"), ("reservations", "cost")):
        db.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
    db.execute("UPDATE meta SET value = '5' WHERE key = 'schema_version'")
    db.commit()
    db.close()
    await store.open()
    try:
        key = await store.get_key("kim")
        assert key is not None and key.daily_cost is None
        new = Reservation(ref="cgt-new", key="kim", model="m", day="2026-12-01",
                          month="2026-12", tokens=2_000_000, price=10.0, cost=20_000_000)
        assert await store.reserve(new, Limits(daily_cost=50_000_000)) is None
        assert await store.settle("cgt-new", 1_000_000) == 10_000_000
        rows = await store.usage(since_day="2026-12-01", until_day="2026-12-01", key="kim")
        assert sum(r.tokens for r in rows) == 1_000_900
        assert sum(r.cost or 0 for r in rows) == 10_000_000
    finally:
        await store.close()
    version = sqlite3.connect(path).execute(
        "SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0]
    assert int(version) == SCHEMA_VERSION
