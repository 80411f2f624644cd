"""The leak trap: canary secrets, and every place they must never show up.

The whole end-to-end suite runs with these canaries as its keys. The trap sees every log line
of every logger in this process, every response (headers and body) of every gateway started by
the fixtures, their /metrics, and the output of gateway subprocesses. Any canary found fails
the test that produced it.
"""

from __future__ import annotations

from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

CANARY_UPSTREAM_KEY = "canary-upstream-Q7xv9d3k"
CANARY_ALICE_KEY = "canary-alice-K2m8p4zq"
CANARY_BOB_KEY = "canary-bob-W4n1r8tc"
CANARY_METRICS_TOKEN = "canary-metrics-T5y2u6wx"
CANARY_ADMIN_KEY = "canary-admin-R8d2k5mw"
CANARIES = (CANARY_UPSTREAM_KEY, CANARY_ALICE_KEY, CANARY_BOB_KEY, CANARY_METRICS_TOKEN,
            CANARY_ADMIN_KEY)
_ENCODED = tuple(c.encode() for c in CANARIES)


class LeakTrap:
    def __init__(self) -> None:
        self.findings: list[str] = []

    def scan(self, where: str, data: bytes | str) -> None:
        raw = data.encode("utf-8", "replace") if isinstance(data, str) else data
        for canary, encoded in zip(CANARIES, _ENCODED, strict=True):
            if encoded in raw:
                self.findings.append(f"{canary[:12]}… found in {where}: {raw[:300]!r}")


class TrapStream:
    """A text stream for log output: every line is scanned, then kept for inspection."""

    def __init__(self, trap: LeakTrap) -> None:
        self.trap = trap
        self.lines: list[str] = []

    def write(self, text: str) -> int:
        self.trap.scan("a log line", text)
        self.lines.append(text)
        if len(self.lines) > 5000:
            del self.lines[:2500]
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False


class RecordingApp:
    """Wraps a gateway app: scans every response start and body chunk it sends."""

    def __init__(self, app: ASGIApp, trap: LeakTrap) -> None:
        self.app = app
        self.trap = trap

    def __getattr__(self, name: str) -> Any:
        return getattr(self.app, name)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        where = f"a response to {scope['method']} {scope['path']}"

        async def recording_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                for name, value in message.get("headers", ()):
                    self.trap.scan(f"{where} (header {name!r})", name + b": " + value)
            elif message["type"] == "http.response.body":
                self.trap.scan(where, message.get("body", b""))
            await send(message)

        await self.app(scope, receive, recording_send)
