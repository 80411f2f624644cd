"""Ark's output pixel sizes, and the mapping from an OpenAI `size` to a resolution and ratio.

Decisions where translation.md §4 is silent:

- A size is `<width>x<height>` (an upper-case `X` and surrounding blanks are tolerated), each side
  1…8192 px and the long side at most 4× the short one; anything else is a 400 `invalid_value`.
- Ratio distance is |ln(aspect / ratio)| against the nominal ratio (16/9, not 864/496). An exact
  tie (4:3 between 1:1 and 16:9) goes to the candidate with the request's orientation.
- Tier distance is |ln(pixels / tier pixels)| using the tier's pixel size at the chosen ratio;
  a tie goes to the lower (cheaper, faster) tier.
- `strict` still snaps a size that is not in the exact table to the nearest Ark ratio and tier
  (the spec's table row applies the policy only to what the model lacks). It answers 400 when the
  nearest ratio or the nearest tier is one the model does not offer, i.e. it never substitutes.
- Only 2.5's 480p 16:9 differs from the 2.0 table (854×480); 9:16 stays 496×864, as documented.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Literal

from gateway.catalog import ModelSpec
from gateway.errors import GatewayError
from gateway.seedance import TIERS, pixel_size

SizePolicy = Literal["nearest", "strict"]

MAX_SIDE = 8192
MAX_ASPECT = 4.0

# Nominal ratios; `adaptive` is never a mapping target (it is Ark's choice, not a size).
RATIO_VALUES: Mapping[str, float] = MappingProxyType({
    "16:9": 16 / 9, "4:3": 4 / 3, "1:1": 1.0, "3:4": 3 / 4, "9:16": 9 / 16, "21:9": 21 / 9,
})

# translation.md §4, the exact table: sizes OpenAI clients send, mapped without any rounding.
EXACT_SIZES: Mapping[str, tuple[str, str]] = MappingProxyType({
    "1280x720": ("720p", "16:9"), "720x1280": ("720p", "9:16"),
    "1920x1080": ("1080p", "16:9"), "1080x1920": ("1080p", "9:16"),
    "1792x1024": ("1080p", "16:9"), "1024x1792": ("1080p", "9:16"),
    "854x480": ("480p", "16:9"), "864x496": ("480p", "16:9"),
    "480x854": ("480p", "9:16"), "496x864": ("480p", "9:16"),
    "640x640": ("480p", "1:1"),
    "960x960": ("720p", "1:1"), "720x720": ("720p", "1:1"), "1024x1024": ("720p", "1:1"),
    "1440x1440": ("1080p", "1:1"), "1080x1080": ("1080p", "1:1"),
    "1112x834": ("720p", "4:3"), "834x1112": ("720p", "3:4"),
    "1664x1248": ("1080p", "4:3"), "1248x1664": ("1080p", "3:4"),
    "1470x630": ("720p", "21:9"), "2206x946": ("1080p", "21:9"),
})

_SIZE = re.compile(r"\s*([0-9]{1,6})\s*[xX]\s*([0-9]{1,6})\s*")
_SHOWN_MAX = 40  # a pasted data URL must not end up whole in an error message
_TIE = 9  # decimals kept when comparing log distances, so float noise cannot break a tie


def pixel_family(model_id: str) -> str:
    """Which pixel table a model id renders with: ``"2.5"`` for Seedance 2.5, else ``"2.0"``."""
    return "2.5" if re.search(r"seedance-2[-.]5(?![0-9])", model_id) else "2.0"


def output_size(resolution: str, ratio: str, family: str) -> str | None:
    """Ark's output size (``"1280x720"``), or None for `adaptive` or an unknown combination."""
    pixels = pixel_size(resolution, ratio, family)
    return f"{pixels[0]}x{pixels[1]}" if pixels else None


def parse_size(size: str) -> tuple[int, int]:
    """Width and height of a `WIDTHxHEIGHT` string, or a 400 naming `size`."""
    match = _SIZE.fullmatch(size)
    if match is None:
        raise _size_error(f"expected WIDTHxHEIGHT such as '1280x720', got '{_shown(size)}'")
    width, height = int(match[1]), int(match[2])
    if not (0 < width <= MAX_SIDE and 0 < height <= MAX_SIDE):
        raise _size_error(f"each side must be between 1 and {MAX_SIDE} pixels, got '{size}'")
    if max(width, height) > MAX_ASPECT * min(width, height):
        raise _size_error(f"'{size}' is wider or taller than {MAX_ASPECT:g}:1")
    return width, height


def map_size(size: str, spec: ModelSpec, policy: SizePolicy) -> tuple[str, str]:
    """The (resolution, ratio) a `size` asks of ``spec``, per translation.md §4."""
    width, height = parse_size(size)
    exact = EXACT_SIZES.get(f"{width}x{height}")
    offered = [ratio for ratio in spec.ratios if ratio in RATIO_VALUES]
    if not offered:
        raise _size_error(f"model '{spec.name}' has no fixed aspect ratio; omit `size`")
    if exact is not None and exact[1] in offered:
        resolution, ratio = exact
    else:
        wanted = exact[1] if exact else _nearest_ratio(width, height, tuple(RATIO_VALUES))
        if wanted not in offered and policy == "strict":
            raise _size_error(
                f"'{size}' is a {wanted} size and model '{spec.name}' offers only "
                f"{', '.join(offered)}")
        ratio = wanted if wanted in offered else _nearest_ratio(width, height, offered)
        resolution = _nearest_tier(width * height, ratio, spec.family, TIERS)
    if resolution in spec.resolutions:
        return resolution, ratio
    if policy == "strict":
        raise _size_error(
            f"'{size}' is a {resolution} size and model '{spec.name}' renders only "
            f"{', '.join(spec.resolutions)}")
    supported = tuple(tier for tier in TIERS if tier in spec.resolutions)
    if not supported:
        raise _size_error(f"model '{spec.name}' has no known output resolution")
    return _nearest_tier(width * height, ratio, spec.family, supported), ratio


def _nearest_ratio(width: int, height: int, candidates: Sequence[str]) -> str:
    aspect = math.log(width / height)

    def distance(ratio: str) -> tuple[float, bool]:
        value = math.log(RATIO_VALUES[ratio])
        # Same orientation first on a tie, so 4:3 → 16:9 and 3:4 → 9:16, never a flip.
        return round(abs(aspect - value), _TIE), aspect * value < 0

    return min(candidates, key=distance)


def _nearest_tier(pixels: int, ratio: str, family: str, tiers: Sequence[str]) -> str:
    def distance(tier: str) -> float:
        size = pixel_size(tier, ratio, family)
        assert size is not None  # every tier in the table covers every fixed ratio
        return round(abs(math.log(pixels / (size[0] * size[1]))), _TIE)

    return min(tiers, key=distance)  # min keeps the first (lowest) tier on a tie




def _shown(value: str) -> str:
    return value if len(value) <= _SHOWN_MAX else value[:_SHOWN_MAX] + "…"


def _size_error(detail: str) -> GatewayError:
    return GatewayError(400, "invalid_value", f"Invalid value for 'size': {detail}.", param="size")
