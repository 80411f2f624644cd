"""Ark's output video sizes per resolution and ratio (seedance-native.md §5.5)."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

# seedance-native.md §5.5: the 2.0 family's output size per resolution and ratio.
PIXELS: Mapping[str, Mapping[str, tuple[int, int]]] = MappingProxyType({
    "480p": MappingProxyType({
        "16:9": (864, 496), "4:3": (752, 560), "1:1": (640, 640),
        "3:4": (560, 752), "9:16": (496, 864), "21:9": (992, 432),
    }),
    "720p": MappingProxyType({
        "16:9": (1280, 720), "4:3": (1112, 834), "1:1": (960, 960),
        "3:4": (834, 1112), "9:16": (720, 1280), "21:9": (1470, 630),
    }),
    "1080p": MappingProxyType({
        "16:9": (1920, 1080), "4:3": (1664, 1248), "1:1": (1440, 1440),
        "3:4": (1248, 1664), "9:16": (1080, 1920), "21:9": (2206, 946),
    }),
    "4k": MappingProxyType({
        "16:9": (3840, 2160), "4:3": (3326, 2494), "1:1": (2880, 2880),
        "3:4": (2494, 3326), "9:16": (2160, 3840), "21:9": (4398, 1886),
    }),
})
TIERS: tuple[str, ...] = tuple(PIXELS)
FAMILY_PIXELS: Mapping[str, Mapping[tuple[str, str], tuple[int, int]]] = MappingProxyType({
    "2.5": MappingProxyType({("480p", "16:9"): (854, 480)}),
})


def pixel_size(resolution: str, ratio: str, family: str) -> tuple[int, int] | None:
    """Width and height Ark renders, or None for `adaptive` or an unknown combination."""
    override = FAMILY_PIXELS.get(family, {}).get((resolution, ratio))
    return override or PIXELS.get(resolution, {}).get(ratio)
