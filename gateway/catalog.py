"""The model catalogue: client-facing model names, their upstream ids and capabilities."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the config imports this module: only types come back
    from gateway.config import Config, UpstreamConfig

ALL_RATIOS: tuple[str, ...] = ("16:9", "4:3", "1:1", "3:4", "9:16", "21:9", "adaptive")
RESELLER_RATIOS: tuple[str, ...] = ("16:9", "9:16", "1:1")



@dataclass(frozen=True, slots=True)
class ModelSpec:
    """What one client-facing model name means and accepts.

    ``name`` is what clients send; ``upstream_model`` is what the upstream receives.
    """

    name: str
    upstream: str
    upstream_model: str
    family: str
    resolutions: tuple[str, ...]
    ratios: tuple[str, ...] = ALL_RATIOS
    duration_min: int = 4
    duration_max: int = 15
    duration_auto: bool = True  # whether -1 ("model chooses") is accepted
    default_duration: int = 5
    default_resolution: str = "720p"
    max_images: int = 9
    max_videos: int = 3
    max_audios: int = 3
    audio_only: bool = False  # 2.5 allows reference audio without image/video
    service_tiers: tuple[str, ...] = ("default",)
    output_formats: tuple[str, ...] = ()  # empty: `output_format` not accepted
    task_types: tuple[str, ...] = ()  # empty: `omni_reference_task_type` not accepted

    def accepts_duration(self, seconds: int) -> bool:
        if seconds == -1:
            return self.duration_auto
        return self.duration_min <= seconds <= self.duration_max


@dataclass(frozen=True, slots=True)
class _Family:
    key: str
    volcengine_id: str
    byteplus_id: str
    resolutions: tuple[str, ...]
    duration_max: int
    max_images: int
    max_videos: int
    max_audios: int
    audio_only: bool = False
    output_formats: tuple[str, ...] = ()
    task_types: tuple[str, ...] = ()
    default_duration: int = 5


_FAMILIES: tuple[_Family, ...] = (
    _Family("2.0", "doubao-seedance-2-0-260128", "dreamina-seedance-2-0-260128",
            ("480p", "720p", "1080p", "4k"), 15, 9, 3, 3),
    _Family("2.0-fast", "doubao-seedance-2-0-fast-260128", "dreamina-seedance-2-0-fast-260128",
            ("480p", "720p"), 15, 9, 3, 3),
    _Family("2.0-mini", "doubao-seedance-2-0-mini-260615", "dreamina-seedance-2-0-mini-260615",
            ("480p", "720p"), 15, 9, 3, 3),
    _Family("2.5", "doubao-seedance-2-5-260628", "dreamina-seedance-2-5-260628",
            ("480p", "720p", "1080p"), 30, 30, 10, 10, audio_only=True,
            output_formats=("mp4", "mov"),
            task_types=("auto", "reference", "edit", "extend", "first_last_frame"),
            default_duration=-1),
)

PRESETS: tuple[str, ...] = ("volcengine", "byteplus", "wisgate")
ALL_MODELS = "*"  # in a key's `models`: every model of the catalogue
# The family of a model an override added: no other upstream is known to serve the same one.
CUSTOM_FAMILY = "custom"


def preset_models(preset: str, upstream: str) -> tuple[ModelSpec, ...]:
    """The models an upstream of the given preset serves, named as that upstream names them."""
    if preset == "wisgate":
        # The seed document's reseller: its own names, narrower limits, native request format.
        return (
            ModelSpec("doubao-seedance-2.0", upstream, "doubao-seedance-2.0", "2.0",
                      ("480p", "720p", "1080p"), RESELLER_RATIOS, 5, 15, False),
            ModelSpec("doubao-seedance-2-fast", upstream, "doubao-seedance-2-fast", "2.0-fast",
                      ("480p", "720p"), RESELLER_RATIOS, 5, 15, False),
        )
    if preset not in ("volcengine", "byteplus"):
        raise ValueError(f"unknown preset {preset!r}; expected one of {', '.join(PRESETS)}")
    specs = []
    for fam in _FAMILIES:
        model_id = fam.volcengine_id if preset == "volcengine" else fam.byteplus_id
        specs.append(ModelSpec(
            name=model_id, upstream=upstream, upstream_model=model_id, family=fam.key,
            resolutions=fam.resolutions, duration_max=fam.duration_max,
            default_duration=fam.default_duration, max_images=fam.max_images,
            max_videos=fam.max_videos, max_audios=fam.max_audios, audio_only=fam.audio_only,
            output_formats=fam.output_formats, task_types=fam.task_types,
        ))
    return tuple(specs)


# Seed-document reseller names, usable against a Volcengine-format upstream too.
RESELLER_ALIASES: Mapping[str, str] = MappingProxyType({
    "doubao-seedance-2.0": "doubao-seedance-2-0-260128",
    "doubao-seedance-2-fast": "doubao-seedance-2-0-fast-260128",
})
# OpenAI model names, so unmodified OpenAI clients work (sora-2 is the fast one, -pro the best).
OPENAI_ALIASES: Mapping[str, str] = MappingProxyType({
    "sora-2": "doubao-seedance-2-0-fast-260128",
    "sora-2-pro": "doubao-seedance-2-0-260128",
})


class Catalogue:
    """Resolves client-facing names and aliases to a :class:`ModelSpec`.

    Aliases resolve to the *target's* upstream and limits, but keep the alias as the name the
    client sees (a task created as ``sora-2`` reports ``model: "sora-2"`` on the OpenAI surface).

    ``offers``: per upstream, in priority order, the model it serves each family as; where a
    create goes when the model's own upstream cannot take it (:meth:`fallbacks`).
    """

    __slots__ = ("_models", "_aliases", "_by_name", "_offers")

    def __init__(self, models: Iterable[ModelSpec], aliases: Mapping[str, str], *,
                 offers: Iterable[Mapping[str, ModelSpec]] = ()) -> None:
        self._offers = tuple(MappingProxyType(dict(offer)) for offer in offers)
        self._models: dict[str, ModelSpec] = {}
        for spec in models:
            self._models.setdefault(spec.name, spec)
        self._aliases = {a: t for a, t in aliases.items() if a not in self._models}
        self._by_name = dict(self._models)
        for alias, target in self._aliases.items():
            if target not in self._models:
                raise ValueError(f"alias {alias!r} points at unknown model {target!r}")
            self._by_name[alias] = replace(self._models[target], name=alias)

    def resolve(self, name: str) -> ModelSpec | None:
        return self._by_name.get(name)

    def names(self) -> list[str]:
        return sorted([*self._models, *self._aliases])

    def unknown(self, names: Iterable[str]) -> list[str]:
        """The names a key's `models` list may not hold: neither a model, an alias nor "*"."""
        return sorted({n for n in names if n != ALL_MODELS and n not in self._by_name})

    def aliases(self) -> dict[str, str]:
        return dict(self._aliases)

    def models(self) -> list[ModelSpec]:
        return list(self._models.values())

    def fallbacks(self, spec: ModelSpec) -> list[ModelSpec]:
        """The same model on the other upstreams that serve its family, by priority: each
        under that upstream's own id and limits. None for a model an override added without
        naming its family."""
        if spec.family == CUSTOM_FAMILY:
            return []
        found = []
        for offer in self._offers:
            other = offer.get(spec.family)
            if other is not None and other.upstream != spec.upstream:
                found.append(other)
        return found


