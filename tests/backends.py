"""The two store backends for tests: SQLite in a temp dir, or a real Redis on 127.0.0.1.

Redis tests skip when no server answers, unless CI is set: then they fail (CI must run them).
Each Redis user gets its own key prefix, deleted afterwards.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379


def require_redis() -> None:
    """Skips the test when no Redis answers on 127.0.0.1:6379; fails it instead under CI."""
    try:
        with socket.create_connection((REDIS_HOST, REDIS_PORT), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            answered = sock.recv(64).startswith(b"+PONG")
    except OSError:
        answered = False
    if answered:
        return
    reason = (f"no Redis answering PING on {REDIS_HOST}:{REDIS_PORT} (start one with "
              f"`redis-server --port {REDIS_PORT} --save ''`)")
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; CI is set, so Redis tests must run")
    pytest.skip(reason)


def unique_prefix() -> Iterator[str]:
    """A key prefix of the test's own (for a fixture); every key under it is deleted after."""
    require_redis()
    prefix = f"sgw-test-{uuid.uuid4().hex}:"
    yield prefix
    client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, socket_timeout=5)
    try:
        keys = list(client.scan_iter(match=prefix + "*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def redis_url(prefix: str) -> str:
    return f"redis://{REDIS_HOST}:{REDIS_PORT}/0?prefix={prefix}"


def stored_bytes(store_url: str) -> bytes:
    """Everything a store holds, as bytes, to prove what it does not hold."""
    if store_url.startswith("sqlite:///"):
        path = Path(store_url.removeprefix("sqlite:///"))
        with sqlite3.connect(path) as db:
            db.execute("PRAGMA wal_checkpoint(FULL)")
        return path.read_bytes()
    prefix = store_url.split("prefix=", 1)[1]
    client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, socket_timeout=5)
    try:
        chunks: list[bytes] = []
        for key in client.scan_iter(match=prefix + "*", count=1000):
            kind = client.type(key)
            if kind == b"hash":
                chunks += [b for pair in client.hgetall(key).items() for b in pair]
            elif kind == b"set":
                chunks += list(client.smembers(key))
            elif kind == b"zset":
                chunks += list(client.zrange(key, 0, -1))
            elif kind == b"string":
                chunks.append(client.get(key) or b"")
            chunks.append(key)
        return b"\n".join(chunks)
    finally:
        client.close()
