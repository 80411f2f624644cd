"""How the gateway runs: its server, store, tracker, metrics, result archive and webhooks."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationInfo, field_validator

from gateway.config.fields import DEFAULT_MAX_BODY_BYTES, Frozen, Secret, SecretURL


class StoreConfig(Frozen):
    """`url` may hold ${ENV} / ${file:…} references anywhere (a Redis password, say).

    A relative SQLite path (`sqlite:///team.db`) is relative to the config file's folder, so
    `serve` and `keys` find one database whatever folder they are started from.
    """

    url: SecretURL = Field(default=SecretStr("sqlite:///seedance-gateway.db"),
                           validate_default=True)

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, value: SecretStr, info: ValidationInfo) -> SecretStr:
        url = value.get_secret_value()
        if not url.startswith(("sqlite://", "redis://", "rediss://")):
            raise ValueError("must start with sqlite://, redis:// or rediss://")
        base_dir = (info.context or {}).get("base_dir")
        path = url.removeprefix("sqlite:///")
        if base_dir is not None and path != url and path and not path.startswith("/"):
            return SecretStr(f"sqlite:///{(Path(base_dir) / path).resolve()}")
        return value


class OpenAIConfig(Frozen):
    size_policy: Literal["nearest", "strict"] = "nearest"
    duration_policy: Literal["clamp", "strict"] = "clamp"
    poll_after_ms: int = Field(default=5000, ge=0, le=60000)
    default_model: str = "sora-2"  # used when an OpenAI create names no model


class TrackerConfig(Frozen):
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


class WebhooksConfig(Frozen):
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


class MetricsConfig(Frozen):
    """`/metrics`: open by default; with `bearer`, scrapers must send that token."""

    enabled: bool = True
    bearer: Secret | None = None


class ServerConfig(Frozen):
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


class S3Config(Frozen):
    """How to reach an S3-compatible result store (AWS, R2, MinIO, Volcengine TOS)."""

    endpoint_url: SecretURL | None = None  # None: AWS's own endpoint for `region`
    region: str | None = None
    access_key_id: Secret | None = None
    secret_access_key: Secret | None = None
    part_bytes: int = Field(default=8 * 1024 * 1024, ge=5 * 1024 * 1024)  # multipart part size


class ResultsConfig(Frozen):
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
