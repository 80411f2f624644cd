"""Fixtures for the simulator tests: the anyio backend and a factory for in-memory simulators."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from .simkit import Sim, open_sim


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def make_sim() -> Callable[..., Sim]:
    """``make_sim(**settings)``: a simulator on a fake clock (``delay`` defaults to 0)."""

    def make(**settings: Any) -> Sim:
        return open_sim(**settings)

    return make
