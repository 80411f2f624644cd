"""Server subprocesses on loopback ports: spawn, wait until ready, stop the whole process group."""

from __future__ import annotations

import contextlib
import ctypes
import http.client
import os
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent  # the checkout: the working-tree gateway runs here
HOST = "127.0.0.1"  # never anything else: this benchmark only talks to loopback


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def die_with_parent() -> None:
    """Runs in the child before exec: SIGKILL it if the benchmark dies without cleaning up."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class Server:
    """One server subprocess in its own process group, stdout and stderr to ``<name>.log``."""

    def __init__(self, name: str, command: Sequence[str], *, port: int, env: dict[str, str],
                 workdir: Path, cwd: Path = ROOT) -> None:
        self.name = name
        self.port = port
        self.log_path = workdir / f"{name}.log"
        self._log = self.log_path.open("wb")
        self.started_at = time.perf_counter()
        self.proc = subprocess.Popen(
            list(command), stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=env, cwd=cwd,
            # Own group: a terminal Ctrl-C reaches only us, and we stop workers with the group.
            start_new_session=True, preexec_fn=die_with_parent,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait_ready(self, path: str, timeout: float = 30.0) -> float:
        """Seconds from spawn until ``path`` answers 200 (polled every 5 ms)."""
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited early:\n{self.tail()}")
            if answers_200(self.port, path):
                return time.perf_counter() - self.started_at
            time.sleep(0.005)
        raise RuntimeError(f"{self.name} not ready after {timeout:.0f}s:\n{self.tail()}")

    def tail(self, lines: int = 30) -> str:
        self._log.flush()
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self._signal_group(signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._signal_group(signal.SIGKILL)
                self.proc.wait(timeout=5)
        self._log.close()

    def _signal_group(self, sig: signal.Signals) -> None:
        # The group id is our own child's pid (start_new_session), so only our processes get it.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, sig)


def answers_200(port: int, path: str) -> bool:
    try:
        status, _ = http_call(port, "GET", path, timeout=0.5)
    except (OSError, http.client.HTTPException):
        return False
    return status == 200


def http_call(port: int, method: str, path: str, *, headers: dict[str, str] | None = None,
              body: bytes | None = None, timeout: float = 10.0) -> tuple[int, bytes]:
    """A one-off blocking request for setup work (not used for measurement)."""
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()
