"""The gateway's configuration: YAML validated into one immutable object.

The sections live in config/upstreams.py, config/members.py and config/runtime.py; this module
puts them together, checks what spans sections, and loads files.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, ValidationError, model_validator

from gateway.catalog import Catalogue, build_catalogue
from gateway.config.fields import (
    ARK_API_PATH,
    DEFAULT_MAX_BODY_BYTES,
    MAX_COST,
    Frozen,
    Secret,
    SecretURL,
)
from gateway.config.members import (
    AdminConfig,
    AdminKeyConfig,
    ClientKeyConfig,
    ModelPrice,
    PricesConfig,
)
from gateway.config.runtime import (
    MetricsConfig,
    OpenAIConfig,
    ResultsConfig,
    S3Config,
    ServerConfig,
    StoreConfig,
    TrackerConfig,
    WebhooksConfig,
)
from gateway.config.upstreams import (
    ModelOverride,
    ModelsConfig,
    Timeouts,
    UpstreamConfig,
    UpstreamKeyConfig,
)
from gateway.secrets import url_secrets

__all__ = [
    "ARK_API_PATH", "DEFAULT_MAX_BODY_BYTES", "MAX_COST", "AdminConfig", "AdminKeyConfig",
    "ClientKeyConfig", "Config", "ConfigError", "MetricsConfig", "ModelOverride", "ModelPrice",
    "ModelsConfig", "OpenAIConfig", "PricesConfig", "ResultsConfig", "S3Config", "Secret",
    "SecretURL", "ServerConfig", "StoreConfig", "Timeouts", "TrackerConfig", "UpstreamConfig",
    "UpstreamKeyConfig", "WebhooksConfig", "load_config", "parse_config",
]


class Config(Frozen):
    server: ServerConfig = ServerConfig()
    upstreams: tuple[UpstreamConfig, ...] = Field(min_length=1)
    models: ModelsConfig = ModelsConfig()
    client_keys: tuple[ClientKeyConfig, ...] = ()
    store: StoreConfig = StoreConfig()
    openai: OpenAIConfig = OpenAIConfig()
    metrics: MetricsConfig = MetricsConfig()
    admin: AdminConfig = AdminConfig()
    tracker: TrackerConfig = TrackerConfig()
    results: ResultsConfig = ResultsConfig()
    webhooks: WebhooksConfig = WebhooksConfig()
    prices: PricesConfig = PricesConfig()

    @model_validator(mode="after")
    def _consistent(self) -> Config:
        if not self.client_keys and not self.admin.keys:
            raise ValueError("give at least one of client_keys or admin.keys (with only admin "
                             "keys, members' keys are created through /admin/keys)")
        for kind, names in (("upstream", [u.name for u in self.upstreams]),
                            ("client key", [k.name for k in self.client_keys])):
            dupes = sorted({n for n in names if names.count(n) > 1})
            if dupes:
                raise ValueError(f"duplicate {kind} names: {', '.join(dupes)}")
        digests = [k.digest() for k in self.client_keys]
        if len(set(digests)) != len(digests):
            raise ValueError("two client keys have the same secret")
        catalogue = build_catalogue(self)  # raises ValueError naming a bad alias or override
        if self.webhooks.ark_callbacks and not self.server.public_url:
            raise ValueError("webhooks.ark_callbacks needs server.public_url (where Ark can "
                             "reach this gateway)")
        for key in self.client_keys:
            if not key.models:
                raise ValueError(f"client key {key.name!r}: models is empty, which would leave "
                                 "it no model; list its models, or [\"*\"] for every model")
            unknown = catalogue.unknown(key.models)
            if unknown:
                raise ValueError(f"client key {key.name!r}: unknown models {', '.join(unknown)}")
        # Frozen: the resolved table replaces the written one (validation runs once).
        object.__setattr__(self, "prices", _resolved_prices(self.prices, catalogue))
        return self

    def secret_values(self) -> list[str]:
        """Every configured secret, for the log redactor."""
        values = [k.secret.get_secret_value() for u in self.upstreams for k in u.keys]
        values += [k.secret.get_secret_value() for k in self.client_keys if k.secret]
        values += [k.webhook_secret.get_secret_value() for k in self.client_keys
                   if k.webhook_secret]
        if self.metrics.bearer is not None:
            values.append(self.metrics.bearer.get_secret_value())
        values += [k.secret.get_secret_value() for k in self.admin.keys]
        values += url_secrets(self.store.url.get_secret_value())
        s3 = self.results.s3
        values += [v.get_secret_value() for v in (s3.access_key_id, s3.secret_access_key,
                                                   self.results.signing_secret) if v is not None]
        values += [s for u in self.upstreams if u.proxy is not None
                   for s in url_secrets(u.proxy.get_secret_value())]
        return values

    def upstream(self, name: str) -> UpstreamConfig:
        for upstream in self.upstreams:
            if upstream.name == name:
                return upstream
        raise KeyError(name)


def _resolved_prices(prices: PricesConfig, catalogue: Catalogue) -> PricesConfig:
    """Prices keyed by upstream model id (what a task record stores), names resolved through
    the catalogue: a price written for an alias is its target's."""
    upstream_ids = {spec.upstream_model for spec in catalogue.models()}
    resolved: dict[str, ModelPrice] = {}
    for name, price in prices.models.items():
        spec = catalogue.resolve(name)
        model = spec.upstream_model if spec is not None else name
        if spec is None and name not in upstream_ids:
            raise ValueError(f"prices.models: unknown model {name!r}")
        if model in resolved and resolved[model] != price:
            raise ValueError(f"prices.models: two different prices for {model!r}")
        resolved[model] = price
    return PricesConfig(currency=prices.currency, models=resolved)


class ConfigError(Exception):
    """A config that cannot be used; the message names the field."""


def load_config(path: str | Path, *, env: Mapping[str, str] | None = None) -> Config:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    return parse_config(data if data is not None else {}, env=env, source=str(path),
                        base_dir=Path(path).resolve().parent)


def parse_config(
    data: Any, *, env: Mapping[str, str] | None = None, source: str = "config",
    base_dir: Path | None = None,
) -> Config:
    """`base_dir` anchors relative SQLite paths (the config file's folder)."""
    try:
        return Config.model_validate(data, context={"env": os.environ if env is None else env,
                                                    "base_dir": base_dir})
    except ValidationError as exc:
        lines = [f"{source}: invalid configuration"]
        errors = exc.errors(include_url=False, include_input=False)
        locs = [tuple(e["loc"]) for e in errors]
        for error, loc in zip(errors, locs, strict=True):
            # A list whose only item failed also reports itself as too short: noise.
            if any(other[: len(loc)] == loc and other != loc for other in locs):
                continue
            where = ".".join(str(p) for p in loc) or "(top level)"
            lines.append(f"  {where}: {error['msg']}")
        raise ConfigError("\n".join(lines)) from None
