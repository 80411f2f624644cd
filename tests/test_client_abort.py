"""A client that gives up mid-upload: an INFO event and status 499, never an ERROR or a 500."""

from __future__ import annotations

import logging
import socket
import time
import uuid

import httpx
import pytest
import structlog

from tests.servers import FAKE_ALICE_KEY, ServerThread

ROUTES = [
    ("/api/v3/contents/generations/tasks", "application/json", b'{"model": "sora-2", "con'),
    ("/v1/videos", "application/json", b'{"prompt": "a ki'),
    ("/v1/videos", "multipart/form-data; boundary=x", b'--x\r\nContent-Disposition: form-d'),
]


def abort_upload(gateway: ServerThread, path: str, content_type: str, start: bytes) -> str:
    """Announces a 1 MB body, sends a few bytes of it and closes the socket; the request id."""
    request_id = f"abort-{uuid.uuid4().hex}"
    head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: Bearer {FAKE_ALICE_KEY}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: 1000000\r\nX-Request-ID: {request_id}\r\n\r\n").encode()
    with socket.create_connection(("127.0.0.1", gateway.port)) as sock:
        sock.sendall(head + start)
        time.sleep(0.2)  # the handler is reading the body when the client leaves
    return request_id


def requests_by_status(gateway: ServerThread) -> dict[str, float]:
    text = httpx.get(gateway.url + "/metrics").text
    counts: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("seedance_gateway_requests_total{") and 'method="POST"' in line:
            status = line.split('status="', 1)[1].split('"', 1)[0]
            counts[status] = counts.get(status, 0) + float(line.rsplit(" ", 1)[1])
    return counts


@pytest.mark.e2e
def test_an_aborted_upload_is_a_499_logged_at_info(gateway: ServerThread,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    caplog.clear()
    with structlog.testing.capture_logs() as events:
        for path, content_type, start in ROUTES:
            abort_upload(gateway, path, content_type, start)
        deadline = time.monotonic() + 10
        while requests_by_status(gateway).get("499", 0) < len(ROUTES):
            assert time.monotonic() < deadline, requests_by_status(gateway)
            time.sleep(0.05)
        # The gateway still answers normally afterwards.
        assert httpx.get(gateway.url + "/healthz").status_code == 200

    assert requests_by_status(gateway) == {"499": len(ROUTES)}  # no 500
    disconnects = [e for e in events if e["event"] == "client_disconnected"]
    assert len(disconnects) == len(ROUTES)
    assert all(e["log_level"] == "info" and "exc_info" not in e for e in disconnects)
    access = [e for e in events if e["event"] == "request" and e["method"] == "POST"]
    assert sorted(e["status"] for e in access) == [499] * len(ROUTES)
    assert not [e for e in events if e["log_level"] in ("error", "critical")], events
    assert not [e for e in events if e.get("exc_info")], events
    # Nor did uvicorn's own (stdlib) loggers.
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
