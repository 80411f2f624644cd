"""The Redis store, and the contract every store backend is held to (SQLite and Redis alike).

Redis tests need a server on 127.0.0.1:6379: without one they skip, unless CI is set, where
they fail. Each test uses its own random key prefix and deletes its keys afterwards.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import redis

from gateway.config import ConfigError
from gateway.store import SQLiteTaskStore, StoreError, open_store
from gateway.store.base import (
    GatewayStore,
    KeyExists,
    KeyRecord,
    KeyStore,
    LimitRefusal,
    Limits,
    ListQuery,
    Reservation,
    TaskRecord,
    TaskStore,
    UsageRow,
)
from gateway.store.redis import DEFAULT_PREFIX, SCHEMA_VERSION, RedisTaskStore
from tests.backends import REDIS_HOST, REDIS_PORT, redis_url, unique_prefix
from tests.servers import free_port, gateway_config

pytestmark = pytest.mark.anyio


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    yield from unique_prefix()


@pytest.fixture(params=["sqlite", "redis"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/tasks.db"
    return redis_url(request.getfixturevalue("redis_prefix"))


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Any]:
    opened = open_store(store_url)
    await opened.open()
    yield opened
    await opened.close()


@pytest.fixture
async def other_store(store: GatewayStore, store_url: str) -> AsyncIterator[Any]:
    """A second store on the same file or Redis prefix: another worker or replica."""
    opened = open_store(store_url)
    await opened.open()
    yield opened
    await opened.close()


def task(task_id: str, **fields: Any) -> TaskRecord:
    values: dict[str, Any] = {
        "task_id": task_id, "owner": "alice", "upstream": "ark", "upstream_key": "main",
        "model": "sora-2", "upstream_model": "doubao-fast", "surface": "native",
        "created_at": 1000, "updated_at": 1000, **fields,
    }
    return TaskRecord(**values)


# Tasks: the contract


async def test_add_get_and_ownership(store: TaskStore) -> None:
    full = task("cgt-full", prompt="a lighthouse", requested_size="1280x720",
                requested_seconds="5", service_tier="flex", usage_tokens=7,
                task_json=b'{"id": "cgt-full", "bin": "\xff\x00"}', surface="openai")
    bare = task("cgt-bare")
    await store.add(full)
    await store.add(bare)
    assert await store.get("cgt-full", "alice") == full
    assert await store.get("cgt-bare", "alice") == bare  # None fields stay None
    assert await store.get("cgt-full", "bob") is None
    assert await store.get("cgt-nope", "alice") is None


async def test_update_status(store: TaskStore) -> None:
    await store.add(task("cgt-1", usage_tokens=None))
    await store.update_status("cgt-1", status="running", updated_at=1001, usage_tokens=None,
                              task_json=b'{"status": "running"}')
    got = await store.get("cgt-1", "alice")
    assert got is not None and (got.status, got.updated_at, got.usage_tokens, got.task_json) \
        == ("running", 1001, None, b'{"status": "running"}')
    await store.update_status("cgt-1", status="succeeded", updated_at=1002, usage_tokens=42,
                              task_json=b"{}")
    await store.update_status("cgt-1", status="succeeded", updated_at=1003, usage_tokens=None,
                              task_json=b"{}")  # None keeps the tokens already known
    got = await store.get("cgt-1", "alice")
    assert got is not None and (got.status, got.updated_at, got.usage_tokens) \
        == ("succeeded", 1003, 42)
    records, total = await store.list(ListQuery(owner="alice", statuses=["succeeded"]))
    assert [r.task_id for r in records] == ["cgt-1"] and total == 1


async def test_mark_deleted_is_final(store: TaskStore) -> None:
    await store.add(task("cgt-1"))
    await store.add(task("cgt-2"))
    await store.mark_deleted("cgt-1")
    await store.mark_deleted("cgt-1")  # twice is fine
    await store.mark_deleted("cgt-unknown")
    # A poll finishing after the delete must not bring the record back.
    await store.update_status("cgt-1", status="succeeded", updated_at=1001, usage_tokens=1,
                              task_json=b"{}")
    await store.update_status("cgt-unknown", status="succeeded", updated_at=1001,
                              usage_tokens=1, task_json=b"{}")
    assert await store.get("cgt-1", "alice") is None
    assert await store.get("cgt-unknown", "alice") is None
    records, total = await store.list(ListQuery(owner="alice"))
    assert [r.task_id for r in records] == ["cgt-2"] and total == 1
    records, total = await store.list(ListQuery(owner="alice", task_ids=["cgt-1"]))
    assert records == [] and total == 0


async def add_listing_fixture(store: TaskStore) -> None:
    """Alice: t4 (oldest) t1 t2 t3 (newest) live, t5 deleted; Bob: b1."""
    for record in (
        task("t1", status="succeeded", created_at=1000),
        task("t2", status="queued", created_at=1001, model="doubao-pro",
             upstream_model="doubao-pro", service_tier="flex", surface="openai"),
        task("t3", status="failed", created_at=1002, model="fast-alias"),
        task("t4", status="running", created_at=900, surface="openai"),
        task("t5", status="succeeded", created_at=1003),
        task("b1", owner="bob", status="succeeded", created_at=1000),
    ):
        await store.add(record)
    await store.mark_deleted("t5")


LIST_CASES: list[tuple[dict[str, Any], list[str], int]] = [
    ({}, ["t3", "t2", "t1", "t4"], 4),
    ({"newest_first": False}, ["t4", "t1", "t2", "t3"], 4),
    ({"statuses": ["succeeded"]}, ["t1"], 1),
    ({"statuses": ["queued", "failed"]}, ["t3", "t2"], 2),
    ({"task_ids": ["t1", "t2", "b1", "t5", "nope"]}, ["t2", "t1"], 2),
    ({"model": "doubao-fast"}, ["t3", "t1", "t4"], 3),  # matches the upstream model
    ({"model": "sora-2"}, ["t1", "t4"], 2),  # matches the client-facing name
    ({"model": "fast-alias"}, ["t3"], 1),
    ({"service_tier": "flex"}, ["t2"], 1),
    ({"service_tier": "default"}, ["t3", "t1", "t4"], 3),
    ({"surface": "openai"}, ["t2", "t4"], 2),
    ({"created_after": 1001}, ["t3", "t2"], 2),  # inclusive
    ({"surface": "native", "model": "doubao-fast", "created_after": 1000}, ["t3", "t1"], 2),
    ({"statuses": ["cancelled"]}, [], 0),
    ({"offset": 1, "limit": 2}, ["t2", "t1"], 4),
    ({"offset": 3, "limit": 2}, ["t4"], 4),
    ({"offset": 10}, [], 4),
    ({"limit": 0}, [], 4),
    ({"owner": "bob"}, ["b1"], 1),
    ({"owner": "carol"}, [], 0),
]


@pytest.mark.parametrize(("changes", "ids", "total"), LIST_CASES,
                         ids=[repr(c[0]) for c in LIST_CASES])
async def test_list_filters_and_paging(
    store: TaskStore, changes: dict[str, Any], ids: list[str], total: int
) -> None:
    await add_listing_fixture(store)
    records, counted = await store.list(ListQuery(**{"owner": "alice", **changes}))
    assert [r.task_id for r in records] == ids
    assert counted == total
    assert all(r.owner == changes.get("owner", "alice") and not r.deleted for r in records)


# Inserted in this order; created_at ties are broken by insertion, not by id.
TIES = [("cgt-c", 100), ("cgt-a", 100), ("cgt-z", 99), ("cgt-b", 100), ("cgt-d", 101)]
OLDEST_FIRST = ["cgt-z", "cgt-c", "cgt-a", "cgt-b", "cgt-d"]


@pytest.mark.parametrize("newest_first", [True, False], ids=["desc", "asc"])
async def test_cursor_paging_with_ties_within_one_second(
    store: TaskStore, newest_first: bool
) -> None:
    for task_id, created_at in TIES:
        await store.add(task(task_id, created_at=created_at))
    order = OLDEST_FIRST[::-1] if newest_first else OLDEST_FIRST
    records, total = await store.list(ListQuery(owner="alice", newest_first=newest_first))
    assert [r.task_id for r in records] == order and total == 5
    for position, anchor in enumerate(order):
        records, total = await store.list(ListQuery(
            owner="alice", newest_first=newest_first, after_id=anchor, limit=50))
        assert [r.task_id for r in records] == order[position + 1:], anchor
        assert total == 5  # the total ignores the cursor
    seen: list[str] = []
    after: str | None = None
    while True:  # a client walking the list two at a time
        records, _ = await store.list(ListQuery(owner="alice", newest_first=newest_first,
                                                after_id=after, limit=2))
        if not records:
            break
        seen += [r.task_id for r in records]
        after = records[-1].task_id
    assert seen == order


async def test_cursor_anchor_must_be_the_owners(store: TaskStore) -> None:
    await store.add(task("cgt-1"))
    await store.add(task("cgt-bob", owner="bob"))
    for anchor in ("cgt-bob", "cgt-unknown"):
        records, total = await store.list(ListQuery(owner="alice", after_id=anchor))
        assert records == [] and total == 1


async def test_cursor_survives_a_deleted_anchor(store: TaskStore) -> None:
    for task_id, created_at in TIES:
        await store.add(task(task_id, created_at=created_at))
    await store.mark_deleted("cgt-a")
    records, total = await store.list(ListQuery(owner="alice", after_id="cgt-a",
                                                newest_first=False))
    assert [r.task_id for r in records] == ["cgt-b", "cgt-d"] and total == 4


# Schema


def set_schema(store_url: str, version: int | None = None) -> int:
    """Sets the stored schema version (when given); returns the one stored before."""
    if store_url.startswith("sqlite://"):
        with sqlite3.connect(store_url.removeprefix("sqlite:///")) as db:
            (stored,) = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            if version is not None:
                db.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (version,))
        db.close()
        return int(stored)
    client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT)
    key = RedisTaskStore.from_url(store_url).prefix + "schema"
    stored = client.get(key)
    if version is not None:
        client.set(key, version)
    client.close()
    return int(stored or 0)


async def test_a_newer_schema_is_refused(store: TaskStore, store_url: str) -> None:
    await store.add(task("cgt-1"))
    await store.close()
    current = set_schema(store_url, 99)
    newer = open_store(store_url)
    with pytest.raises(StoreError,
                       match=f"schema version 99, newer than this gateway's {current}"):
        await newer.open()
    set_schema(store_url, current)
    same = open_store(store_url)
    await same.open()
    assert await same.get("cgt-1", "alice") is not None
    await same.close()


async def test_redis_schema_version_is_written_when_absent(redis_prefix: str) -> None:
    client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT)
    try:
        assert client.get(redis_prefix + "schema") is None
        store = RedisTaskStore.from_url(redis_url(redis_prefix))
        await store.open()
        await store.close()
        assert client.get(redis_prefix + "schema") == str(SCHEMA_VERSION).encode()
        client.set(redis_prefix + "schema", "garbage")
        with pytest.raises(StoreError, match="not a schema version"):
            await RedisTaskStore.from_url(redis_url(redis_prefix)).open()
    finally:
        client.close()


# Keys: the contract


def key(name: str, digest: str, **fields: Any) -> KeyRecord:
    values: dict[str, Any] = {"name": name, "digest": digest, "prefix": "sgw-ab",
                              "created_at": 1000, "updated_at": 1000, **fields}
    return KeyRecord(**values)


async def test_add_and_get_keys(store: KeyStore) -> None:
    full = key("ci", "d" * 64, models=("sora-2", "doubao-*"), rpm=60, max_in_flight=4,
               daily_tokens=10**6, monthly_tokens=10**7, expires_at=2000, disabled=True)
    bare = key("bare", "e" * 64)
    await store.add_key(full)
    await store.add_key(bare)
    assert await store.get_key("ci") == full
    assert await store.get_key("bare") == bare
    assert await store.get_key("nope") is None
    assert await store.key_by_digest("d" * 64) == full
    assert await store.key_by_digest("f" * 64) is None
    assert sorted(k.name for k in await store.list_keys()) == ["bare", "ci"]


async def test_a_taken_name_is_refused_even_when_revoked(store: KeyStore) -> None:
    await store.add_key(key("ci", "d" * 64, revoked=True))
    with pytest.raises(KeyExists):
        await store.add_key(key("ci", "e" * 64))
    stored = await store.get_key("ci")
    assert stored is not None and stored.digest == "d" * 64 and stored.revoked
    assert await store.key_by_digest("e" * 64) is None


async def test_a_secret_belongs_to_one_key(store: KeyStore) -> None:
    await store.add_key(key("ci", "d" * 64))
    with pytest.raises(KeyExists):
        await store.add_key(key("other", "d" * 64))
    assert await store.get_key("other") is None
    found = await store.key_by_digest("d" * 64)
    assert found is not None and found.name == "ci"


async def test_concurrent_adds_of_one_name_have_one_winner(store: KeyStore) -> None:
    candidates = [key("race", f"{i:064x}") for i in range(10)]
    results = await asyncio.gather(*(store.add_key(k) for k in candidates),
                                   return_exceptions=True)
    winners = [k for k, result in zip(candidates, results, strict=True) if result is None]
    assert len(winners) == 1
    assert all(isinstance(r, KeyExists) for r in results if r is not None)
    assert await store.get_key("race") == winners[0]
    for loser in candidates:
        found = await store.key_by_digest(loser.digest)
        assert found == (winners[0] if loser is winners[0] else None)


async def test_put_key_updates_and_rotates(store: KeyStore) -> None:
    await store.add_key(key("ci", "d" * 64, rpm=60))
    revoked = key("ci", "d" * 64, rpm=None, revoked=True, updated_at=1001)
    await store.put_key(revoked)
    assert await store.get_key("ci") == revoked  # rpm cleared, not kept
    rotated = replace(revoked, digest="e" * 64, prefix="sgw-cd", revoked=False)
    await store.put_key(rotated, old_digest="d" * 64)
    assert await store.key_by_digest("d" * 64) is None
    assert await store.key_by_digest("e" * 64) == rotated
    assert await store.list_keys() == [rotated]
    await store.put_key(key("ghost", "f" * 64))  # only stored keys are replaced
    assert await store.get_key("ghost") is None
    assert await store.key_by_digest("f" * 64) is None


# Limits: the contract


DAY, MONTH = "2026-11-24", "2026-11"


def hold(ref: str, *, key: str = "kim", model: str = "m1", day: str = DAY,
         tokens: int = 100) -> Reservation:
    return Reservation(ref=ref, key=key, model=model, day=day, month=day[:7], tokens=tokens)


async def test_count_request_counts_per_key_and_minute(store: GatewayStore) -> None:
    assert [await store.count_request("kim", 100) for _ in range(3)] == [1, 2, 3]
    assert await store.count_request("ann", 100) == 1
    assert await store.count_request("kim", 101) == 1  # a new minute starts again
    assert await store.count_request("kim", 101) == 2


async def test_each_refusal_says_which_limit_and_where_the_key_stands(
    store: GatewayStore
) -> None:
    two = Limits(max_in_flight=2)
    assert await store.reserve(hold("a1"), two) is None
    assert await store.reserve(hold("a2"), two) is None
    assert await store.reserve(hold("a3"), two) == LimitRefusal("max_in_flight", 2, 2)
    # In flight is checked first, then the day, then the month.
    assert await store.reserve(hold("a4"), Limits(2, 1, 1)) == LimitRefusal(
        "max_in_flight", 2, 2)
    assert await store.reserve(hold("a5"), Limits(3, 250, 10**9)) == LimitRefusal(
        "daily_tokens", 250, 200)
    assert await store.reserve(hold("a6", tokens=50), Limits(daily_tokens=250)) is None
    assert await store.reserve(hold("a7", tokens=1), Limits(daily_tokens=250)) == LimitRefusal(
        "daily_tokens", 250, 250)  # exactly at the budget: nothing more fits
    # Another day of the month: the day is fresh, the month is not.
    other_day = hold("a8", day="2026-11-25", tokens=60)
    assert await store.reserve(other_day, Limits(daily_tokens=100, monthly_tokens=300)
                               ) == LimitRefusal("monthly_tokens", 300, 250)
    assert await store.reserve(other_day, Limits(daily_tokens=100, monthly_tokens=310)) is None
    assert await store.reserve(hold("a9", day="2026-12-01"), Limits(monthly_tokens=100)) is None
    # Other keys are not affected, and refusals held nothing.
    assert await store.reserve(hold("b1", key="ann"), Limits(1, 100, 100)) is None
    rows = await store.usage(since_day="2026-11-01", until_day="2026-12-31")
    assert [(r.key, r.day, r.tasks, r.tokens) for r in rows] == [
        ("ann", DAY, 1, 100), ("kim", DAY, 3, 250), ("kim", "2026-11-25", 1, 60),
        ("kim", "2026-12-01", 1, 100)]


async def test_a_task_takes_its_held_reservation_or_writes_its_entry(
    store: GatewayStore
) -> None:
    one = Limits(max_in_flight=1)
    held = hold("pending-1")
    assert await store.reserve(held, one) is None
    await store.add(task("cgt-1", owner="kim"), next_poll_at=1.0, usage=replace(held, held=True))
    assert await store.reserve(hold("pending-2"), one) == LimitRefusal("max_in_flight", 1, 1)
    await store.settle("pending-1", 5)  # the old ref is gone: nothing happens
    assert await store.reserve(hold("pending-2"), one) == LimitRefusal("max_in_flight", 1, 1)
    await store.settle("cgt-1", 40)
    assert await store.reserve(hold("pending-2"), one) is None
    # A key without limits holds nothing before the create: the entry comes with the task.
    await store.add(task("cgt-2", owner="ann"), usage=hold("pending-3", key="ann", tokens=7))
    assert await store.reserve(hold("pending-4", key="ann"), one) == LimitRefusal(
        "max_in_flight", 1, 1)
    await store.add(task("cgt-3", owner="ann"))  # no usage entry at all
    rows = await store.usage(since_day=DAY, until_day=DAY)
    assert rows == [UsageRow("ann", "m1", DAY, 1, 7), UsageRow("kim", "m1", DAY, 2, 140)]


async def test_settle_counts_once_and_frees_the_slot(store: GatewayStore) -> None:
    limits = Limits(max_in_flight=1, daily_tokens=1000)
    assert await store.reserve(hold("r1", tokens=300), limits) is None
    await store.settle("r1", 120)  # the real bill replaces the estimate
    await store.settle("r1", 999)  # a second settle (another replica, a late poll) is ignored
    await store.settle("r-unknown", 5)
    assert await store.usage(since_day=DAY, until_day=DAY) == [
        UsageRow("kim", "m1", DAY, 1, 120)]
    assert await store.reserve(hold("r2", tokens=900), limits) == LimitRefusal(
        "daily_tokens", 1000, 120)
    assert await store.reserve(hold("r2", tokens=880), limits) is None  # the slot is free
    await store.settle("r2", 0)  # failed: bills nothing, the task still counts
    assert await store.usage(since_day=DAY, until_day=DAY) == [
        UsageRow("kim", "m1", DAY, 2, 120)]
    assert await store.reserve(hold("r3", tokens=880), Limits(monthly_tokens=1000)) is None


async def test_release_gives_everything_back(store: GatewayStore) -> None:
    limits = Limits(max_in_flight=1, daily_tokens=100, monthly_tokens=100)
    assert await store.reserve(hold("r1"), limits) is None
    await store.release("r1")
    await store.release("r1")  # twice is fine
    await store.release("r-unknown")
    assert await store.usage(since_day="2026-01-01", until_day="2026-12-31") == []
    assert await store.reserve(hold("r2"), limits) is None  # slot, day and month all free
    await store.settle("r2", 30)
    await store.release("r2")  # even a settled entry goes
    assert await store.usage(since_day="2026-01-01", until_day="2026-12-31") == []
    assert await store.reserve(hold("r3"), limits) is None


async def test_usage_groups_by_key_model_and_day(store: GatewayStore) -> None:
    for reservation in (
        hold("r1", day="2026-11-23"), hold("r2", model="m2", day="2026-11-23", tokens=50),
        hold("r3", key="ann", day="2026-11-23", tokens=10), hold("r4"),
        hold("r5", tokens=30), hold("r6", key="ann", tokens=20),
        hold("r7", day="2026-12-01", tokens=5), hold("r8", day="2026-11-23", tokens=1),
    ):
        assert await store.reserve(reservation, Limits()) is None
    await store.settle("r1", 80)
    await store.release("r5")
    await store.release("r6")  # ann's only entry that day: the group goes
    everything = [
        UsageRow("ann", "m1", "2026-11-23", 1, 10), UsageRow("kim", "m1", "2026-11-23", 2, 81),
        UsageRow("kim", "m2", "2026-11-23", 1, 50), UsageRow("kim", "m1", DAY, 1, 100),
        UsageRow("kim", "m1", "2026-12-01", 1, 5),
    ]
    assert await store.usage(since_day="2026-11-01", until_day="2026-12-31") == everything
    assert await store.usage(since_day="2026-11-01", until_day="2026-12-31", key="kim") == [
        r for r in everything if r.key == "kim"]
    assert await store.usage(since_day=DAY, until_day="2026-12-01") == everything[3:]
    assert await store.usage(since_day=DAY, until_day=DAY, key="ann") == []
    assert await store.usage(since_day="2026-12-02", until_day="2026-11-01") == []


async def test_concurrent_reserves_across_two_stores_admit_exactly_the_limit(
    store: GatewayStore, other_store: GatewayStore
) -> None:
    stores = (store, other_store)
    limits = Limits(max_in_flight=5)
    results = await asyncio.gather(*(stores[i % 2].reserve(hold(f"r{i}"), limits)
                                     for i in range(20)))
    assert sum(r is None for r in results) == 5
    assert all(r == LimitRefusal("max_in_flight", 5, 5) for r in results if r is not None)
    # The same for a token budget: 5 × 100 fit in 550, the 6th would not.
    budget = Limits(daily_tokens=550)
    results = await asyncio.gather(*(stores[i % 2].reserve(hold(f"t{i}", key="ann"), budget)
                                     for i in range(20)))
    assert sum(r is None for r in results) == 5
    assert {r for r in results if r is not None} == {LimitRefusal("daily_tokens", 550, 500)}


# Tracker: the contract


async def test_leases_give_each_task_one_holder_and_expire(store: GatewayStore) -> None:
    for i in range(3):
        await store.add(task(f"cgt-{i}"), next_poll_at=100.0)
    assert await store.due_tasks(99.0, 10) == []  # not due yet
    due = await store.due_tasks(100.0, 10)
    assert [r.task_id for r in due] == ["cgt-0", "cgt-1", "cgt-2"]
    assert due[0] == task("cgt-0")
    assert await store.claim("cgt-0", "replica-a", until=160.0, now=100.0)  # take
    assert not await store.claim("cgt-0", "replica-b", until=160.0, now=101.0)  # refuse
    assert await store.claim("cgt-0", "replica-a", until=170.0, now=102.0)  # renew
    assert not await store.claim("cgt-0", "replica-b", until=200.0, now=165.0)  # renewed
    assert not await store.claim("cgt-unknown", "replica-a", until=160.0, now=100.0)
    assert [r.task_id for r in await store.due_tasks(169.0, 10)] == ["cgt-1", "cgt-2"]
    # replica-a dies holding cgt-0: after the lease, it is due and replica-b takes over.
    assert [r.task_id for r in await store.due_tasks(170.0, 10)] == ["cgt-0", "cgt-1", "cgt-2"]
    assert await store.claim("cgt-0", "replica-b", until=240.0, now=170.0)
    await store.schedule("cgt-0", "replica-a", 999.0)  # a late write of the dead holder
    assert [r.task_id for r in await store.due_tasks(200.0, 10)] == ["cgt-1", "cgt-2"]
    assert not await store.claim("cgt-0", "replica-a", until=300.0, now=200.0)
    await store.schedule("cgt-0", "replica-b", 300.0)  # frees the lease, due at 300
    assert [r.task_id for r in await store.due_tasks(299.0, 10)] == ["cgt-1", "cgt-2"]
    assert [r.task_id for r in await store.due_tasks(300.0, 10)] == ["cgt-1", "cgt-2", "cgt-0"]
    assert await store.claim("cgt-0", "replica-a", until=360.0, now=300.0)  # free again


async def test_due_tasks_are_oldest_first_within_the_limit(store: GatewayStore) -> None:
    for task_id, at in (("cgt-c", 30.0), ("cgt-a", 10.0), ("cgt-d", 40.0), ("cgt-b", 20.0),
                        ("cgt-late", 1000.0)):
        await store.add(task(task_id), next_poll_at=at)
    assert [r.task_id for r in await store.due_tasks(50.0, 2)] == ["cgt-a", "cgt-b"]
    assert await store.claim("cgt-a", "replica-a", until=60.0, now=50.0)
    assert await store.claim("cgt-c", "replica-a", until=60.0, now=50.0)
    # Leased tasks are skipped, and do not count against the limit.
    assert [r.task_id for r in await store.due_tasks(50.0, 2)] == ["cgt-b", "cgt-d"]
    assert await store.due_tasks(50.0, 0) == []


async def test_finished_and_deleted_tasks_leave_due_tasks(store: GatewayStore) -> None:
    for i, status in enumerate(("queued", "running", "queued", "queued", "succeeded")):
        await store.add(task(f"cgt-{i}", status=status), next_poll_at=10.0)
    assert [r.task_id for r in await store.due_tasks(10.0, 10)] == [
        "cgt-0", "cgt-1", "cgt-2", "cgt-3"]  # added finished: never due
    await store.update_status("cgt-0", status="succeeded", updated_at=1001, usage_tokens=5,
                              task_json=b"{}")
    await store.update_status("cgt-1", status="running", updated_at=1001, usage_tokens=None,
                              task_json=b"{}")
    await store.update_status("cgt-2", status="cancelled", updated_at=1001, usage_tokens=None,
                              task_json=b"{}")
    await store.mark_deleted("cgt-3")
    assert [r.task_id for r in await store.due_tasks(10.0, 10)] == ["cgt-1"]
    # A poll that finishes after the task ended cannot bring it back.
    await store.update_status("cgt-0", status="running", updated_at=1002, usage_tokens=None,
                              task_json=b'{"status": "running"}')
    assert await store.claim("cgt-0", "replica-a", until=20.0, now=10.0)
    await store.schedule("cgt-0", "replica-a", 11.0)
    assert [r.task_id for r in await store.due_tasks(20.0, 10)] == ["cgt-1"]


async def test_a_finished_task_never_goes_back_to_queued_or_running(store: GatewayStore) -> None:
    await store.add(task("cgt-1"))
    await store.update_status("cgt-1", status="running", updated_at=1001, usage_tokens=None,
                              task_json=b'{"status": "running"}')
    await store.update_status("cgt-1", status="succeeded", updated_at=1003, usage_tokens=42,
                              task_json=b'{"status": "succeeded"}')
    for late in ("queued", "running"):  # an older answer landing last
        await store.update_status("cgt-1", status=late, updated_at=1002, usage_tokens=None,
                                  task_json=b'{"status": "late"}')
    got = await store.get("cgt-1", "alice")
    assert got is not None and (got.status, got.updated_at, got.usage_tokens, got.task_json) \
        == ("succeeded", 1003, 42, b'{"status": "succeeded"}')
    records, total = await store.list(ListQuery(owner="alice", statuses=["succeeded"]))
    assert [r.task_id for r in records] == ["cgt-1"] and total == 1


async def test_concurrent_claims_across_two_stores_have_one_winner(
    store: GatewayStore, other_store: GatewayStore
) -> None:
    await store.add(task("cgt-1"), next_poll_at=0.0)
    stores = (store, other_store)
    won = await asyncio.gather(*(stores[i % 2].claim("cgt-1", f"replica-{i}", 200.0, 100.0)
                                 for i in range(10)))
    assert sum(won) == 1
    assert await store.due_tasks(199.0, 10) == [] and await other_store.due_tasks(199.0, 10) == []


# Redis only: replicas, failures, URLs


async def test_replicas_see_each_others_writes_at_once(redis_prefix: str) -> None:
    one, two = (RedisTaskStore.from_url(redis_url(redis_prefix)) for _ in range(2))
    await one.open()
    await two.open()
    try:
        await one.add(task("cgt-1"))
        assert await two.get("cgt-1", "alice") == task("cgt-1")
        await two.update_status("cgt-1", status="succeeded", updated_at=1001, usage_tokens=9,
                                task_json=b"{}")
        got = await one.get("cgt-1", "alice")
        assert got is not None and got.status == "succeeded" and got.usage_tokens == 9
        await one.mark_deleted("cgt-1")
        assert await two.get("cgt-1", "alice") is None
        # A delete racing polls on the other replica: the record stays deleted.
        for i in range(20):
            await one.add(task(f"cgt-race-{i}"))
            await asyncio.gather(
                two.update_status(f"cgt-race-{i}", status="running", updated_at=1001,
                                  usage_tokens=None, task_json=b"{}"),
                one.mark_deleted(f"cgt-race-{i}"),
                two.update_status(f"cgt-race-{i}", status="succeeded", updated_at=1002,
                                  usage_tokens=5, task_json=b"{}"),
            )
            assert await one.get(f"cgt-race-{i}", "alice") is None
        assert await two.list(ListQuery(owner="alice")) == ([], 0)
        # Key creates racing across two connection pools.
        results = await asyncio.gather(
            *((one if i % 2 else two).add_key(key("race", f"{i:064x}")) for i in range(10)),
            return_exceptions=True)
        assert sum(r is None for r in results) == 1
    finally:
        await one.close()
        await two.close()


async def test_redis_limit_and_tracker_layout(redis_prefix: str) -> None:
    """Counters expire, releases leave nothing behind, the due set keeps only unfinished tasks."""
    p = redis_prefix
    store = RedisTaskStore.from_url(redis_url(p))
    await store.open()
    client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT)
    try:
        await store.count_request("kim", 100)
        assert 0 < client.ttl(f"{p}rq:kim:100") <= 120
        assert await store.reserve(hold("r1"), Limits(max_in_flight=2)) is None
        assert client.smembers(f"{p}inflight:kim") == {b"r1"}
        assert 0 < client.ttl(f"{p}tok:d:kim:{DAY}") <= 3 * 86400
        assert 31 * 86400 < client.ttl(f"{p}tok:m:kim:{MONTH}") <= 40 * 86400
        await store.release("r1")
        assert client.keys(f"{p}r:*") == [] and client.keys(f"{p}u:*") == []
        assert client.exists(f"{p}inflight:kim", f"{p}udays") == 0
        assert client.get(f"{p}tok:d:kim:{DAY}") == b"0"

        due = f"{p}due"
        await store.add(task("cgt-1"), next_poll_at=5.5)
        await store.add(task("cgt-2"), next_poll_at=6.0)
        await store.add(task("cgt-done", status="succeeded"), next_poll_at=6.0)
        assert client.zrange(due, 0, -1, withscores=True) == [(b"cgt-1", 5.5), (b"cgt-2", 6.0)]
        await store.update_status("cgt-1", status="failed", updated_at=1001, usage_tokens=None,
                                  task_json=b"{}")
        await store.mark_deleted("cgt-2")
        assert client.zcard(due) == 0
        await store.add(task("cgt-3"), next_poll_at=5.0)
        client.hset(f"{p}t:cgt-3", "status", "expired")  # written behind the store's back
        assert await store.due_tasks(10.0, 10) == [] and client.zcard(due) == 0  # dropped
    finally:
        client.close()
        await store.close()


async def test_a_burst_beyond_the_pool_waits_for_connections(redis_prefix: str) -> None:
    store = RedisTaskStore.from_url(redis_url(redis_prefix))
    await store.open()
    try:
        await store.add(task("cgt-1"))
        got = await asyncio.gather(*(store.get("cgt-1", "alice") for _ in range(500)))
        assert got == [task("cgt-1")] * 500
    finally:
        await store.close()


async def test_a_task_id_is_stored_once(redis_prefix: str) -> None:
    store = RedisTaskStore.from_url(redis_url(redis_prefix))
    await store.open()
    try:
        await store.add(task("cgt-1"))
        with pytest.raises(StoreError, match="already stored"):
            await store.add(task("cgt-1", owner="bob"))
        assert await store.get("cgt-1", "bob") is None
    finally:
        await store.close()


async def test_unreachable_redis_is_a_store_error_without_the_password() -> None:
    store = RedisTaskStore.from_url(f"redis://:hunter2-pw@127.0.0.1:{free_port()}/3")
    with pytest.raises(StoreError, match=r"cannot open task store redis://127\.0\.0\.1:\d+/3"
                       ) as refused:
        await store.open()
    assert "hunter2-pw" not in str(refused.value)
    assert await store.ping() is False


async def test_ping_follows_open_and_close(redis_prefix: str) -> None:
    store = RedisTaskStore.from_url(redis_url(redis_prefix))
    assert await store.ping() is False
    await store.open()
    assert await store.ping() is True
    await store.close()
    assert await store.ping() is False


def test_open_store_and_config_accept_redis_urls() -> None:
    chosen = open_store("redis://127.0.0.1:6379/2?prefix=sgw:&socket_timeout=2")
    assert isinstance(chosen, RedisTaskStore) and chosen.prefix == "sgw:"
    assert chosen.where == "redis://127.0.0.1:6379/2"
    default = open_store("rediss://cache.internal:6380")
    assert isinstance(default, RedisTaskStore) and default.prefix == DEFAULT_PREFIX
    assert isinstance(open_store("sqlite://:memory:"), SQLiteTaskStore)
    with pytest.raises(StoreError, match="unsupported store url"):
        open_store("mysql://x")
    for url in ("redis://127.0.0.1:6379/0?prefix=a:", "rediss://h:6380/1", "sqlite:///x.db"):
        config = gateway_config("http://127.0.0.1:1/api/v3", store_url=url)
        assert config.store.url.get_secret_value() == url
    with pytest.raises(ConfigError, match="store.url"):
        gateway_config("http://127.0.0.1:1/api/v3", store_url="redis+cluster://h")
