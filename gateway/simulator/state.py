"""The mutable state of one simulator app: fault knobs, tasks, and the log of requests received."""

from __future__ import annotations

import os
import random
import string
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from typing import Any, Literal, cast

from starlette.requests import Request

from gateway.simulator.media import MediaLibrary, load_sample_video
from gateway.simulator.models import SimulatedModel, simulated_models
from gateway.simulator.settings import SimulatorSettings
from gateway.simulator.signing import UrlSigner
from gateway.simulator.tasks import TaskRecord

REQUEST_LOG_SIZE = 1000
RECORDED_BODY_LIMIT = 64 * 1024
_ID_ALPHABET = string.ascii_lowercase + string.digits

Fault = Literal["error", "rate_limit"]


@dataclass(slots=True)
class FaultKnobs:
    """The knobs tests may turn while the simulator runs (``POST /_sim/faults`` or in process)."""

    delay: float
    latency: float
    error_rate: float
    rate_limit_rate: float
    url_ttl: int
    video_bytes: int
    lose_create_answers: int = 0
    # Result file bodies at most this fast (0: as fast as the reader takes them), so a test
    # can catch a download or an archive copy half way.
    file_bytes_per_second: int = 0

    def apply(self, changes: Mapping[str, Any]) -> None:
        """Set the given knobs, all or none; raises ValueError naming the first bad one."""
        known = {knob.name for knob in fields(self)}
        checked: dict[str, float | int] = {}
        for name, value in changes.items():
            if name not in known:
                raise ValueError(f"unknown fault knob {name!r}")
            integral = name in ("url_ttl", "video_bytes", "lose_create_answers",
                                "file_bytes_per_second")
            kinds = (int,) if integral else (int, float)
            if isinstance(value, bool) or not isinstance(value, kinds) or value < 0:
                kind = "integer" if integral else "number"
                raise ValueError(f"{name} must be a non-negative {kind}")
            if name.endswith("_rate") and value > 1:
                raise ValueError(f"{name} must be between 0 and 1")
            checked[name] = value
        for name, value in checked.items():
            setattr(self, name, value)

    def as_json(self) -> dict[str, float | int]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One ``/api/v3`` request as received, before auth or faults (body cut to 64 KiB)."""

    method: str
    path: str
    query: str
    headers: Mapping[str, str]
    body: bytes
    received_at: float

    def as_json(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "headers": dict(self.headers),
            "body": self.body.decode("utf-8", "replace"),
            "received_at": self.received_at,
        }


@dataclass(eq=False)
class SimulatorState:
    """Everything one simulator instance knows; lives on ``app.state.simulator``.

    ``clock`` may be replaced by tests to move simulated time without sleeping.
    """

    upstream_keys: frozenset[str]
    faults: FaultKnobs
    models: Mapping[str, SimulatedModel]
    signer: UrlSigner
    media: MediaLibrary
    fault_rng: random.Random
    rng: random.Random
    clock: Callable[[], float] = time.time
    tasks: dict[str, TaskRecord] = field(default_factory=dict)
    # Task id → how many more GET or DELETE requests of it answer 404, as if Ark had lost the
    # task for a moment (``POST /_sim/tasks/{task_id}/lose``).
    lost: dict[str, int] = field(default_factory=dict)
    # Upstream keys Ark refuses (401, as if revoked) or rate limits (429 with this Retry-After
    # in seconds) until told otherwise (``POST /_sim/keys``).
    revoked_keys: set[str] = field(default_factory=set)
    limited_keys: dict[str, int] = field(default_factory=dict)
    requests: deque[RecordedRequest] = field(
        default_factory=lambda: deque(maxlen=REQUEST_LOG_SIZE))

    @classmethod
    def from_settings(cls, settings: SimulatorSettings) -> SimulatorState:
        # Separate generators, so how many tasks a test creates never shifts its fault sequence.
        seed = settings.seed
        return cls(
            upstream_keys=frozenset(settings.upstream_keys),
            faults=FaultKnobs(
                delay=settings.delay,
                latency=settings.latency,
                error_rate=settings.error_rate,
                rate_limit_rate=settings.rate_limit_rate,
                url_ttl=settings.url_ttl,
                video_bytes=settings.video_bytes,
                lose_create_answers=settings.lose_create_answers,
            ),
            models=simulated_models(),
            signer=UrlSigner(os.urandom(32)),
            media=MediaLibrary(load_sample_video()),
            fault_rng=random.Random(seed),
            rng=random.Random(None if seed is None else seed + 1),
        )

    def record(self, request: RecordedRequest) -> None:
        self.requests.append(request)

    def roll_fault(self) -> Fault | None:
        draw = self.fault_rng.random()
        if draw < self.faults.error_rate:
            return "error"
        if draw < self.faults.error_rate + self.faults.rate_limit_rate:
            return "rate_limit"
        return None

    def new_task_id(self, now: float) -> str:
        stamp = datetime.fromtimestamp(now, UTC).strftime("%Y%m%d%H%M%S")
        while True:
            suffix = "".join(self.rng.choices(_ID_ALPHABET, k=5))
            task_id = f"cgt-{stamp}-{suffix}"
            if task_id not in self.tasks:
                return task_id

    def answers_lost(self, task_id: str) -> bool:
        """Whether this request of the task is one to answer 404 (counting it off)."""
        left = self.lost.pop(task_id, 0)
        if left > 1:
            self.lost[task_id] = left - 1
        return left > 0

    def visible_task(self, task_id: str, upstream_key: str) -> TaskRecord | None:
        """The task if it exists, is not deleted, and belongs to the caller's upstream key."""
        task = self.tasks.get(task_id)
        if task is None or task.deleted or task.owner_key != upstream_key:
            return None
        return task


def simulator_of(request: Request) -> SimulatorState:
    return cast(SimulatorState, request.app.state.simulator)
