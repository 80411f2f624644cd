"""The people: members' client keys, admin keys, and the prices their usage is costed at."""

from __future__ import annotations

import hashlib

from pydantic import Field, model_validator

from gateway.config.fields import MAX_COST, NAME, Frozen, Secret
from gateway.webhooks.signing import is_secret


class ModelPrice(Frozen):
    """What the upstream charges for a model, in `prices.currency` per million tokens."""

    per_million_tokens: float = Field(ge=0, le=1e9)
    # Ark prices tasks whose input content includes a video apart (None: the same price).
    per_million_tokens_video_input: float | None = Field(default=None, ge=0, le=1e9)


class PricesConfig(Frozen):
    """Prices per model (gateway/keys/prices.py). Keys may be written as a model, an alias or
    an upstream model id; once loaded, `models` is keyed by upstream model id."""

    currency: str | None = Field(default=None, min_length=1, max_length=16)
    models: dict[str, ModelPrice] = Field(default_factory=dict)


class ClientKeyConfig(Frozen):
    """A team member's gateway key: a secret reference or the sha256 hex of the key."""

    name: str = Field(pattern=NAME)
    secret: Secret | None = None
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    models: tuple[str, ...] = ("*",)
    # Money budgets in prices.currency (UTC day / month), held and settled as token budgets are.
    daily_cost: float | None = Field(default=None, gt=0, le=MAX_COST)
    monthly_cost: float | None = Field(default=None, gt=0, le=MAX_COST)
    # Task events (Standard Webhooks) go to webhook_url, signed with webhook_secret (whsec_…).
    webhook_url: str | None = None
    webhook_secret: Secret | None = None

    @model_validator(mode="after")
    def _one_credential(self) -> ClientKeyConfig:
        if (self.secret is None) == (self.sha256 is None):
            raise ValueError("give exactly one of `secret` or `sha256`")
        if self.webhook_url is not None and self.webhook_secret is None:
            raise ValueError("webhook_url needs a webhook_secret (whsec_…, as a reference)")
        if self.webhook_secret is not None and not is_secret(
                self.webhook_secret.get_secret_value()):
            raise ValueError("webhook_secret must be whsec_ and the base64 of 24 bytes or more "
                             "(`openssl rand -base64 32`)")
        return self

    def digest(self) -> bytes:
        if self.secret is not None:
            return hashlib.sha256(self.secret.get_secret_value().encode()).digest()
        assert self.sha256 is not None
        return bytes.fromhex(self.sha256)


class AdminKeyConfig(Frozen):
    """An operator key for /admin/* (key lifecycle, usage)."""

    name: str = Field(pattern=NAME)
    secret: Secret


class AdminConfig(Frozen):
    keys: tuple[AdminKeyConfig, ...] = ()
