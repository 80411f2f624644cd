"""Secret references (`${ENV_VAR}`, `${file:/path}`) and the redacted type they resolve to."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import SecretStr, ValidationInfo

_REFERENCE = re.compile(r"^\$\{(?:file:(?P<file>[^}]+)|(?P<env>[A-Za-z_][A-Za-z0-9_]*))\}$")


def resolve_secret(value: Any, info: ValidationInfo) -> SecretStr:
    """Resolve a secret reference from config into a SecretStr.

    Literal secrets are refused so that none ends up committed in a config file. The environment
    comes from the validation context (``{"env": {...}}``) so loading stays free of globals.
    """
    if isinstance(value, SecretStr):
        return value
    if not isinstance(value, str):
        raise ValueError("must be a reference like ${ENV_VAR} or ${file:/run/secrets/name}")
    match = _REFERENCE.match(value.strip())
    if match is None:
        raise ValueError(
            "literal secrets are not allowed; use ${ENV_VAR} or ${file:/run/secrets/name}"
        )
    context = info.context if isinstance(info.context, Mapping) else {}
    if match.group("env"):
        env: Mapping[str, str] = context.get("env", os.environ)
        name = match.group("env")
        if name not in env or not env[name]:
            raise ValueError(f"environment variable {name} is not set or empty")
        return SecretStr(env[name])
    path = Path(match.group("file"))
    try:
        text = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ValueError(f"cannot read secret file {path}: {exc.strerror}") from None
    if not text:
        raise ValueError(f"secret file {path} is empty")
    return SecretStr(text)


def mask(secret: SecretStr) -> str:
    """A printable hint of a secret: its length only."""
    return f"****({len(secret.get_secret_value())} chars)"
