"""Output pixel sizes per resolution and ratio (seedance-native.md §5.5) and the token bill."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

FRAMES_PER_SECOND = 24
ADAPTIVE_RATIO = "16:9"  # what `adaptive` resolves to for a text-only simulated task

_SIZES: Mapping[str, Mapping[str, tuple[int, int]]] = MappingProxyType({
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

RESOLUTIONS: tuple[str, ...] = tuple(_SIZES)
RATIOS: tuple[str, ...] = (*_SIZES["720p"], "adaptive")


def output_size(family: str, resolution: str, ratio: str) -> tuple[int, int]:
    """Width and height of the video; ``ratio`` must already be resolved (not ``adaptive``)."""
    if family == "2.5" and resolution == "480p" and ratio == "16:9":
        return (854, 480)  # 2.5 uses true 480p for 16:9, unlike the 2.0 table
    return _SIZES[resolution][ratio]


def completion_tokens(width: int, height: int, seconds: int) -> int:
    # Observed Ark bills match W×H×(24·s+1)/1024 exactly (720p 16:9 5 s → 108900).
    return width * height * (FRAMES_PER_SECOND * seconds + 1) // 1024
