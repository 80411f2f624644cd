"""The text-only multipart fast path agrees with Starlette's parser, or steps aside."""

from __future__ import annotations

from collections.abc import AsyncGenerator

import httpx
import pytest
from starlette.datastructures import Headers, UploadFile
from starlette.formparsers import MultiPartParser

from gateway.surfaces.form import text_fields


def encode(fields: list[tuple[str, str]],
           files: list[tuple[str, tuple[str, bytes, str]]] | None = None) -> tuple[str, bytes]:
    """Multipart as httpx (so the OpenAI Python SDK) writes it."""
    if files:
        request = httpx.Request("POST", "http://x", data=dict(fields), files=files)
        return request.headers["content-type"], request.read()
    boundary = "d17f0c9b2a6e4f3e8c1d5b7a9e2f4c6d"
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n'.encode()
             + v.encode() + b"\r\n" for k, v in fields]
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    return f"multipart/form-data; boundary={boundary}", body


async def starlette_parse(content_type: str, body: bytes) -> list[tuple[str, str]]:
    async def once() -> AsyncGenerator[bytes, None]:
        yield body

    form = await MultiPartParser(Headers({"content-type": content_type}), once()).parse()
    items = [(k, v) for k, v in form.multi_items() if not isinstance(v, UploadFile)]
    await form.close()
    return items


CASES = [
    [("prompt", "a cat"), ("model", "sora-2"), ("seconds", "8"), ("size", "1280x720")],
    [("prompt", "multi\r\nline\r\n\r\nprompt with -- dashes")],
    [("prompt", "unicode: 猫が走る 🎬"), ("images[]", "https://e/a.png"),
     ("images[]", "https://e/b.png")],
    [("input_reference[image_url]", "data:image/png;base64,AAAA"), ("prompt", "")],
    [("prompt", "x" * 40000)],
]


@pytest.mark.anyio
@pytest.mark.parametrize("fields", CASES)
async def test_fast_path_matches_starlette(fields: list[tuple[str, str]]) -> None:
    content_type, body = encode(fields)
    fast = text_fields(content_type, body)
    assert fast is not None
    assert fast == await starlette_parse(content_type, body) == fields


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("multipart/form-data", b"--b\r\n"),  # no boundary parameter
        ("multipart/form-data; boundary=b", b"garbage"),
        ("multipart/form-data; boundary=b", b"--b\r\nno headers\r\n--b--"),
        ("multipart/form-data; boundary=b",
         b'--b\r\nContent-Disposition: form-data; name="p"\r\n\r\nunterminated'),
        ("multipart/form-data; boundary=b",
         b'--b\r\nContent-Disposition: form-data; name="a\\"b"\r\n\r\nv\r\n--b--\r\n'),
        ("multipart/form-data; boundary=b",
         b'--b\r\nContent-Disposition: form-data; name="p"\r\n\r\n\xff\xfe\r\n--b--\r\n'),
    ],
)
def test_anything_unusual_goes_to_the_full_parser(content_type: str, body: bytes) -> None:
    assert text_fields(content_type, body) is None


def test_file_parts_go_to_the_full_parser() -> None:
    content_type, body = encode([("prompt", "x")],
                                [("input_reference", ("ref.png", b"\x89PNG", "image/png"))])
    assert text_fields(content_type, body) is None
    octets = ("upload", b"bytes", "application/octet-stream")
    content_type, body = encode([("prompt", "x")], [("input_reference", octets)])
    assert text_fields(content_type, body) is None
