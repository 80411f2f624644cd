"""Output pixel sizes per resolution and ratio (seedance-native.md §5.5) and the token bill."""

from __future__ import annotations

from gateway.seedance import PIXELS, TIERS, billed_tokens, pixel_size

ADAPTIVE_RATIO = "16:9"  # what `adaptive` resolves to for a text-only simulated task

RESOLUTIONS: tuple[str, ...] = TIERS
RATIOS: tuple[str, ...] = (*PIXELS["720p"], "adaptive")


def output_size(family: str, resolution: str, ratio: str) -> tuple[int, int]:
    """Width and height of the video; ``ratio`` must already be resolved (not ``adaptive``)."""
    size = pixel_size(resolution, ratio, family)
    if size is None:
        raise KeyError((resolution, ratio))
    return size


def completion_tokens(width: int, height: int, seconds: int) -> int:
    return billed_tokens(width, height, seconds)
