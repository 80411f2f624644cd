"""Which model names the simulator accepts, and the "name-version" each one reports."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.catalog import RESELLER_ALIASES, preset_models


@dataclass(frozen=True, slots=True)
class SimulatedModel:
    reported_as: str  # the `model` field of the task object
    family: str  # catalog family key ("2.0", "2.5", ...), which picks the pixel table


def simulated_models() -> dict[str, SimulatedModel]:
    """Volcengine and BytePlus ids, plus the reseller names (which report the Volcengine ids)."""
    models: dict[str, SimulatedModel] = {}
    for preset in ("volcengine", "byteplus"):
        for spec in preset_models(preset, "simulator"):
            models[spec.name] = SimulatedModel(spec.upstream_model, spec.family)
    for alias, target in RESELLER_ALIASES.items():
        models[alias] = SimulatedModel(target, models[target].family)
    return models
