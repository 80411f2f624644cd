"""The simulator's start-up settings (fault knobs that tests may later change at run time)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SimulatorSettings:
    """How a simulated Ark upstream behaves.

    ``delay`` is the time from create to ``succeeded`` (queued for its first third, then running;
    ``0`` finishes at once). ``error_rate`` and ``rate_limit_rate`` are fractions of ``/api/v3``
    requests answered 500 / 429; file downloads are never faulted. ``video_bytes`` pads the served
    MP4 to that many bytes with a ``free`` box (``0`` serves the embedded sample as is).
    ``lose_create_answers``: the next N creates make their task, then hold the answer back until
    the caller hangs up (what a caller whose read timed out sees: the task exists, the id never
    came), answering only after ``LOST_ANSWER_HOLD`` seconds otherwise.
    """

    upstream_keys: tuple[str, ...] = ("sim-upstream-key",)
    delay: float = 3.0
    latency: float = 0.0
    error_rate: float = 0.0
    rate_limit_rate: float = 0.0
    url_ttl: int = 86400
    video_bytes: int = 0
    lose_create_answers: int = 0
    seed: int | None = None
