"""A built-in Seedance (Volcengine Ark) upstream simulator for the demo and end-to-end tests."""

from __future__ import annotations

from gateway.simulator.app import create_simulator_app
from gateway.simulator.settings import SimulatorSettings
from gateway.simulator.state import FaultKnobs, RecordedRequest, SimulatorState
from gateway.simulator.tasks import TaskRecord

__all__ = [
    "FaultKnobs",
    "RecordedRequest",
    "SimulatorSettings",
    "SimulatorState",
    "TaskRecord",
    "create_simulator_app",
]
