"""OpenAI `size` → Ark resolution + ratio, and Ark's output pixel table."""

from __future__ import annotations

import pytest

from gateway.catalog import OPENAI_ALIASES, RESELLER_ALIASES, Catalogue, ModelSpec, preset_models
from gateway.errors import GatewayError
from gateway.translate.openai_sizes import map_size, output_size, parse_size, pixel_family

CATALOGUE = Catalogue([*preset_models("volcengine", "ark")], {**OPENAI_ALIASES, **RESELLER_ALIASES})
RESELLER = Catalogue(preset_models("wisgate", "w"), {})


STANDARD = "doubao-seedance-2-0-260128"
FAST = "doubao-seedance-2-0-fast-260128"
MINI = "doubao-seedance-2-0-mini-260615"
V25 = "doubao-seedance-2-5-260628"
RESELLER_STANDARD = "doubao-seedance-2.0"  # through RESELLER: 16:9 9:16 1:1, no 4k
RESELLER_FAST = "doubao-seedance-2-fast"


def spec(name: str) -> ModelSpec:
    """The model as its own upstream serves it (reseller names with the reseller's limits)."""
    found = (RESELLER if name in (RESELLER_STANDARD, RESELLER_FAST) else CATALOGUE).resolve(name)
    assert found is not None, name
    return found


# translation.md §4, every row of the exact table in both orientations.
EXACT_TABLE = [
    ("1280x720", "720p", "16:9"),
    ("720x1280", "720p", "9:16"),
    ("1920x1080", "1080p", "16:9"),
    ("1080x1920", "1080p", "9:16"),
    ("1792x1024", "1080p", "16:9"),
    ("1024x1792", "1080p", "9:16"),
    ("854x480", "480p", "16:9"),
    ("864x496", "480p", "16:9"),
    ("480x854", "480p", "9:16"),
    ("496x864", "480p", "9:16"),
    ("640x640", "480p", "1:1"),
    ("960x960", "720p", "1:1"),
    ("720x720", "720p", "1:1"),
    ("1024x1024", "720p", "1:1"),
    ("1440x1440", "1080p", "1:1"),
    ("1080x1080", "1080p", "1:1"),
    ("1112x834", "720p", "4:3"),
    ("834x1112", "720p", "3:4"),
    ("1664x1248", "1080p", "4:3"),
    ("1248x1664", "1080p", "3:4"),
    ("1470x630", "720p", "21:9"),
    ("2206x946", "1080p", "21:9"),
]


@pytest.mark.parametrize("policy", ["nearest", "strict"])
@pytest.mark.parametrize(("size", "resolution", "ratio"), EXACT_TABLE)
def test_exact_table_on_the_standard_model(
    size: str, resolution: str, ratio: str, policy: str
) -> None:
    assert map_size(size, spec(STANDARD), policy) == (resolution, ratio)  # type: ignore[arg-type]


@pytest.mark.parametrize(("size", "resolution", "ratio"), EXACT_TABLE)
def test_exact_table_on_2_5(size: str, resolution: str, ratio: str) -> None:
    assert map_size(size, spec(V25), "strict") == (resolution, ratio)


