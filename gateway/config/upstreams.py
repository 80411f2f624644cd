"""Upstreams (Ark and resellers speaking its API), their keys, the catalogue's overrides."""

from __future__ import annotations

import ssl
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import Field, PrivateAttr, SecretStr, field_validator, model_validator

from gateway.catalog import PRESETS
from gateway.config.fields import ARK_API_PATH, NAME, Frozen, Secret, SecretURL


class UpstreamKeyConfig(Frozen):
    """A named upstream (Ark) API key; the secret is a reference, never a literal."""

    name: str = Field(pattern=NAME)
    secret: Secret


class Timeouts(Frozen):
    """Seconds. `read` covers a whole upstream answer; downloads stream with the same read gap."""

    connect: float = Field(default=5.0, gt=0)
    read: float = Field(default=60.0, gt=0)
    write: float = Field(default=60.0, gt=0)
    pool: float = Field(default=5.0, gt=0)


class UpstreamConfig(Frozen):
    name: str = Field(pattern=NAME)
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
    _api_path_added: bool = PrivateAttr(default=False)

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
    def _api_root(self) -> UpstreamConfig:
        # The seed document's BASE_URL is a host's root; Ark's API lives under /api/v3.
        # check-config says when this happened (`api_path_added`).
        if not urlsplit(self.base_url).path:
            object.__setattr__(self, "base_url", self.base_url + ARK_API_PATH)
            self._api_path_added = True
        return self

    @property
    def api_path_added(self) -> bool:
        return self._api_path_added

    @model_validator(mode="after")
    def _unique_keys(self) -> UpstreamConfig:
        names = [k.name for k in self.keys]
        if len(set(names)) != len(names):
            raise ValueError("upstream key names must be unique")
        return self


class ModelOverride(Frozen):
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


class ModelsConfig(Frozen):
    aliases: dict[str, str] = Field(default_factory=dict)
    overrides: tuple[ModelOverride, ...] = ()
