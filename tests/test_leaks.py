"""The leak trap itself: it must catch a canary wherever one shows up."""

from __future__ import annotations

import io
import logging

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from gateway.observability.logs import configure_logging, get_logger
from tests.conftest import trap_logging
from tests.leaks import CANARY_ALICE_KEY, CANARY_UPSTREAM_KEY, LeakTrap, RecordingApp, TrapStream


@pytest.mark.anyio
async def test_trap_catches_a_canary_in_a_response_body_and_header() -> None:
    async def leaky(request: Request) -> PlainTextResponse:
        return PlainTextResponse(f"key={CANARY_UPSTREAM_KEY}", headers={"x-debug": "clean"})

    async def leaky_header(request: Request) -> PlainTextResponse:
        return PlainTextResponse("ok", headers={"x-key": CANARY_ALICE_KEY})

    trap = LeakTrap()
    app = RecordingApp(Starlette(routes=[Route("/body", leaky), Route("/header", leaky_header)]),
                       trap)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://t") as c:
        await c.get("/body")
        assert len(trap.findings) == 1 and "response to GET /body" in trap.findings[0]
        await c.get("/header")
        assert len(trap.findings) == 2 and "header" in trap.findings[1]


def test_trap_catches_an_unredacted_log_line(log_stream: TrapStream) -> None:
    trap = LeakTrap()
    stream = TrapStream(trap)
    try:
        configure_logging("info", json=True, secrets=(), stream=stream)  # no redaction list
        get_logger("test").info("oops", detail=f"the key is {CANARY_ALICE_KEY}")
        assert trap.findings and "log line" in trap.findings[0]
    finally:
        trap_logging(log_stream)


def test_redaction_keeps_every_logger_clean(log_stream: TrapStream) -> None:
    """With the gateway's secrets configured, neither structlog nor stdlib lines leak."""
    trap = LeakTrap()
    buffer = io.StringIO()
    configure_logging("debug", json=True, secrets=(CANARY_ALICE_KEY, CANARY_UPSTREAM_KEY),
                      stream=buffer)
    try:
        get_logger("gateway").info("event", header=f"Bearer {CANARY_ALICE_KEY}",
                                   nested={"deep": [CANARY_UPSTREAM_KEY]})
        logging.getLogger("uvicorn.error").warning("peer sent %s", CANARY_ALICE_KEY)
        try:
            raise RuntimeError(f"failed with {CANARY_UPSTREAM_KEY}")
        except RuntimeError:
            get_logger("gateway").exception("boom")
        text = buffer.getvalue()
        trap.scan("log", text)
        assert not trap.findings, trap.findings
        assert text.count("[REDACTED]") >= 4
    finally:
        trap_logging(log_stream)


def test_passwords_inside_urls_are_redacted_in_every_log_line(log_stream: TrapStream) -> None:
    """A proxy's or a store's credentials in a URL (an error message quoting it, say) never
    reach the log, whether or not the password is in the configured secrets."""
    buffer = io.StringIO()
    configure_logging("debug", json=True, secrets=("configured-pw-7Hq",), stream=buffer)
    try:
        get_logger("gateway").warning(
            "upstream_call_failed",
            reason="Cannot connect to http://egress:unlisted-pw-9Xz@proxy:3128 and "
                   "redis://:configured-pw-7Hq@redis:6379/0")
        logging.getLogger("aiohttp.client").warning("via https://u:another-pw-2Lm@p.example/")
    finally:
        trap_logging(log_stream)
    text = buffer.getvalue()
    for password in ("unlisted-pw-9Xz", "configured-pw-7Hq", "another-pw-2Lm"):
        assert password not in text
    assert "http://egress:[REDACTED]@proxy:3128" in text