@pytest.mark.parametrize(("name", "size", "expected"), [
    # Tiers the fast/mini models have pass through untouched.
    (FAST, "1280x720", ("720p", "16:9")),
    (FAST, "720x1280", ("720p", "9:16")),
    (FAST, "854x480", ("480p", "16:9")),
    (MINI, "1112x834", ("720p", "4:3")),
    # 1080p sizes on a 480p/720p model → the nearest tier it has.
    (FAST, "1920x1080", ("720p", "16:9")),
    (FAST, "1080x1920", ("720p", "9:16")),
    (FAST, "1792x1024", ("720p", "16:9")),
    (FAST, "1024x1792", ("720p", "9:16")),
    (MINI, "1440x1440", ("720p", "1:1")),
    (MINI, "2206x946", ("720p", "21:9")),
    (FAST, "3840x2160", ("720p", "16:9")),
    (FAST, "2160x3840", ("720p", "9:16")),
    # Sizes outside the table: nearest ratio by log distance, nearest pixel-count tier.
    (FAST, "1000x1000", ("720p", "1:1")),
    (STANDARD, "1000x1000", ("720p", "1:1")),
    (STANDARD, "3840x2160", ("4k", "16:9")),
    (STANDARD, "2160x3840", ("4k", "9:16")),
    (STANDARD, "4096x4096", ("4k", "1:1")),
    (STANDARD, "1000x600", ("480p", "16:9")),
    (STANDARD, "1200x900", ("720p", "4:3")),
    (STANDARD, "2560x1080", ("1080p", "21:9")),
    (STANDARD, "1080x2560", ("1080p", "9:16")),  # no 9:21; tall screens go 9:16
    (STANDARD, "1366x768", ("720p", "16:9")),
    (STANDARD, "640x480", ("480p", "4:3")),
    (STANDARD, "480x640", ("480p", "3:4")),
    (STANDARD, "300x300", ("480p", "1:1")),
    (STANDARD, "7680x4320", ("4k", "16:9")),
    (V25, "3840x2160", ("1080p", "16:9")),  # 2.5 has no 4k
    (V25, "320x180", ("480p", "16:9")),
    # Ratios the reseller lacks (it offers 16:9 9:16 1:1): nearest it has, orientation kept.
    (RESELLER_STANDARD, "1112x834", ("720p", "16:9")),
    (RESELLER_STANDARD, "834x1112", ("720p", "9:16")),
    (RESELLER_STANDARD, "1200x900", ("720p", "16:9")),
    (RESELLER_STANDARD, "900x1200", ("720p", "9:16")),
    (RESELLER_STANDARD, "1470x630", ("720p", "16:9")),
    (RESELLER_STANDARD, "1100x1000", ("720p", "1:1")),
    (RESELLER_STANDARD, "1920x1080", ("1080p", "16:9")),
    (RESELLER_STANDARD, "3840x2160", ("1080p", "16:9")),
    (RESELLER_FAST, "1920x1080", ("720p", "16:9")),
])
def test_nearest_policy(name: str, size: str, expected: tuple[str, str]) -> None:
    assert map_size(size, spec(name), "nearest") == expected


@pytest.mark.parametrize(("name", "size", "expected"), [
    (FAST, "1280x720", ("720p", "16:9")),
    (FAST, "1000x1000", ("720p", "1:1")),  # snapping to the grid is not a substitution
    (STANDARD, "3840x2160", ("4k", "16:9")),
    (STANDARD, "1366x768", ("720p", "16:9")),
    (RESELLER_STANDARD, "1920x1080", ("1080p", "16:9")),
])
def test_strict_policy_accepts_what_the_model_renders(
    name: str, size: str, expected: tuple[str, str]
) -> None:
    assert map_size(size, spec(name), "strict") == expected


@pytest.mark.parametrize(("name", "size", "mentions"), [
    (FAST, "3840x2160", "4k"),
    (FAST, "1920x1080", "1080p"),
    (FAST, "1792x1024", "1080p"),
    (MINI, "1440x1440", "1080p"),
    (V25, "3840x2160", "4k"),
    (RESELLER_STANDARD, "1112x834", "4:3"),
    (RESELLER_STANDARD, "1470x630", "21:9"),
    (RESELLER_STANDARD, "1200x900", "4:3"),
    (RESELLER_FAST, "1920x1080", "1080p"),
])
def test_strict_policy_refuses_substitutes(name: str, size: str, mentions: str) -> None:
    with pytest.raises(GatewayError) as caught:
        map_size(size, spec(name), "strict")
    assert (caught.value.status, caught.value.code, caught.value.param) == (
        400, "invalid_value", "size")
    assert mentions in caught.value.message and size in caught.value.message


@pytest.mark.parametrize("size", [
    "", " ", "1280", "1280x", "x720", "1280*720", "1280 by 720", "1280x720x3", "abc",
    "0x720", "1280x0", "0x0", "-1280x720", "1280x-720", "+1280x720", "1280.5x720", "1280x720.0",
    "8193x720", "720x8193", "99999x99999", "1234567x720", "8000x100", "100x8000",
    "１２８０x７２０", "1280x720p", "0x", "data:image/png;base64," + "A" * 200,
])
@pytest.mark.parametrize("policy", ["nearest", "strict"])
def test_malformed_sizes_are_400(size: str, policy: str) -> None:
    with pytest.raises(GatewayError) as caught:
        map_size(size, spec(STANDARD), policy)  # type: ignore[arg-type]
    error = caught.value
    assert (error.status, error.code, error.param) == (400, "invalid_value", "size")
    assert len(error.message) < 200  # a pasted blob is not echoed whole


