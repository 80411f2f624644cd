"""What every config section is built from: frozen models, secret references, name rules."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, SecretStr

from gateway.secrets import resolve_secret, resolve_url

Secret = Annotated[SecretStr, BeforeValidator(resolve_secret)]
SecretURL = Annotated[SecretStr, BeforeValidator(resolve_url)]
NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
DEFAULT_MAX_BODY_BYTES = 64 * 1024 * 1024
# The largest cost budget: stores count cost in millionths, and 2**53 of those stay exact.
MAX_COST = 9_000_000_000.0
ARK_API_PATH = "/api/v3"  # what an upstream base_url given as a bare host gets


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
