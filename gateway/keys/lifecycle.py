"""Client key lifecycle: create, list, get, update, revoke, rotate (admin API and CLI alike).

A key's secret is shown once, when it is created or rotated; only its sha256 digest and a
short prefix are stored. Keys defined in the config file are listed too, read-only.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, date, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from gateway.catalog import ALL_MODELS, Catalogue
from gateway.config import MAX_COST, ClientKeyConfig
from gateway.errors import GatewayError
from gateway.keys.prices import money
from gateway.observability.logs import get_logger
from gateway.store.base import MAX_COUNT, KeyExists, KeyRecord, KeyStore, LimitStore, UsageRow
from gateway.webhooks.addresses import PrivateAddress, check_public, url_problem
from gateway.webhooks.signing import new_secret

SECRET_PREFIX = "sgw-"
SHOWN_PREFIX_LENGTH = 10
_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
# 9999-12-31T23:59:59Z: the last second datetime (and so ISO 8601 input) can name.
MAX_EXPIRES_AT = 253402300799
log = get_logger("gateway.admin")


class KeyPolicy(BaseModel):
    """The fields a key's policy is made of; all optional (absent or null = no limit)."""

    model_config = ConfigDict(extra="forbid")

    models: list[str] | None = None
    # Bounded so every store holds them exactly (SQLite's int64, Redis scripts' doubles).
    rpm: int | None = Field(default=None, ge=1, le=MAX_COUNT)
    max_in_flight: int | None = Field(default=None, ge=1, le=MAX_COUNT)
    daily_tokens: int | None = Field(default=None, ge=1, le=MAX_COUNT)
    monthly_tokens: int | None = Field(default=None, ge=1, le=MAX_COUNT)
    # Money budgets in prices.currency (gateway/keys/prices.py); stores count millionths.
    daily_cost: float | None = Field(default=None, gt=0, le=MAX_COST, allow_inf_nan=False)
    monthly_cost: float | None = Field(default=None, gt=0, le=MAX_COST, allow_inf_nan=False)
    expires_at: int | None = Field(default=None, ge=0, le=MAX_EXPIRES_AT)
    disabled: bool | None = None
    webhook_url: str | None = None  # task events go there (null: none)

    @field_validator("webhook_url")
    @classmethod
    def _webhook_url(cls, value: str | None) -> str | None:
        problem = url_problem(value) if value is not None else None
        if problem is not None:
            raise ValueError(problem)
        return value

    @field_validator("expires_at", mode="before")
    @classmethod
    def _timestamp(cls, value: Any) -> Any:
        """Unix seconds, or an ISO 8601 time such as 2026-12-31T00:00:00Z (UTC if no offset)."""
        if isinstance(value, str):
            try:
                moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                raise ValueError("must be unix seconds or an ISO 8601 time") from None
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
            return int(moment.timestamp())
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
        "daily_cost": record.daily_cost, "monthly_cost": record.monthly_cost,
        "expires_at": record.expires_at, "disabled": record.disabled,
        "revoked": record.revoked, "created_at": record.created_at,
        "updated_at": record.updated_at, "webhook_url": record.webhook_url,
    }


def _config_view(key: ClientKeyConfig) -> dict[str, Any]:
    return {"name": key.name, "source": "config", "prefix": None, "models": list(key.models),
            "rpm": None, "max_in_flight": None, "daily_tokens": None, "monthly_tokens": None,
            "daily_cost": key.daily_cost, "monthly_cost": key.monthly_cost, "expires_at": None,
            "disabled": False, "revoked": False, "created_at": None,
            "updated_at": None, "webhook_url": key.webhook_url}


