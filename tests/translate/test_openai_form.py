"""Multipart bracket keys back to nested values, and image sniffing from magic bytes."""

from __future__ import annotations

import struct
import zlib
from typing import Any

import pytest
from openai._qs import Querystring

from gateway.translate.openai_form import sniff_image_mime, unflatten_form


def png_1x1() -> bytes:
    """A real 1×1 RGBA PNG."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 6, 0, 0, 0)
    pixels = zlib.compress(b"\x00\xff\x00\x00\xff")
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels)
            + chunk(b"IEND", b""))


JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00\xff\xd9"
WEBP = b"RIFF\x1a\x00\x00\x00WEBPVP8L\x0d\x00\x00\x00\x2f\x00\x00\x00\x10\x07\x10\x11\x11\x88\x88"
BMP = (b"BM" + struct.pack("<IHHI", 58, 0, 0, 54) + struct.pack("<IiiHH", 40, 1, 1, 1, 24)
       + bytes(28))


def ftyp(major: bytes, *compatible: bytes) -> bytes:
    brands = major + b"\x00\x00\x00\x00" + b"".join(compatible)
    return struct.pack(">I", 8 + len(brands)) + b"ftyp" + brands + b"\x00\x00\x00\x08meta"


@pytest.mark.parametrize(("items", "expected"), [
    ([], {}),
    ([("prompt", "a cat")], {"prompt": "a cat"}),
    ([("prompt", "")], {"prompt": ""}),
    ([("model", "sora-2"), ("model", "sora-2-pro")], {"model": "sora-2-pro"}),
    ([("input_reference[image_url]", "https://x/a.png")],
     {"input_reference": {"image_url": "https://x/a.png"}}),
    ([("input_reference[file_id]", "file-1")], {"input_reference": {"file_id": "file-1"}}),
    ([("metadata[seed]", "7"), ("metadata[generate_audio]", "false")],
     {"metadata": {"seed": "7", "generate_audio": "false"}}),
    ([("metadata[seed]", "7"), ("metadata[seed]", "8")], {"metadata": {"seed": "8"}}),
    ([("a[b][c]", "1"), ("a[b][d]", "2"), ("a[e]", "3")],
     {"a": {"b": {"c": "1", "d": "2"}, "e": "3"}}),
    ([("images[]", "u1")], {"images": ["u1"]}),
    ([("images[]", "u1"), ("images[]", "u2"), ("images[]", "u1")],
     {"images": ["u1", "u2", "u1"]}),
    ([("images[]", "u1"), ("prompt", "p"), ("images[]", "u2")],
     {"images": ["u1", "u2"], "prompt": "p"}),
    ([("characters[][id]", "char_1")], {"characters": [{"id": "char_1"}]}),
    ([("characters[][id]", "char_1"), ("characters[][id]", "char_2")],
     {"characters": [{"id": "char_1"}, {"id": "char_2"}]}),
    ([("images[][url]", "u1"), ("images[][role]", "r"), ("images[][url]", "u2")],
     {"images": [{"url": "u1", "role": "r"}, {"url": "u2"}]}),
    ([("images[][image_url][url]", "u1"), ("images[][image_url][url]", "u2")],
     {"images": [{"image_url": {"url": "u1"}}, {"image_url": {"url": "u2"}}]}),
    ([("tools[][type]", "web_search")], {"tools": [{"type": "web_search"}]}),
    ([("extra_body[tools][][type]", "web_search"), ("extra_body[watermark]", "true")],
     {"extra_body": {"tools": [{"type": "web_search"}], "watermark": "true"}}),
    ([("a[][b][]", "1"), ("a[][b][]", "2")], {"a": [{"b": ["1", "2"]}]}),
    ([("a[][]", "1"), ("a[][]", "2")], {"a": [["1"], ["2"]]}),
    ([("a[0]", "x"), ("a[1]", "y")], {"a": {"0": "x", "1": "y"}}),
    # Shape changes: the later value replaces the earlier one.
    ([("a", "1"), ("a[b]", "2")], {"a": {"b": "2"}}),
    ([("a[b]", "2"), ("a", "1")], {"a": "1"}),
    ([("a", "1"), ("a[]", "2")], {"a": ["2"]}),
    ([("a[]", "1"), ("a", "2")], {"a": "2"}),
    # Keys that are not name[...]... are literal.
    ([("a[b", "1")], {"a[b": "1"}),
    ([("a]", "1")], {"a]": "1"}),
    ([("[x]", "1")], {"[x]": "1"}),
    ([("a[b]c", "1")], {"a[b]c": "1"}),
    ([("a[b[c]]", "1")], {"a[b[c]]": "1"}),
    ([("", "1")], {"": "1"}),
    ([("héllo[wörld]", "1")], {"héllo": {"wörld": "1"}}),
])
def test_unflatten_form(items: list[tuple[str, str]], expected: dict[str, Any]) -> None:
    assert unflatten_form(items) == expected


def test_unflatten_accepts_any_iterable() -> None:
    assert unflatten_form(iter([("a[]", "1")])) == {"a": ["1"]}


def _as_sent(value: Any) -> Any:
    """What a value looks like after a trip through multipart: every leaf a string."""
    if isinstance(value, dict):
        return {key: _as_sent(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_as_sent(item) for item in value]
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@pytest.mark.parametrize("body", [
    {"prompt": "a cat", "model": "sora-2", "seconds": "8", "size": "1280x720"},
    {"prompt": "p", "input_reference": {"image_url": "data:image/png;base64,AAAA"}},
    {"prompt": "p", "input_reference": {"file_id": "file-abc"}},
    {"prompt": "p", "characters": [{"id": "char_1"}, {"id": "char_2"}]},
    {"prompt": "p", "images": ["u1", "u2", "u3"], "videos": ["v1"], "mode": "r2v"},
    {"prompt": "p", "images": [{"url": "u1"}, {"url": "u2"}]},
    {"prompt": "p", "tools": [{"type": "web_search"}], "seed": 42, "watermark": True},
    {"prompt": "p", "metadata": {"seed": "7", "generate_audio": False}},
    {"prompt": "p", "extra_body": {"nested": {"deep": {"list": ["a", "b"]}}}},
    {"prompt": "p", "characters": [{"id": "c1", "name": "A"}, {"id": "c2", "name": "B"}]},
])
def test_round_trip_through_the_python_sdk_serialiser(body: dict[str, Any]) -> None:
    # The SDK's own multipart serialisation: querystring "brackets" format.
    items = Querystring().stringify_items(body, array_format="brackets")
    assert unflatten_form(items) == _as_sent(body)


@pytest.mark.parametrize(("data", "mime"), [
    (png_1x1(), "image/png"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (JPEG, "image/jpeg"),
    (b"\xff\xd8\xff\xe1\x00\x10Exif", "image/jpeg"),
    (b"\xff\xd8\xff\xdb\x00\x43", "image/jpeg"),
    (WEBP, "image/webp"),
    (b"GIF87a\x01\x00\x01\x00", "image/gif"),
    (b"GIF89a\x01\x00\x01\x00", "image/gif"),
    (b"II*\x00\x08\x00\x00\x00", "image/tiff"),
    (b"MM\x00*\x00\x00\x00\x08", "image/tiff"),
    (BMP, "image/bmp"),
    (ftyp(b"heic", b"mif1", b"heic"), "image/heic"),
    (ftyp(b"heix", b"mif1"), "image/heic"),
    (ftyp(b"mif1", b"heic"), "image/heic"),
    (ftyp(b"mif1", b"miaf"), "image/heif"),
    (ftyp(b"heif"), "image/heif"),
    (ftyp(b"msf1", b"hevc"), "image/heic"),
])
def test_sniff_image_mime(data: bytes, mime: str) -> None:
    assert sniff_image_mime(data) == mime


@pytest.mark.parametrize("data", [
    b"",
    b"\x89PNG",
    b"\xff\xd8",
    b"hello world",
    b"%PDF-1.7\n",
    b"<svg xmlns='http://www.w3.org/2000/svg'/>",
    b"RIFF\x24\x00\x00\x00WAVEfmt ",
    b"RIFF\x24\x00\x00\x00AVI LIST",
    b"GIF88a",
    b"BM",
    b"BMW is a car, not a bitmap",
    b"PK\x03\x04",
    b"\x1aE\xdf\xa3",  # webm/matroska
    ftyp(b"avif", b"mif1", b"miaf"),
    ftyp(b"mif1", b"avif"),
    ftyp(b"mp42", b"isom"),
    ftyp(b"isom", b"iso2", b"avc1", b"mp41"),
    ftyp(b"qt  "),
    b"ID3\x03\x00",
    b"\x00\x00\x00\x00",
])
def test_sniff_rejects_what_is_not_an_image_ark_takes(data: bytes) -> None:
    assert sniff_image_mime(data) is None
