"""Real servers on 127.0.0.1 for end-to-end tests: uvicorn in a thread, or a CLI subprocess."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from gateway.config import Config, parse_config
from tests.leaks import CANARY_ALICE_KEY, CANARY_BOB_KEY, CANARY_UPSTREAM_KEY, LeakTrap

# Every key the tests use is a canary: tests/leaks.py fails any test where one shows up in a
# log line, a response or /metrics.
FAKE_UPSTREAM_KEY = CANARY_UPSTREAM_KEY
FAKE_ALICE_KEY = CANARY_ALICE_KEY
FAKE_BOB_KEY = CANARY_BOB_KEY


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class ServerThread:
    """A uvicorn server for an ASGI app, on its own event loop in a daemon thread."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]},
                                       daemon=True)

    def start(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()


def gateway_config(
    upstream_url: str,
    *,
    store_url: str,
    extra: Mapping[str, Any] | None = None,
    timeouts: Mapping[str, float] | None = None,
    aliases: Mapping[str, str] | None = None,
    bob_models: Sequence[str] = ("*",),
    validation: bool = True,
    env: Mapping[str, str] | None = None,
    upstream: Mapping[str, Any] | None = None,
) -> Config:
    """A config like a team would write: references to env vars, never literal secrets.
    `upstream` adds settings to the one upstream (proxy, ca_file, …)."""
    data: dict[str, Any] = {
        "upstreams": [{
            "name": "ark", "preset": "volcengine", "base_url": upstream_url,
            "keys": [{"name": "main", "secret": "${UPSTREAM_KEY}"}],
            "timeouts": dict(timeouts or {}), "validation": validation, **(upstream or {}),
        }],
        "models": {"aliases": dict(aliases or {
            "sora-2": "doubao-seedance-2-0-fast-260128",
            "sora-2-pro": "doubao-seedance-2-0-260128",
            "doubao-seedance-2.0": "doubao-seedance-2-0-260128",
            "doubao-seedance-2-fast": "doubao-seedance-2-0-fast-260128",
        })},
        "client_keys": [
            {"name": "alice", "secret": "${ALICE_KEY}"},
            {"name": "bob", "secret": "${BOB_KEY}", "models": list(bob_models)},
        ],
        "store": {"url": store_url},
        "openai": {"poll_after_ms": 100},  # tests poll fast; the default is 5000
        # Off by default so tests that count upstream calls see only their own; the tracker
        # tests turn it on. Tests poll fast, so a finished task shows within 0.2 s; the default
        # window is 2 s (tests/test_polls.py holds the gateway to its targets with it).
        "tracker": {"enabled": False, "poll_window": 0.2},
        # Off so that only the archive's own tests see its file downloads upstream.
        "results": {"archive": False},
        **(extra or {}),
    }
    env = {"UPSTREAM_KEY": FAKE_UPSTREAM_KEY, "ALICE_KEY": FAKE_ALICE_KEY, "BOB_KEY": FAKE_BOB_KEY,
           **(env or {})}
    return parse_config(data, env=env)


class CliProcess:
    """`python -m gateway …` as a user would run it, with its output captured to a file."""

    def __init__(self, args: Sequence[str], *, port: int, log: Path,
                 env: Mapping[str, str] | None = None) -> None:
        # A gateway's own output is checked for canaries when it stops (the simulator, the
        # upstream here, legitimately prints the upstream keys it accepts).
        self.trap = LeakTrap() if args[0] in ("serve", "demo") else None
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = log
        self._log = log.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gateway", *args],
            stdout=self._log, stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
        )

    def wait_ready(self, path: str = "/healthz", timeout: float = 20.0) -> float:
        """Seconds until `path` answers 200."""
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(f"process exited: {self.output()}")
            try:
                if httpx.get(self.url + path, timeout=0.5).status_code == 200:
                    return time.monotonic() - start
            except httpx.HTTPError:
                pass
            time.sleep(0.02)
        raise RuntimeError(f"not ready after {timeout}s: {self.output()}")

    def output(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._log.close()
        if self.trap is not None:
            self.trap.scan("the gateway's output", self.log_path.read_bytes())
            assert not self.trap.findings, "\n".join(self.trap.findings)


class RestartableGateway:
    """`python -m gateway serve` on one config file and one port, started again (after a
    kill -9, say) on the same store: `start("first.log")`, then `start("second.log")`."""

    def __init__(self, folder: Path, config: Mapping[str, Any], env: Mapping[str, str]) -> None:
        import yaml

        self.folder = folder
        self.path = folder / "config.yaml"
        self.path.write_text(yaml.safe_dump(dict(config)))
        self.env = {"UPSTREAM_KEY": FAKE_UPSTREAM_KEY, "ALICE_KEY": FAKE_ALICE_KEY,
                    "BOB_KEY": FAKE_BOB_KEY, **env}
        self.port = free_port()

    def start(self, log: str) -> CliProcess:
        process = CliProcess(["serve", "--config", str(self.path), "--port", str(self.port)],
                             port=self.port, log=self.folder / log, env=self.env)
        process.wait_ready("/readyz")
        return process
