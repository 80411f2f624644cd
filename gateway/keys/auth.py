"""Inbound client auth: a gateway key in `Authorization: Bearer …` becomes a ClientIdentity.

Keys come from the config file (held in memory) or from the store (created through the admin
API or CLI). Stored keys are looked up by the sha256 of the presented secret and cached for a
few seconds, so a poll does not cost a store round trip and a revoke or rotation reaches every
replica within that time.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from gateway.config import ClientKeyConfig
from gateway.errors import GatewayError, authentication_failed, model_not_allowed
from gateway.store.base import KeyRecord, KeyStore

STORED_KEY_TTL = 5.0
_CACHE_LIMIT = 10_000


@dataclass(frozen=True, slots=True)
class ClientIdentity:
    """Who is calling: the key's name owns every task created with it."""

    name: str
    models: frozenset[str]  # empty: every model
    policy: KeyRecord | None = None  # stored keys carry their limits

    def require_model(self, model: str) -> None:
        if self.models and model not in self.models:
            raise model_not_allowed(model)


class ClientKeys:
    """Config keys are held only as sha256 digests.

    The presented key is hashed; the digest's first 8 bytes pick a bucket and the full digest is
    compared with `hmac.compare_digest`, so the check is O(1) and constant-time.
    """

    def __init__(self, keys: Iterable[ClientKeyConfig], store: KeyStore | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 wall_clock: Callable[[], float] = time.time) -> None:
        self._buckets: dict[bytes, list[tuple[bytes, ClientIdentity]]] = {}
        for key in keys:
            digest = key.digest()
            self._buckets.setdefault(digest[:8], []).append(
                (digest, _identity(key.name, key.models, _config_policy(key))))
        self._store = store
        self._clock = clock
        self._wall_clock = wall_clock
        self._stored: dict[bytes, tuple[float, KeyRecord | None]] = {}

    async def authenticate(self, authorization: str | None) -> ClientIdentity:
        if not authorization:
            raise authentication_failed()
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise authentication_failed()
        digest = hashlib.sha256(token.encode()).digest()
        found: ClientIdentity | None = None
        for known, identity in self._buckets.get(digest[:8], ()):
            if hmac.compare_digest(known, digest):
                found = identity
        if found is not None:
            return found
        record = await self._stored_key(digest)
        if record is None or record.revoked:
            raise authentication_failed()
        if record.disabled:
            raise GatewayError(403, "key_disabled", f"The key {record.name!r} is disabled.")
        if record.expires_at is not None and self._wall_clock() >= record.expires_at:
            raise GatewayError(403, "key_expired", f"The key {record.name!r} has expired.")
        return _identity(record.name, record.models, record)

    def forget_stored(self) -> None:
        """Drop cached stored keys (after an admin change on this replica)."""
        self._stored.clear()

    async def _stored_key(self, digest: bytes) -> KeyRecord | None:
        if self._store is None:
            return None
        now = self._clock()
        cached = self._stored.get(digest)
        if cached is not None and cached[0] > now:
            return cached[1]
        record = await self._store.key_by_digest(digest.hex())
        if record is not None and not hmac.compare_digest(record.digest, digest.hex()):
            record = None
        if len(self._stored) >= _CACHE_LIMIT:
            self._stored.clear()
        self._stored[digest] = (now + STORED_KEY_TTL, record)
        return record


def _config_policy(key: ClientKeyConfig) -> KeyRecord | None:
    """A config key's limits in the shape stored keys have (only cost budgets are set there)."""
    if key.daily_cost is None and key.monthly_cost is None:
        return None
    return KeyRecord(name=key.name, digest="", prefix="", models=key.models,
                     daily_cost=key.daily_cost, monthly_cost=key.monthly_cost)


def _identity(name: str, models: Iterable[str], policy: KeyRecord | None = None
              ) -> ClientIdentity:
    allowed = frozenset(models)
    return ClientIdentity(name, frozenset() if "*" in allowed else allowed, policy)
