"""The gateway's configuration: YAML validated into one immutable object."""

from __future__ import annotations

import hashlib
import os
import ssl
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from gateway.catalog import PRESETS, build_catalogue
from gateway.secrets import resolve_secret, resolve_url, url_secrets

Secret = Annotated[SecretStr, BeforeValidator(resolve_secret)]
SecretURL = Annotated[SecretStr, BeforeValidator(resolve_url)]
_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
DEFAULT_MAX_BODY_BYTES = 64 * 1024 * 1024


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class UpstreamKeyConfig(_Frozen):
    """A named upstream (Ark) API key; the secret is a reference, never a literal."""

    name: str = Field(pattern=_NAME)
    secret: Secret


class Timeouts(_Frozen):
    """Seconds. `read` covers a whole upstream answer; downloads stream with the same read gap."""

    connect: float = Field(default=5.0, gt=0)
    read: float = Field(default=60.0, gt=0)
    write: float = Field(default=60.0, gt=0)
    pool: float = Field(default=5.0, gt=0)


class UpstreamConfig(_Frozen):
    name: str = Field(pattern=_NAME)
    preset: str = "volcengine"
    base_url: str = Field(pattern=r"^https?://")
    keys: tuple[UpstreamKeyConfig, ...] = Field(min_length=1)
    timeouts: Timeouts = Timeouts()
    validation: bool = True
    max_connections: int = Field(default=100, ge=1)
    # Outbound proxy for task calls and result files; without one, HTTP(S)_PROXY / ALL_PROXY
    # from the environment apply. NO_PROXY is respected either way.
    proxy: SecretURL | None = None
    env_proxy: bool = True  # false: ignore HTTP(S)_PROXY (an upstream on this machine, say)
    # Extra CA certificates (PEM) trusted for this upstream, beside the system's.
    ca_file: Path | None = None
    # Lower first, as MX records: of the upstreams serving a model, the lowest takes its
    # creates and the others take them over in this order (ties keep the config order).
    priority: int = 0
    # A key refused with 401/403 is quarantined and re-checked this often (seconds).
    key_probe_interval: float = Field(default=180.0, gt=0)
    # How long a key rests after a 429 that names no Retry-After (Ark's never do).
    key_cooldown: float = Field(default=5.0, gt=0)

    @field_validator("proxy")
    @classmethod
    def _http_proxy(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// proxy URL")
        return value

    @field_validator("ca_file")
    @classmethod
    def _readable_pem(cls, value: Path | None) -> Path | None:
        if value is not None:
            try:  # a bare context: checks the file without loading the system store
                ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cafile=value)
            except (OSError, ssl.SSLError) as exc:
                raise ValueError(f"cannot load CA certificates from {value}: {exc}") from None
        return value

    @field_validator("preset")
    @classmethod
    def _known_preset(cls, value: str) -> str:
        if value not in PRESETS:
            raise ValueError(f"unknown preset {value!r}; expected one of {', '.join(PRESETS)}")
        return value

    @field_validator("base_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @model_validator(mode="after")
    def _unique_keys(self) -> UpstreamConfig:
        names = [k.name for k in self.keys]
        if len(set(names)) != len(names):
            raise ValueError("upstream key names must be unique")
        return self


class ModelOverride(_Frozen):
    """Adds a model or overrides fields of a preset one (matched by `name`)."""

    name: str
    upstream: str | None = None
    upstream_model: str | None = None
    family: str | None = None
    resolutions: tuple[str, ...] | None = None
    ratios: tuple[str, ...] | None = None
    duration_min: int | None = None
    duration_max: int | None = None
    duration_auto: bool | None = None
    max_images: int | None = None
    max_videos: int | None = None
    max_audios: int | None = None
    audio_only: bool | None = None
    service_tiers: tuple[str, ...] | None = None


class ModelsConfig(_Frozen):
    aliases: dict[str, str] = Field(default_factory=dict)
    overrides: tuple[ModelOverride, ...] = ()


class ClientKeyConfig(_Frozen):
    """A team member's gateway key: a secret reference or the sha256 hex of the key."""

    name: str = Field(pattern=_NAME)
    secret: Secret | None = None
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    models: tuple[str, ...] = ("*",)
    # Task events (Standard Webhooks) go to webhook_url, signed with webhook_secret (whsec_…).
    webhook_url: str | None = None
    webhook_secret: Secret | None = None

    @model_validator(mode="after")
    def _one_credential(self) -> ClientKeyConfig:
        if (self.secret is None) == (self.sha256 is None):
            raise ValueError("give exactly one of `secret` or `sha256`")
        if self.webhook_url is not None and self.webhook_secret is None:
            raise ValueError("webhook_url needs a webhook_secret (whsec_…, as a reference)")
        if self.webhook_secret is not None and not self.webhook_secret.get_secret_value(
                ).startswith("whsec_"):
            raise ValueError("webhook_secret must be a whsec_… secret")
        return self

    def digest(self) -> bytes:
        if self.secret is not None:
            return hashlib.sha256(self.secret.get_secret_value().encode()).digest()
        assert self.sha256 is not None
        return bytes.fromhex(self.sha256)


class StoreConfig(_Frozen):
    """`url` may hold ${ENV} / ${file:…} references anywhere (a Redis password, say)."""

    url: SecretURL = SecretStr("sqlite:///seedance-gateway.db")

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().startswith(("sqlite://", "redis://", "rediss://")):
            raise ValueError("must start with sqlite://, redis:// or rediss://")
        return value


class OpenAIConfig(_Frozen):
    size_policy: Literal["nearest", "strict"] = "nearest"
    duration_policy: Literal["clamp", "strict"] = "clamp"
    poll_after_ms: int = Field(default=5000, ge=0, le=60000)
    default_model: str = "sora-2"  # used when an OpenAI create names no model


class AdminKeyConfig(_Frozen):
    """An operator key for /admin/* (key lifecycle, usage)."""

    name: str = Field(pattern=_NAME)
    secret: Secret


class AdminConfig(_Frozen):
    keys: tuple[AdminKeyConfig, ...] = ()


class TrackerConfig(_Frozen):
    """The background tracker that follows every task to its end (for usage and budgets), and
    how often any poll of a task (a client's or the tracker's) may reach the upstream."""

    enabled: bool = True
    first_poll: float = Field(default=20.0, ge=0)  # seconds after creation (tasks take minutes)
    interval: float = Field(default=15.0, gt=0)  # seconds between polls of one task
    per_key_rate: float = Field(default=5.0, gt=0)  # polls per second per upstream key
    lease: float = Field(default=60.0, gt=0)  # a dead replica's tasks move on after this
    tick: float = Field(default=1.0, gt=0)  # how often due tasks are looked for
    batch: int = Field(default=100, ge=1)  # due tasks taken per tick
    # Seconds after a replica asked the upstream about an unfinished task during which every
    # poll of it, on any replica, is answered from the record (0: each poll asks). A finished
    # task's record always answers (gateway/tasks/freshness.py).
    poll_window: float = Field(default=2.0, ge=0)
    # List calls per second per upstream key with which the tracker refreshes many due tasks at
    # once (Ark allows 1 per second per account); 0: never list, task GETs only.
    list_rate: float = Field(default=1.0, ge=0)


class WebhooksConfig(_Frozen):
    """The webhook deliverer (gateway/webhooks/): the outbox, its retries, the SSRF guard."""

    enabled: bool = True  # false: events still queue in the outbox, nothing is sent
    # Loopback, private and link-local targets are refused unless this is true.
    allow_private: bool = False
    timeout: float = Field(default=10.0, gt=0)  # seconds per attempt
    # Seconds before each retry after a failed attempt (Standard Webhooks); then it gives up.
    retry_schedule: tuple[float, ...] = (5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0)
    tick: float = Field(default=1.0, gt=0)  # how often the outbox is looked at
    lease: float = Field(default=60.0, gt=0)  # a dead sender's messages go out again after this
    batch: int = Field(default=50, ge=1)  # messages taken per look
    concurrency: int = Field(default=16, ge=1)  # attempts in flight per replica
    # The fast path: creates give Ark {server.public_url}/ark/callbacks/… as callback_url, and a
    # callback makes the gateway look at that task now (needs server.public_url).
    ark_callbacks: bool = False


class MetricsConfig(_Frozen):
    """`/metrics`: open by default; with `bearer`, scrapers must send that token."""

    enabled: bool = True
    bearer: Secret | None = None


class ServerConfig(_Frozen):
    """Timeouts are seconds; they close connections of clients that stall (each holds a file)."""

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)
    workers: int = Field(default=1, ge=1)
    max_body_bytes: int = Field(default=DEFAULT_MAX_BODY_BYTES, ge=1024)
    # A request head must be complete this long after the connection opened or after the
    # previous response on it; otherwise the connection is closed.
    header_timeout: float = Field(default=20.0, gt=0)
    keepalive_timeout: int = Field(default=5, ge=1)  # uvicorn's timeout_keep_alive: whole seconds
    body_timeout: float = Field(default=60.0, gt=0)  # longest gap between two body reads; 408
    # The externally visible base of this gateway (https://videos.example.com), used in the
    # links it hands out; without it, the base is taken from each request's Host.
    public_url: str | None = Field(default=None, pattern=r"^https?://")


