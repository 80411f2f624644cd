"""Inbound client auth: a gateway key in `Authorization: Bearer …` becomes a ClientIdentity."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass

from gateway.config import ClientKeyConfig
from gateway.errors import authentication_failed, model_not_allowed


@dataclass(frozen=True, slots=True)
class ClientIdentity:
    """Who is calling: the key's name owns every task created with it."""

    name: str
    models: frozenset[str]  # empty: every model

    def require_model(self, model: str) -> None:
        if self.models and model not in self.models:
            raise model_not_allowed(model)


class ClientKeys:
    """Keys are held only as sha256 digests.

    The presented key is hashed; the digest's first 8 bytes pick a bucket and the full digest is
    compared with `hmac.compare_digest`, so the check is O(1) and constant-time.
    """

    def __init__(self, keys: Iterable[ClientKeyConfig]) -> None:
        self._buckets: dict[bytes, list[tuple[bytes, ClientIdentity]]] = {}
        for key in keys:
            models = frozenset() if "*" in key.models else frozenset(key.models)
            digest = key.digest()
            self._buckets.setdefault(digest[:8], []).append(
                (digest, ClientIdentity(key.name, models))
            )

    def authenticate(self, authorization: str | None) -> ClientIdentity:
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
        if found is None:
            raise authentication_failed()
        return found
