"""Facts about Seedance tasks that every part of the gateway shares, each defined once.

Task statuses, the frame rate, the token bill and Ark's output sizes per resolution and ratio
(seedance-native.md §5.5). The stores' SQL and Lua are built from these constants.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType

# A task is queued, then running, then ends in one of the finished statuses and stays there.
UNFINISHED_STATUSES: tuple[str, ...] = ("queued", "running")
FINISHED_STATUSES: frozenset[str] = frozenset({"succeeded", "failed", "expired", "cancelled"})
FRAMES_PER_SECOND = 24
# A succeeded task's result URLs are pre-signed, valid 24 h from the answer that carried them
# (seedance-native.md §3); every GET or list answer signs them anew.
RESULT_URL_VALIDITY = 24 * 3600


def regresses(current: str, new: str) -> bool:
    """Whether writing `new` over `current` would take a finished task back to unfinished:
    with several pollers an older answer may land after a newer one, and is dropped."""
    return current in FINISHED_STATUSES and new in UNFINISHED_STATUSES


def billed_tokens(width: int, height: int, seconds: int) -> int:
    """Ark's bill for a video: W×H×(24·s+1)/1024 (observed exactly: 720p 16:9 5 s → 108900)."""
    return width * height * (FRAMES_PER_SECOND * seconds + 1) // 1024


def sql_list(statuses: Iterable[str]) -> str:
    """`('a', 'b')`: a status set as an SQL literal (the names are constants, never input)."""
    return "(" + ", ".join(f"'{s}'" for s in sorted(statuses)) + ")"


def lua_set(statuses: Iterable[str]) -> str:
    """`{['a'] = true, …}`: a status set as a Lua table literal."""
    return "{" + ", ".join(f"['{s}'] = true" for s in sorted(statuses)) + "}"

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
