"""Idempotency-Key claims in the store: one state machine, the same on SQLite and Redis."""

from __future__ import annotations

import pytest

from gateway.store import open_store
from gateway.store.followups import IdempotencyClaim


@pytest.mark.anyio
async def test_claims_follow_one_state_machine(backend_url: str) -> None:
    store = open_store(backend_url)
    await store.open()

    async def take(caller: str, holder: str, now: float = 100.0,
                   fingerprint: str = "f") -> tuple[IdempotencyClaim | None, bool]:
        return await store.claim_idempotency(caller, "k", fingerprint=fingerprint,
                                             holder=holder, now=now, lease_until=now + 30,
                                             expires_at=now + 900)

    try:
        before, taken = await take("alice", "a")
        assert (before, taken) == (None, True)
        before, taken = await take("alice", "b")
        assert taken is False and before is not None and before.holder == "a"
        assert (await take("bob", "c"))[1] is True

        # The holder's lease runs out: that attempt counts as lost, the next one takes over.
        before, taken = await take("alice", "b", now=131.0)
        assert taken is True and before is not None and before.state == "pending"
        assert not await store.hold_idempotency("alice", "k", "a", task_id="cgt-x")
        # Letting go of it keeps it lost: the lapsed attempt may have made a task.
        assert await store.end_idempotency("alice", "k", "b", "released", now=140.0)
        lost = await store.read_idempotency("alice", "k")
        assert lost is not None and lost.state == "lost" and lost.failed_at == 130.0
        assert lost.started_at == 100.0 and lost.holder is None

        before, taken = await take("alice", "c", now=141.0)
        assert taken is True and before == lost
        assert await store.hold_idempotency("alice", "k", "c", task_id="cgt-1",
                                            upstream_key="main")
        assert await store.end_idempotency("alice", "k", "c", "done", now=150.0)
        done = await store.read_idempotency("alice", "k")
        assert done is not None and (done.state, done.task_id, done.upstream_key) == (
            "done", "cgt-1", "main")
        before, taken = await take("alice", "d", now=151.0)
        assert taken is False and before == done

        # A fresh attempt that made nothing lets the key go entirely.
        assert await store.end_idempotency("bob", "k", "c", "released", now=101.0)
        assert await store.read_idempotency("bob", "k") is None
        # Past its retention a key is new again, whatever it named.
        assert await take("alice", "e", now=1000.0, fingerprint="g") == (None, True)
    finally:
        await store.close()
