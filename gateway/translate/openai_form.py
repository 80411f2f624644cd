"""Multipart text parts as the OpenAI SDKs flatten them, back to nested values; image sniffing.

Decisions where the SDKs leave room:

- `a[b]` nests a dict, `a[]` appends to a list, `a[][b]` fills the list's last dict and starts a
  new one when that dict already holds `b` (how `[{"id": 1}, {"id": 2}]` round-trips).
- A repeated plain key (or `a[b]`) keeps the last value; only `[]` keys accumulate.
- A later value of another shape replaces the earlier one (`a=1` then `a[b]=2` gives `{"b": "2"}`).
- A key that is not `name` followed by `[...]` segments (`a[b`, `[x]`, `a]`) is taken literally.
- `a[0]` stays a dict keyed `"0"`: the SDKs never send indices; consumers may read such dicts as
  lists.
- With `max_depth`, a key whose value would sit deeper than that many nested objects and arrays
  (the form itself is the first) is a 400 `invalid_value`, as the same nesting in JSON is.
- Image formats are Ark's (jpeg png webp bmp tiff gif heic heif); AVIF, SVG and the rest are not
  images for this purpose and sniff as None.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from gateway.errors import GatewayError

_KEY = re.compile(r"([^\[\]]+)((?:\[[^\[\]]*\])*)")
_SEGMENT = re.compile(r"\[([^\[\]]*)\]")
_SHOWN_MAX = 40


def unflatten_form(
    items: Iterable[tuple[str, str]], *, max_depth: int | None = None
) -> dict[str, Any]:
    """Nested fields from `(name, value)` text parts in wire order."""
    root: dict[str, Any] = {}
    for key, value in items:
        match = _KEY.fullmatch(key)
        if match is None:
            root[key] = value
            continue
        path = _SEGMENT.findall(match[2])
        if max_depth is not None and 1 + len(path) > max_depth:
            name = match[1][:_SHOWN_MAX]
            raise GatewayError(400, "invalid_value", f"The form field '{name}[…]' nests "
                               f"{len(path)} levels deep; at most {max_depth - 1} are allowed.",
                               param=name)
        _put(root, match[1], path, value)
    return root


def _put(node: dict[str, Any], key: str, path: list[str], value: str) -> None:
    if not path:
        node[key] = value
    elif path[0] == "":
        items = node.get(key)
        if not isinstance(items, list):
            items = node[key] = []
        _append(items, path[1:], value)
    else:
        child = node.get(key)
        if not isinstance(child, dict):
            child = node[key] = {}
        _put(child, path[0], path[1:], value)


def _append(items: list[Any], path: list[str], value: str) -> None:
    if not path:
        items.append(value)
    elif path[0] == "":
        inner: list[Any] = []
        items.append(inner)
        _append(inner, path[1:], value)
    else:
        last = items[-1] if items else None
        # A key the last element already holds means the sender moved on to the next element.
        if not isinstance(last, dict) or _holds(last, path):
            last = {}
            items.append(last)
        _put(last, path[0], path[1:], value)


def _holds(node: dict[str, Any], path: list[str]) -> bool:
    value: Any = node
    for segment in path:
        if segment == "":
            return False  # a list further down keeps appending within the same element
        if not isinstance(value, dict) or segment not in value:
            return False
        value = value[segment]
    return True


_HEIC_BRANDS = frozenset({b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs"})
_HEIF_BRANDS = frozenset({b"mif1", b"msf1", b"heif"})
_AVIF_BRANDS = frozenset({b"avif", b"avis"})
_BMP_HEADER_SIZES = frozenset({12, 40, 52, 56, 64, 108, 124})


def sniff_image_mime(data: bytes) -> str | None:
    """The image MIME type Ark accepts for these bytes (from their magic number), or None."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return "image/tiff"
    # "BM" alone is too common a prefix; also require a known DIB header size.
    if data[:2] == b"BM" and int.from_bytes(data[14:18], "little") in _BMP_HEADER_SIZES:
        return "image/bmp"
    if data[4:8] == b"ftyp":
        return _heif_mime(data)
    return None


def _heif_mime(data: bytes) -> str | None:
    box_size = int.from_bytes(data[:4], "big")
    major = data[8:12]
    compatible = {data[i:i + 4] for i in range(16, min(box_size, len(data), 256) - 3, 4)}
    brands = {major} | compatible
    if major in _HEIC_BRANDS:
        return "image/heic"
    if major not in _HEIF_BRANDS or brands & _AVIF_BRANDS:
        return None  # video (mp42, isom, qt) or AVIF: not an image Ark takes
    return "image/heic" if brands & _HEIC_BRANDS else "image/heif"
