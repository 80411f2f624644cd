"""Task records: what the gateway remembers about every task it created."""

from __future__ import annotations

from gateway.store.base import GatewayStore, ListQuery, StoreError, TaskRecord, TaskStore
from gateway.store.sqlite import SQLiteTaskStore


def open_store(url: str) -> GatewayStore:
    """The store a `store.url` names (the store is opened in the app's lifespan)."""
    if url.startswith("sqlite://"):
        return SQLiteTaskStore.from_url(url)
    if url.startswith(("redis://", "rediss://")):
        from gateway.store.redis import RedisTaskStore  # redis-py loads only when used

        return RedisTaskStore.from_url(url)
    raise StoreError(f"unsupported store url {url.split('://')[0]}://…; use sqlite:///path.db, "
                     "redis://host:port/db or rediss://host:port/db")


__all__ = [
    "GatewayStore", "ListQuery", "SQLiteTaskStore", "StoreError", "TaskRecord", "TaskStore",
    "open_store",
]
