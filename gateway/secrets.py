"""Secret references (`${ENV_VAR}`, `${file:/path}`) and the redacted type they resolve to.

A secret field is one whole reference. A URL field (the store, a proxy) may carry references
anywhere inside it, as in `redis://:${REDIS_PASSWORD}@redis:6379/0`; its password and
password-like query parameters are the secrets to mask and redact.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from pydantic import SecretStr, ValidationInfo

_REFERENCE = re.compile(r"^\$\{(?:file:(?P<file>[^}]+)|(?P<env>[A-Za-z_][A-Za-z0-9_]*))\}$")
_EMBEDDED = re.compile(r"\$\{(?:file:(?P<file>[^}]+)|(?P<env>[A-Za-z_][A-Za-z0-9_]*))\}")
_SECRET_QUERY = re.compile(r"(?i)(?:^|_)(?:password|passwd|secret|token|key)$")
MASK = "****"


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
    return SecretStr(_dereference(match, _env_of(info)))


def resolve_url(value: Any, info: ValidationInfo) -> SecretStr:
    """Resolve every reference inside a URL from config into a SecretStr.

    A password written literally in the URL is refused, as literal secrets are elsewhere. A
    SecretStr passes as is (the demo builds its config from command-line values).
    """
    if isinstance(value, SecretStr):
        return value
    if not isinstance(value, str):
        raise ValueError("must be a URL string")
    literal = _EMBEDDED.sub("", value)
    if _EMBEDDED.fullmatch(value.strip()) is None and url_secrets(literal):
        raise ValueError(
            "literal passwords are not allowed in URLs; write a reference instead, e.g. "
            "redis://:${REDIS_PASSWORD}@host:6379/0 or the whole URL as ${STORE_URL}"
        )
    env = _env_of(info)
    return SecretStr(_EMBEDDED.sub(lambda m: _dereference(m, env), value.strip()))


def url_secrets(url: str) -> list[str]:
    """The secret parts of a URL: its password and password-like query values."""
    try:
        parts = urlsplit(url)
        found = [parts.password] if parts.password else []
    except ValueError:
        return []
    found += [v for k, v in parse_qsl(parts.query) if v and _SECRET_QUERY.search(k)]
    return found


def masked_url(url: str) -> str:
    """A URL fit to print: its password and password-like query values masked."""
    secrets = url_secrets(url)
    if not secrets:
        return url
    parts = urlsplit(url)
    netloc = parts.netloc
    if parts.password:
        userinfo, _, host = netloc.rpartition("@")
        netloc = f"{userinfo.split(':', 1)[0]}:{MASK}@{host}"
    query = "&".join(f"{k}={MASK if _SECRET_QUERY.search(k) else v}"
                     for k, v in parse_qsl(parts.query, keep_blank_values=True))
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def _env_of(info: ValidationInfo) -> Mapping[str, str]:
    context = info.context if isinstance(info.context, Mapping) else {}
    env: Mapping[str, str] = context.get("env", os.environ)
    return env


def _dereference(match: re.Match[str], env: Mapping[str, str]) -> str:
    if match.group("env"):
        name = match.group("env")
        if name not in env or not env[name]:
            raise ValueError(f"environment variable {name} is not set or empty")
        return env[name]
    path = Path(match.group("file"))
    try:
        text = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ValueError(f"cannot read secret file {path}: {exc.strerror}") from None
    if not text:
        raise ValueError(f"secret file {path} is empty")
    return text


def mask(secret: SecretStr) -> str:
    """A printable hint of a secret: its length only."""
    return f"****({len(secret.get_secret_value())} chars)"
