"""Pre-signed result URLs in TOS's query-string shape, signed with a per-app HMAC secret."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from datetime import UTC, datetime
from enum import Enum
from urllib.parse import urlencode

ALGORITHM = "TOS4-HMAC-SHA256"
_DATE_FORMAT = "%Y%m%dT%H%M%SZ"


class Signature(Enum):
    VALID = "valid"
    EXPIRED = "expired"
    INVALID = "invalid"


class UrlSigner:
    """Signs ``path`` plus its validity window, so neither can be changed without detection."""

    __slots__ = ("_secret",)

    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def query(self, path: str, *, now: float, ttl: int) -> str:
        date = datetime.fromtimestamp(int(now), UTC).strftime(_DATE_FORMAT)
        return urlencode({
            "X-Tos-Algorithm": ALGORITHM,
            "X-Tos-Expires": str(ttl),
            "X-Tos-Date": date,
            "X-Tos-Signature": self._digest(path, date, str(ttl)),
        })

    def check(self, path: str, query: Mapping[str, str], *, now: float) -> Signature:
        date = query.get("X-Tos-Date", "")
        expires = query.get("X-Tos-Expires", "")
        given = query.get("X-Tos-Signature", "")
        if not hmac.compare_digest(given.encode(), self._digest(path, date, expires).encode()):
            return Signature.INVALID
        try:
            signed_at = datetime.strptime(date, _DATE_FORMAT).replace(tzinfo=UTC).timestamp()
            ttl = int(expires)
        except ValueError:
            return Signature.INVALID
        return Signature.VALID if now < signed_at + ttl else Signature.EXPIRED

    def _digest(self, path: str, date: str, expires: str) -> str:
        message = f"{ALGORITHM}\n{path}\n{date}\n{expires}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()
