"""Runs the ASGI app under uvicorn: the connection deadlines and the open-files limit."""

from __future__ import annotations

import asyncio
import contextlib
import resource
import socket
from collections.abc import Generator
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState
from uvicorn.supervisors import Multiprocess

from gateway.config import ServerConfig
from gateway.observability.logs import get_logger

# The soft limit to raise to when the hard one is unlimited (BSD, macOS): far above what one
# process serves, and below the per-process ceilings those systems still enforce.
OPEN_FILES_CAP = 65536
log = get_logger("gateway")


class UvicornConfig(uvicorn.Config):
    """uvicorn's Config with the gateway's protocol and the request-head deadline it enforces.

    Plain attributes on a module-level class: it pickles to `--workers N` processes like its
    base, and each worker's protocol reads `header_timeout` from it.
    """

    def __init__(self, app: Any, *, limits: ServerConfig | None = None, host: str = "127.0.0.1",
                 port: int = 0, workers: int = 1, factory: bool = False) -> None:
        limits = limits or ServerConfig()
        super().__init__(
            app, host=host, port=port, factory=factory, workers=workers, log_config=None,
            access_log=False, server_header=False, proxy_headers=False,
            http=HeadDeadlineProtocol, timeout_keep_alive=limits.keepalive_timeout,
            ws="none",  # no WebSocket routes: an upgrade request is plain HTTP
        )
        self.header_timeout = limits.header_timeout


class HeadDeadlineProtocol(HttpToolsProtocol):
    """Closes a connection whose request head is not complete `header_timeout` seconds after
    the connection opened or after its previous response completed.

    uvicorn itself only arms its keep-alive timer after a response, and cancels it on any byte
    received: a client sending nothing, half a head, or one byte after a response would hold a
    file descriptor for as long as it likes, and enough of them stop the gateway accepting.
    """

    def __init__(self, config: UvicornConfig, server_state: ServerState,
                 app_state: dict[str, Any], _loop: asyncio.AbstractEventLoop | None = None) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.header_timeout = config.header_timeout
        self.head_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_deadline()
        super().connection_lost(exc)

    def on_headers_complete(self) -> None:
        self._cancel_head_deadline()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        # A pipelined request whose head is already parsed starts now; it needs no deadline.
        next_head_parsed = bool(self.pipeline)
        super().on_response_complete()
        if not next_head_parsed and not self.transport.is_closing():
            self._arm_head_deadline()

    def _arm_head_deadline(self) -> None:
        self._cancel_head_deadline()
        self.head_deadline = self.loop.call_later(self.header_timeout, self._head_timed_out)

    def _cancel_head_deadline(self) -> None:
        if self.head_deadline is not None:
            self.head_deadline.cancel()
            self.head_deadline = None

    def _head_timed_out(self) -> None:
        # Closed without a 408, like nginx: on an idle keep-alive connection a 408 could cross a
        # client's next request and be read as its answer.
        self.head_deadline = None
        if not self.transport.is_closing():
            self.transport.close()


class CannotListen(Exception):
    """The address is taken or not this machine's: one line for the operator, no traceback."""


def listen(host: str, port: int) -> socket.socket:
    """Binds the listening socket before anything else happens, so a busy port is reported
    before a banner, a key or a log line claims the server is up."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        reason = exc.strerror or str(exc)
        raise CannotListen(f"cannot listen on {host}:{port}: {reason.lower()}") from None
    sock.set_inheritable(True)  # --workers N processes serve it
    return sock


def run(app: Any, *, sock: socket.socket, workers: int = 1, factory: bool = False,
        limits: ServerConfig | None = None) -> None:
    host, port = sock.getsockname()[:2]
    config = UvicornConfig(app, limits=limits, host=host, port=port, workers=workers,
                           factory=factory)
    if workers > 1:
        Multiprocess(config, sockets=[sock]).run()
        return
    # uvicorn re-raises the SIGINT it handled once it has shut down: Ctrl-C is not an error.
    with contextlib.suppress(KeyboardInterrupt):
        uvicorn.Server(config).run(sockets=[sock])


class EmbeddedServer(uvicorn.Server):
    """A second server on the gateway's loop (the demo's simulator): it leaves the process's
    signals to the gateway's server, which stops it when it stops."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def run_with_simulator(app: Any, simulator: Any, simulator_socket: socket.socket, *,
                       sock: socket.socket, limits: ServerConfig | None = None) -> None:
    """The demo: the gateway (an app factory) and its embedded simulator on one event loop.

    `POST /_sim/stop` on the simulator stops it alone (`app.state.stop`): the gateway keeps
    serving what it archived, as it would with an upstream that is down.
    """
    host, port = sock.getsockname()[:2]
    gateway = uvicorn.Server(UvicornConfig(app, limits=limits, host=host, port=port,
                                           factory=True))
    upstream = EmbeddedServer(UvicornConfig(simulator))
    simulator.state.stop = lambda: setattr(upstream, "should_exit", True)

    async def both() -> None:
        simulating = asyncio.create_task(upstream.serve(sockets=[simulator_socket]))
        try:
            await gateway.serve(sockets=[sock])
        finally:
            upstream.should_exit = True
            await simulating

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(both())


def raise_open_files_limit() -> None:
    """Lifts the soft limit on open files to the hard one: every client connection holds a
    file descriptor, and many systems start processes with a soft limit of 1,024."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = OPEN_FILES_CAP if hard == resource.RLIM_INFINITY else hard
    now = soft
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            now = target
        except (OSError, ValueError) as exc:
            log.warning("open_files_limit_not_raised", soft=soft, hard=_limit(hard),
                        error=str(exc))
            return
    log.info("open_files_limit", was=_limit(soft), now=_limit(now), hard=_limit(hard))


def _limit(value: int) -> int | str:
    return "unlimited" if value == resource.RLIM_INFINITY else value