class S3Config(_Frozen):
    """How to reach an S3-compatible result store (AWS, R2, MinIO, Volcengine TOS)."""

    endpoint_url: SecretURL | None = None  # None: AWS's own endpoint for `region`
    region: str | None = None
    access_key_id: Secret | None = None
    secret_access_key: Secret | None = None
    part_bytes: int = Field(default=8 * 1024 * 1024, ge=5 * 1024 * 1024)  # multipart part size


class ResultsConfig(_Frozen):
    """The result archive (gateway/results/): finished videos copied out of Ark's reach."""

    archive: bool = True
    # file:///path or s3://bucket/prefix; None: a `results` folder beside the SQLite file
    # (./results with Redis).
    store: SecretURL | None = None
    s3: S3Config = S3Config()
    retention_days: float = Field(default=30.0, gt=0)
    max_bytes: int | None = Field(default=None, ge=1)  # the oldest files go first past this
    rewrite_native_urls: bool = True
    # Signs the gateway's file links; None: one generated once and kept in the result store,
    # so every replica sharing the store signs alike.
    signing_secret: Secret | None = None
    link_ttl: float = Field(default=86400.0, gt=0)  # seconds a file link stays valid
    concurrency: int = Field(default=4, ge=1)  # copies at once per replica
    sweep_interval: float = Field(default=60.0, gt=0)  # pending copies and retention, seconds

    @field_validator("store")
    @classmethod
    def _known_scheme(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().startswith(("file://", "s3://")):
            raise ValueError("must start with file:// or s3://")
        return value


class Config(_Frozen):
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
    return parse_config(data if data is not None else {}, env=env, source=str(path))


def parse_config(
    data: Any, *, env: Mapping[str, str] | None = None, source: str = "config"
) -> Config:
    try:
        return Config.model_validate(data, context={"env": os.environ if env is None else env})
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

