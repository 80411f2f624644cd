"""Shared fixtures: a real simulator and a real gateway on 127.0.0.1, keys that are canaries."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.app import create_app
from gateway.observability.logs import configure_logging
from gateway.simulator import SimulatorSettings, create_simulator_app
from tests.backends import redis_url, unique_prefix
from tests.leaks import CANARIES, LeakTrap, RecordingApp, TrapStream
from tests.servers import FAKE_UPSTREAM_KEY, ServerThread, gateway_config


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def log_stream() -> TrapStream:
    """Every log line of every logger in this process goes through the trap, at DEBUG level,
    with the same redaction a gateway configures from its secrets; the lines are kept."""
    stream = TrapStream(LeakTrap())
    trap_logging(stream)
    return stream


@pytest.fixture(scope="session")
def leak_trap(log_stream: TrapStream) -> LeakTrap:
    return log_stream.trap


def trap_logging(stream: TrapStream) -> None:
    configure_logging("debug", json=True, secrets=CANARIES, stream=stream)


@pytest.fixture(autouse=True)
def no_leaks(leak_trap: LeakTrap, capfd: pytest.CaptureFixture[str]) -> Iterator[None]:
    """Fails a test when a canary reached a log line, a response, /metrics, or anything the
    process wrote to stdout/stderr (prints, stray loggers) while it ran."""
    start = len(leak_trap.findings)
    yield
    out, err = capfd.readouterr()
    leak_trap.scan("stdout", out)
    leak_trap.scan("stderr", err)
    sys.stdout.write(out)  # give the output back to pytest's report
    sys.stderr.write(err)
    found = leak_trap.findings[start:]
    assert not found, "a secret leaked:\n" + "\n".join(found)


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
def start_gateway(tmp_path: Path, leak_trap: LeakTrap) -> Iterator[GatewayFactory]:
    started: list[ServerThread] = []

    def start(upstream_url: str, **options: Any) -> ServerThread:
        store_url = options.pop("store_url", f"sqlite:///{tmp_path}/tasks.db")
        config = gateway_config(upstream_url, store_url=store_url, **options)
        server = ServerThread(RecordingApp(create_app(config), leak_trap)).start()
        started.append(server)
        return server

    yield start
    for server in started:
        # /metrics goes through the recorder too: no secret may be a label value.
        httpx.get(server.url + "/metrics", headers={"Authorization": "Bearer x"})
        server.stop()


@pytest.fixture(params=["sqlite", "redis"])
def backend_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A store URL on each backend: team features are held to the same behaviour on both."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/tasks.db"
        return
    for prefix in unique_prefix():
        yield redis_url(prefix)


@pytest.fixture
def gateway(simulator: ServerThread, start_gateway: GatewayFactory) -> ServerThread:
    return start_gateway(simulator.url + "/api/v3")