def build_catalogue(config: Config) -> Catalogue:
    upstream_names = {u.name for u in config.upstreams}
    # A preset model name two upstreams share goes to the first by priority (a stable sort:
    # ties keep the config order); the other takes its creates over (Catalogue.fallbacks).
    by_priority = sorted(config.upstreams, key=lambda u: u.priority)
    specs: dict[str, ModelSpec] = {}
    for upstream in by_priority:
        for spec in preset_models(upstream.preset, upstream.name):
            specs.setdefault(spec.name, spec)
    for override in config.models.overrides:
        fields = override.model_dump(exclude_none=True)
        if fields.get("upstream", None) not in (None, *upstream_names):
            raise ValueError(f"model {override.name!r}: unknown upstream {fields['upstream']!r}")
        base = specs.get(override.name)
        if base is None:
            missing = {"upstream", "upstream_model", "resolutions"} - fields.keys()
            if missing:
                raise ValueError(
                    f"model {override.name!r} is new, so it needs {', '.join(sorted(missing))}"
                )
            fields.setdefault("family", CUSTOM_FAMILY)
            specs[override.name] = ModelSpec(**fields)
        else:
            specs[override.name] = ModelSpec(**{**_spec_fields(base), **fields})
    return Catalogue(specs.values(), config.models.aliases,
                     offers=_offers(by_priority, list(specs.values())))


def _offers(upstreams: list[UpstreamConfig],
            specs: list[ModelSpec]) -> list[dict[str, ModelSpec]]:
    """Per upstream, by priority: the model it serves each family as. Its catalogue model
    (overrides applied) when it has one, else its preset's, under that upstream's own id."""
    offers = []
    for upstream in upstreams:
        offer: dict[str, ModelSpec] = {}
        for spec in specs:
            if spec.upstream == upstream.name:
                offer.setdefault(spec.family, spec)
        for spec in preset_models(upstream.preset, upstream.name):
            offer.setdefault(spec.family, spec)
        offers.append(offer)
    return offers


def _spec_fields(spec: ModelSpec) -> dict[str, Any]:
    return {f.name: getattr(spec, f.name) for f in dataclasses.fields(spec)}
