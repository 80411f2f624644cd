"""What the bench sends: the native Ark task requests and the SDK-shaped OpenAI create."""

from __future__ import annotations

import json
import secrets
from collections.abc import Sequence

TASKS_PATH = "/api/v3/contents/generations/tasks"
MODEL = "doubao-seedance-2-0-260128"
CREATE_BODY = json.dumps({
    "model": MODEL, "content": [{"type": "text", "text": "a red fox running through snow"}],
}, separators=(",", ":")).encode()
# The simulator's prompt marker for a task that never ends: created while its `delay` is 0, it is
# "running" from the start and stays so (the poll scenario polls such tasks).
RUNNING_CREATE_BODY = json.dumps({
    "model": MODEL,
    "content": [{"type": "text", "text": "[sim:never] a red fox running through snow"}],
}, separators=(",", ":")).encode()

OPENAI_PATH = "/v1/videos"
OPENAI_ALIAS = "sora-2"
OPENAI_ALIAS_TARGET = "doubao-seedance-2-0-fast-260128"
# The text parts of `client.videos.create(prompt=..., model="sora-2", seconds="8",
# size="1280x720")`, in the order the SDK sends them; no file part.
OPENAI_FIELDS: tuple[tuple[str, str], ...] = (
    ("prompt", "a red fox running through snow"), ("model", OPENAI_ALIAS), ("seconds", "8"),
    ("size", "1280x720"),
)
# The other headers openai-python 3.54.0 sent with that create, captured once against a local
# socket (Host, Authorization, Content-Type and Content-Length are added by http_request).
SDK_HEADERS: tuple[tuple[str, str], ...] = (
    ("Accept-Encoding", "gzip, deflate"), ("Connection", "keep-alive"),
    ("accept", "application/json"), ("user-agent", "OpenAI/Python 3.54.0"),
    ("x-stainless-lang", "python"), ("x-stainless-package-version", "3.54.0"),
    ("x-stainless-os", "Linux"), ("x-stainless-arch", "x64"), ("x-stainless-runtime", "CPython"),
    ("x-stainless-runtime-version", "3.11.7"), ("x-stainless-async", "false"),
    ("x-stainless-retry-count", "0"), ("x-stainless-read-timeout", "600"),
)


def multipart_body(fields: Sequence[tuple[str, str]], boundary: str) -> tuple[bytes, str]:
    """Text parts exactly as openai-python (httpx) frames them: a Content-Disposition header
    only, CRLF line ends, the closing delimiter followed by CRLF. Returns (body, content type)."""
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
             for name, value in fields]
    body = ("".join(parts) + f"--{boundary}--\r\n").encode()
    return body, f"multipart/form-data; boundary={boundary}"


# Built once with a random 32-hex-digit boundary, like the SDK's, and reused.
OPENAI_BODY, OPENAI_CONTENT_TYPE = multipart_body(OPENAI_FIELDS, secrets.token_hex(16))