class KeyLifecycle:
    """Every key operation, logged with who did it (`actor`) and to which key.

    `catalogue` names the models a key may be given (names and aliases, or "*" for all).
    """

    def __init__(self, store: KeyStore, config_keys: Iterable[ClientKeyConfig],
                 clock: Callable[[], float], *, catalogue: Catalogue,
                 allow_private: bool = False) -> None:
        self._allow_private = allow_private  # webhooks.allow_private
        self._store = store
        self._config_keys = {k.name: k for k in config_keys}
        self._clock = clock
        self._catalogue = catalogue

    async def create(self, data: Any, *, actor: str) -> dict[str, Any]:
        new = parse(NewKey, data)
        assert isinstance(new, NewKey)
        self._check_models(new.models)
        if new.name in self._config_keys:
            raise _conflict(f"A key named {new.name!r} is defined in the config file.")
        secret = SECRET_PREFIX + secrets.token_urlsafe(32)
        now = int(self._clock())
        record = KeyRecord(name=new.name, digest=digest_of(secret),
                           prefix=secret[:SHOWN_PREFIX_LENGTH], created_at=now, updated_at=now)
        _apply(record, new)
        shown: dict[str, Any] = {}
        if record.webhook_url:
            await self._check_webhook_url(record.webhook_url)
            record.webhook_secret = shown["webhook_secret"] = new_secret()
        try:
            await self._store.add_key(record)
        except KeyExists:
            raise _conflict(f"A key named {new.name!r} already exists.") from None
        log.info("admin_action", actor=actor, action="create", key_name=record.name)
        return {**public_view(record), "key": secret, **shown}

    async def list(self) -> list[dict[str, Any]]:
        stored = [public_view(r) for r in await self._store.list_keys()]
        return [*(_config_view(k) for k in self._config_keys.values()), *stored]

    async def get(self, name: str) -> dict[str, Any]:
        if name in self._config_keys:
            return _config_view(self._config_keys[name])
        return public_view(await self._stored(name))

    async def update(self, name: str, data: Any, *, actor: str) -> dict[str, Any]:
        changes = parse(KeyPolicy, data)
        self._check_models(changes.models)
        record = await self._stored(name, writable=True)
        _apply(record, changes)
        shown: dict[str, Any] = {}
        if changes.webhook_url:
            await self._check_webhook_url(changes.webhook_url)
            if record.webhook_secret is None:  # its first webhook: shown this once
                record.webhook_secret = shown["webhook_secret"] = new_secret()
        record.updated_at = int(self._clock())
        await self._store.put_key(record)
        log.info("admin_action", actor=actor, action="update", key_name=name,
                 fields=sorted(changes.model_fields_set))
        return {**public_view(record), **shown}

    async def rotate_webhook_secret(self, name: str, *, actor: str) -> dict[str, Any]:
        """A new whsec_ secret signs the key's webhooks from now on (shown this once)."""
        record = await self._stored(name, writable=True)
        record.webhook_secret, record.updated_at = new_secret(), int(self._clock())
        await self._store.put_key(record)
        log.info("admin_action", actor=actor, action="rotate_webhook_secret", key_name=name)
        return {**public_view(record), "webhook_secret": record.webhook_secret}

    async def webhook_secret(self, name: str, *, actor: str) -> dict[str, Any]:
        """The secret signing the key's webhooks (one a native callback_url generated, say)."""
        record = await self._stored(name, writable=True)
        log.info("admin_action", actor=actor, action="read_webhook_secret", key_name=name)
        return {"name": name, "webhook_secret": record.webhook_secret}

    async def _check_webhook_url(self, url: str) -> None:
        """The SSRF guard (gateway/webhooks/addresses.py), unless webhooks.allow_private."""
        if self._allow_private:
            return
        try:
            await check_public(url)
        except PrivateAddress as exc:
            raise GatewayError(400, "invalid_value", f"webhook_url: {exc}; webhooks may not "
                               "target this network (webhooks.allow_private)",
                               param="webhook_url") from None

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

    def _check_models(self, models: Sequence[str] | None) -> None:
        """A typo would make a key that can use nothing, or silently lack a model."""
        if models is None:
            return  # absent or null: every model
        if not models:
            raise GatewayError(
                400, "invalid_value", "models: an empty list would leave the key no model to "
                "use; list the models it may use, or send [\"*\"] (or null) for every model.",
                param="models")
        unknown = self._catalogue.unknown(models)
        if unknown:
            raise GatewayError(
                400, "invalid_value", f"models: unknown model{'s' if len(unknown) > 1 else ''} "
                f"{', '.join(repr(m[:64]) for m in unknown)}; the catalogue has "
                f"{', '.join([*self._catalogue.names(), ALL_MODELS])}.", param="models")

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
                       key: str | None, now: float, currency: str | None = None
                       ) -> dict[str, Any]:
    """Tasks, tokens and cost by key, model and UTC day, by key and month, and by key
    (settled figures, estimates for tasks still running; cost null where no task was priced).
    `since`/`until` are YYYY-MM-DD, both included; the default is the last 30 days."""
    until = until or time.strftime("%Y-%m-%d", time.gmtime(now))
    since = since or time.strftime("%Y-%m-%d", time.gmtime(now - 29 * 86400))
    first, last = _day("from", since), _day("to", until)
    if first > last:
        raise GatewayError(400, "invalid_value", f"from ({since}) is after to ({until}).",
                           param="from")
    rows = await store.usage(since_day=since, until_day=until, key=key)
    return {"object": "usage", "from": since, "to": until, "currency": currency,
            "data": [{"key": r.key, "model": r.model, "day": r.day, "tasks": r.tasks,
                      "tokens": r.tokens, "cost": money(r.cost)} for r in rows],
            "months": [{"key": k, "month": m, **v}
                       for (k, m), v in sorted(sum_usage(rows, by_month=True).items())],
            "totals": [{"key": k, **v}
                       for (k, _), v in sorted(sum_usage(rows, by_month=False).items())]}


def sum_usage(rows: Iterable[UsageRow], *, by_month: bool) -> dict[tuple[str, str], Any]:
    """Tasks, tokens and cost (null while no task was priced) per key, and per month if
    `by_month`."""
    sums: dict[tuple[str, str], dict[str, Any]] = {}
    for row in rows:
        total = sums.setdefault((row.key, row.day[:7] if by_month else ""),
                                {"tasks": 0, "tokens": 0, "cost": None})
        total["tasks"] += row.tasks
        total["tokens"] += row.tokens
        if row.cost is not None:
            total["cost"] = (total["cost"] or 0) + row.cost
    for total in sums.values():
        total["cost"] = money(total["cost"])
    return sums


def _day(param: str, value: str) -> date:
    """A calendar day written YYYY-MM-DD (fromisoformat alone also takes 20261124, 2026-W48)."""
    try:
        if _DAY.fullmatch(value):
            return date.fromisoformat(value)
    except ValueError:
        pass
    raise GatewayError(400, "invalid_value",
                       f"{param} must be a calendar day like 2026-11-24, got {value[:40]!r}.",
                       param=param)


def _apply(record: KeyRecord, policy: KeyPolicy) -> None:
    for field in policy.model_fields_set:
        value = getattr(policy, field)
        if field == "name":
            continue
        if field == "models":
            record.models = tuple(value) if value is not None else (ALL_MODELS,)
        elif field == "disabled":
            record.disabled = bool(value)
        else:
            setattr(record, field, value)


def _conflict(message: str) -> GatewayError:
    return GatewayError(409, "key_conflict", message)
