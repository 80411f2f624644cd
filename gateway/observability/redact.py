"""RedactSecrets: the one structlog processor that keeps secrets out of every log line.

It runs last before the renderer, on the gateway's own events and on uvicorn's and aiohttp's
stdlib records alike, and rewrites every string it finds (nested values and exception text
included):

- every configured secret value (client, upstream, admin keys) → ``[REDACTED]``;
- ``whsec_…`` webhook secrets (stored keys' ones are not configured values);
- ``Bearer <token>`` and the values of keys named like authorization / api_key / secret;
- URL query strings (signed result URLs carry their signature there) → ``?[REDACTED]``;
- URL passwords (`redis://user:pw@…`, a proxy's credentials) → ``user:[REDACTED]@``;
- ``data:`` URIs → ``data:<mime>;base64,[<n> bytes sha256:<8 hex>]`` so they stay correlatable.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, MutableMapping
from typing import Any

REDACTED = "[REDACTED]"
# Whole key names, or their last `_`/`-` part: `access_token` yes, `total_tokens` no.
SENSITIVE_KEYS = re.compile(
    r"(?:^|[_-])(?:authorization|api[_-]?key|secret|password|passwd|token|cookie)$", re.I)
_BEARER = re.compile(r"(?i)\b(bearer)\s+[^\s\"',;]+")
_QUERY = re.compile(r"(https?://[^\s?#\"'<>]+)\?[^\s#\"'<>]+")
_USERINFO = re.compile(r"(\b[a-z][a-z0-9+.-]*://[^\s/:@\"']*):[^\s/@\"']+@", re.I)
_WEBHOOK_SECRET = re.compile(r"whsec_[A-Za-z0-9+/=]+")  # stored keys' webhook secrets
_DATA_URI = re.compile(r"data:([\w.+-]+/[\w.+-]+);base64,([A-Za-z0-9+/=_-]{8,})")
_MIN_SECRET = 4  # shorter "secrets" would shred ordinary words


def _data_uri(match: re.Match[str]) -> str:
    payload = match.group(2)
    digest = hashlib.sha256(payload.encode()).hexdigest()[:8]
    return f"data:{match.group(1)};base64,[{len(payload)} chars sha256:{digest}]"


class RedactSecrets:
    """structlog processor: ``RedactSecrets(secrets=[...])(logger, name, event_dict)``."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        values = sorted({s for s in secrets if len(s) >= _MIN_SECRET}, key=len, reverse=True)
        self._secrets = re.compile("|".join(map(re.escape, values))) if values else None
        self._sensitive: dict[str, bool] = {}  # key name → is it sensitive (keys repeat a lot)

    def __call__(
        self, logger: Any, name: str, event_dict: MutableMapping[str, Any]
    ) -> dict[str, Any]:
        return {key: self._value(key, value) for key, value in event_dict.items()}

    def _is_sensitive(self, key: str) -> bool:
        known = self._sensitive.get(key)
        if known is None:
            known = SENSITIVE_KEYS.search(key) is not None
            if len(self._sensitive) < 4096:
                self._sensitive[key] = known
        return known

    def redact(self, text: str) -> str:
        if self._secrets is not None:
            text = self._secrets.sub(REDACTED, text)
        if "whsec_" in text:
            text = _WEBHOOK_SECRET.sub(REDACTED, text)
        if "earer" in text:
            text = _BEARER.sub(rf"\1 {REDACTED}", text)
        if "data:" in text:
            text = _DATA_URI.sub(_data_uri, text)
        if "?" in text:
            text = _QUERY.sub(rf"\1?{REDACTED}", text)
        if "@" in text:
            text = _USERINFO.sub(rf"\1:{REDACTED}@", text)
        return text

    def _value(self, key: object, value: Any) -> Any:
        if isinstance(key, str) and value not in (None, "") and self._is_sensitive(key):
            return REDACTED
        if isinstance(value, str):
            return self.redact(value)
        if isinstance(value, dict):
            return {k: self._value(k, v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self._value(None, v) for v in value]
        if isinstance(value, int | float | bool) or value is None:
            return value
        return self.redact(repr(value))  # objects and exceptions: their repr, redacted
