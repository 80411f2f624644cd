"""Signed, expiring links to archived files: `/files/{task_id}/{name}?expires=…&sig=…`.

Like Ark's own result URLs they need no Authorization header (whoever holds the link may
download until it expires), so Ark SDK users and plain download loops keep working. The
signature is HMAC-SHA256 over the path and the expiry; a changed byte or a past expiry is
refused (403).
"""

from __future__ import annotations

import hashlib
import hmac
import math
from urllib.parse import quote

# Ark's content field -> the archived file's name.
FILE_NAMES = {"video_url": "video.mp4", "last_frame_url": "last_frame.png"}
EXPIRY_STEP = 3600  # expiries are rounded up to the hour, so repeated GETs hand out one link


class LinkSigner:
    def __init__(self, secret: bytes, *, ttl: float) -> None:
        self._secret = secret
        self.ttl = ttl

    def _sign(self, task_id: str, name: str, expires: int) -> str:
        message = f"{task_id}/{name}\n{expires}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()

    def link(self, base: str, task_id: str, name: str, *, now: float) -> str:
        expires = math.ceil((now + self.ttl) / EXPIRY_STEP) * EXPIRY_STEP
        return (f"{base}/files/{quote(task_id, safe='')}/{name}"
                f"?expires={expires}&sig={self._sign(task_id, name, expires)}")

    def valid(self, task_id: str, name: str, expires: str | None, sig: str | None, *,
              now: float) -> bool:
        if expires is None or sig is None or not expires.isdigit() or len(expires) > 12:
            return False
        expected = self._sign(task_id, name, int(expires))
        return hmac.compare_digest(expected, sig) and int(expires) > now
