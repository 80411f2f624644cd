"""Client key lifecycle: create, list, get, update, revoke, rotate (admin API and CLI alike).

A key's secret is shown once, when it is created or rotated; only its sha256 digest and a
short prefix are stored. Keys defined in the config file are listed too, read-only.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from gateway.config import ClientKeyConfig
from gateway.errors import GatewayError
from gateway.logs import get_logger
from gateway.store.base import KeyExists, KeyRecord, KeyStore, LimitStore

SECRET_PREFIX = "sgw-"
SHOWN_PREFIX_LENGTH = 10
_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
log = get_logger("gateway.admin")


class KeyPolicy(BaseModel):
    """The fields a key's policy is made of; all optional (absent or null = no limit)."""

    model_config = ConfigDict(extra="forbid")

    models: list[str] | None = None
    rpm: int | None = Field(default=None, ge=1)
    max_in_flight: int | None = Field(default=None, ge=1)
    daily_tokens: int | None = Field(default=None, ge=1)
    monthly_tokens: int | None = Field(default=None, ge=1)
    expires_at: int | None = None
    disabled: bool | None = None

    @field_validator("expires_at", mode="before")
    @classmethod
    def _timestamp(cls, value: Any) -> Any:
        """Unix seconds, or an ISO 8601 time such as 2026-12-31T00:00:00Z."""
        if isinstance(value, str):
            try:
                return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp())
            except ValueError:
                raise ValueError("must be unix seconds or an ISO 8601 time") from None
        return value


class NewKey(KeyPolicy):
    name: str = Field(pattern=_NAME)


def parse(model: type[KeyPolicy], data: Any) -> KeyPolicy:
    """Validated admin input, or a 400 naming the field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise GatewayError(400, "invalid_value", f"{where}: {first['msg']}",
                           param=where) from None


def digest_of(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def public_view(record: KeyRecord, *, source: str = "store") -> dict[str, Any]:
    """What listings show: never the digest, only the secret's first characters."""
    return {
        "name": record.name, "source": source, "prefix": record.prefix,
        "models": list(record.models), "rpm": record.rpm, "max_in_flight": record.max_in_flight,
        "daily_tokens": record.daily_tokens, "monthly_tokens": record.monthly_tokens,
        "expires_at": record.expires_at, "disabled": record.disabled,
        "revoked": record.revoked, "created_at": record.created_at,
        "updated_at": record.updated_at,
    }


def _config_view(key: ClientKeyConfig) -> dict[str, Any]:
    return {"name": key.name, "source": "config", "prefix": None, "models": list(key.models),
            "rpm": None, "max_in_flight": None, "daily_tokens": None, "monthly_tokens": None,
            "expires_at": None, "disabled": False, "revoked": False, "created_at": None,
            "updated_at": None}


class KeyLifecycle:
    """Every key operation, logged with who did it (`actor`) and to which key."""

    def __init__(self, store: KeyStore, config_keys: Iterable[ClientKeyConfig],
                 clock: Callable[[], float]) -> None:
        self._store = store
        self._config_keys = {k.name: k for k in config_keys}
        self._clock = clock

    async def create(self, data: Any, *, actor: str) -> dict[str, Any]:
        new = parse(NewKey, data)
        assert isinstance(new, NewKey)
        if new.name in self._config_keys:
            raise _conflict(f"A key named {new.name!r} is defined in the config file.")
        secret = SECRET_PREFIX + secrets.token_urlsafe(32)
        now = int(self._clock())
        record = KeyRecord(name=new.name, digest=digest_of(secret),
                           prefix=secret[:SHOWN_PREFIX_LENGTH], created_at=now, updated_at=now)
        _apply(record, new)
        try:
            await self._store.add_key(record)
        except KeyExists:
            raise _conflict(f"A key named {new.name!r} already exists.") from None
        log.info("admin_action", actor=actor, action="create", key_name=record.name)
        return {**public_view(record), "key": secret}

    async def list(self) -> list[dict[str, Any]]:
        stored = [public_view(r) for r in await self._store.list_keys()]
        return [*(_config_view(k) for k in self._config_keys.values()), *stored]

    async def get(self, name: str) -> dict[str, Any]:
        if name in self._config_keys:
            return _config_view(self._config_keys[name])
        return public_view(await self._stored(name))

    async def update(self, name: str, data: Any, *, actor: str) -> dict[str, Any]:
        changes = parse(KeyPolicy, data)
        record = await self._stored(name, writable=True)
        _apply(record, changes)
        record.updated_at = int(self._clock())
        await self._store.put_key(record)
        log.info("admin_action", actor=actor, action="update", key_name=name,
                 fields=sorted(changes.model_fields_set))
        return public_view(record)

    async def revoke(self, name: str, *, actor: str) -> dict[str, Any]:
        record = await self._stored(name, writable=True)
        record.revoked, record.updated_at = True, int(self._clock())
        await self._store.put_key(record)
        log.info("admin_action", actor=actor, action="revoke", key_name=name)
        return public_view(record)

    async def rotate(self, name: str, *, actor: str) -> dict[str, Any]:
        record = await self._stored(name, writable=True)
        old_digest = record.digest
        secret = SECRET_PREFIX + secrets.token_urlsafe(32)
        record.digest, record.prefix = digest_of(secret), secret[:SHOWN_PREFIX_LENGTH]
        record.updated_at = int(self._clock())
        await self._store.put_key(record, old_digest=old_digest)
        log.info("admin_action", actor=actor, action="rotate", key_name=name)
        return {**public_view(record), "key": secret}

    async def _stored(self, name: str, *, writable: bool = False) -> KeyRecord:
        if writable and name in self._config_keys:
            raise _conflict(f"The key {name!r} is defined in the config file; change it there.")
        record = await self._store.get_key(name)
        if record is None:
            raise GatewayError(404, "key_not_found", f"No key named {name!r}.", param="name")
        if writable and record.revoked:
            raise _conflict(f"The key {name!r} is revoked.")
        return record


async def usage_report(store: LimitStore, *, since: str | None, until: str | None,
                       key: str | None, now: float) -> dict[str, Any]:
    """Tasks and tokens by key, model and UTC day (settled figures, estimates for tasks still
    running). `since`/`until` are YYYY-MM-DD, both included; the default is the last 30 days."""
    until = until or time.strftime("%Y-%m-%d", time.gmtime(now))
    since = since or time.strftime("%Y-%m-%d", time.gmtime(now - 29 * 86400))
    for name, day in (("from", since), ("to", until)):
        if not _DAY.match(day):
            raise GatewayError(400, "invalid_value", f"{name} must be a day like 2026-11-24.",
                               param=name)
    rows = await store.usage(since_day=since, until_day=until, key=key)
    totals: dict[str, dict[str, int]] = {}
    for row in rows:
        total = totals.setdefault(row.key, {"tasks": 0, "tokens": 0})
        total["tasks"] += row.tasks
        total["tokens"] += row.tokens
    return {"object": "usage", "from": since, "to": until,
            "data": [{"key": r.key, "model": r.model, "day": r.day, "tasks": r.tasks,
                      "tokens": r.tokens} for r in rows],
            "totals": [{"key": k, **v} for k, v in sorted(totals.items())]}


def _apply(record: KeyRecord, policy: KeyPolicy) -> None:
    for field in policy.model_fields_set:
        value = getattr(policy, field)
        if field == "name":
            continue
        if field == "models":
            record.models = tuple(value) if value else ("*",)
        elif field == "disabled":
            record.disabled = bool(value)
        else:
            setattr(record, field, value)


def _conflict(message: str) -> GatewayError:
    return GatewayError(409, "key_conflict", message)
