"""Shared fixtures: a real simulator and a real gateway on 127.0.0.1, keys that are fake."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.app import create_app
from gateway.simulator import SimulatorSettings, create_simulator_app
from tests.servers import FAKE_UPSTREAM_KEY, ServerThread, gateway_config


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


SimulatorFactory = Callable[..., ServerThread]


@pytest.fixture
def start_simulator() -> Iterator[SimulatorFactory]:
    started: list[ServerThread] = []

    def start(**settings: Any) -> ServerThread:
        settings = {"upstream_keys": (FAKE_UPSTREAM_KEY,), "delay": 0.6, "seed": 7, **settings}
        server = ServerThread(create_simulator_app(SimulatorSettings(**settings))).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def simulator(start_simulator: SimulatorFactory) -> ServerThread:
    return start_simulator()


GatewayFactory = Callable[..., ServerThread]


@pytest.fixture
def start_gateway(tmp_path: Path) -> Iterator[GatewayFactory]:
    started: list[ServerThread] = []

    def start(upstream_url: str, **options: Any) -> ServerThread:
        store_url = options.pop("store_url", f"sqlite:///{tmp_path}/tasks.db")
        config = gateway_config(upstream_url, store_url=store_url, **options)
        server = ServerThread(create_app(config)).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def gateway(simulator: ServerThread, start_gateway: GatewayFactory) -> ServerThread:
    return start_gateway(simulator.url + "/api/v3")