@pytest.mark.parametrize(("size", "expected"), [
    ("1280x720", (1280, 720)),
    (" 1280x720 ", (1280, 720)),
    ("1280X720", (1280, 720)),
    ("01280x0720", (1280, 720)),
    ("8192x8192", (8192, 8192)),
    ("1x1", (1, 1)),
    ("400x100", (400, 100)),  # exactly 4:1 is allowed
])
def test_parse_size(size: str, expected: tuple[int, int]) -> None:
    assert parse_size(size) == expected


def test_a_model_without_fixed_ratios_cannot_take_a_size() -> None:
    only_adaptive = ModelSpec("x", "up", "x", "2.0", ("720p",), ("adaptive",))
    with pytest.raises(GatewayError) as caught:
        map_size("1280x720", only_adaptive, "nearest")
    assert caught.value.param == "size"


def test_adaptive_is_never_a_mapping_target() -> None:
    model = ModelSpec("x", "up", "x", "2.0", ("720p",), ("adaptive", "1:1"))
    assert map_size("1280x720", model, "nearest") == ("720p", "1:1")


# seedance-native.md §5.5, the whole 2.0 table.
PIXEL_TABLE = [
    ("480p", "16:9", "864x496"), ("480p", "4:3", "752x560"), ("480p", "1:1", "640x640"),
    ("480p", "3:4", "560x752"), ("480p", "9:16", "496x864"), ("480p", "21:9", "992x432"),
    ("720p", "16:9", "1280x720"), ("720p", "4:3", "1112x834"), ("720p", "1:1", "960x960"),
    ("720p", "3:4", "834x1112"), ("720p", "9:16", "720x1280"), ("720p", "21:9", "1470x630"),
    ("1080p", "16:9", "1920x1080"), ("1080p", "4:3", "1664x1248"),
    ("1080p", "1:1", "1440x1440"), ("1080p", "3:4", "1248x1664"),
    ("1080p", "9:16", "1080x1920"), ("1080p", "21:9", "2206x946"),
    ("4k", "16:9", "3840x2160"), ("4k", "4:3", "3326x2494"), ("4k", "1:1", "2880x2880"),
    ("4k", "3:4", "2494x3326"), ("4k", "9:16", "2160x3840"), ("4k", "21:9", "4398x1886"),
]


@pytest.mark.parametrize("family", ["2.0", "2.0-fast", "2.0-mini"])
@pytest.mark.parametrize(("resolution", "ratio", "size"), PIXEL_TABLE)
def test_output_size_2_0(resolution: str, ratio: str, size: str, family: str) -> None:
    assert output_size(resolution, ratio, family) == size


@pytest.mark.parametrize(("resolution", "ratio", "size"), [
    ("480p", "16:9", "854x480"),  # 2.5 renders true 480p for 16:9
    ("480p", "9:16", "496x864"),
    ("480p", "1:1", "640x640"),
    ("720p", "16:9", "1280x720"),
    ("1080p", "21:9", "2206x946"),
])
def test_output_size_2_5(resolution: str, ratio: str, size: str) -> None:
    assert output_size(resolution, ratio, "2.5") == size


@pytest.mark.parametrize(("resolution", "ratio"), [
    ("720p", "adaptive"), ("720p", "2:1"), ("8k", "16:9"), ("", ""), ("720P", "16:9"),
])
def test_output_size_unknown(resolution: str, ratio: str) -> None:
    assert output_size(resolution, ratio, "2.0") is None


@pytest.mark.parametrize(("model_id", "family"), [
    ("doubao-seedance-2-5-260628", "2.5"),
    ("dreamina-seedance-2-5-260628", "2.5"),
    ("doubao-seedance-2.5", "2.5"),
    ("doubao-seedance-2-0-260128", "2.0"),
    ("doubao-seedance-2-0-fast-260128", "2.0"),
    ("doubao-seedance-2-0-mini-260615", "2.0"),
    ("doubao-seedance-2.0", "2.0"),
    ("doubao-seedance-2-fast", "2.0"),
    ("doubao-seedance-2-50-999999", "2.0"),
    ("ep-20260101000000-abcde", "2.0"),
])
def test_pixel_family(model_id: str, family: str) -> None:
    assert pixel_family(model_id) == family


def test_2_5_480p_size_maps_back_to_its_own_tier() -> None:
    resolution, ratio = map_size("854x480", spec(V25), "strict")
    assert output_size(resolution, ratio, spec(V25).family) == "854x480"
    assert output_size(resolution, ratio, spec(STANDARD).family) == "864x496"
