"""A simulated task: its timed lifecycle and the Ark task object it renders to."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gateway.seedance import FRAMES_PER_SECOND
from gateway.simulator.pixels import completion_tokens
from gateway.simulator.submission import Submission

TERMINAL_STATUSES: frozenset[str] = frozenset({"succeeded", "failed", "expired"})


@dataclass(frozen=True, slots=True)
class Phase:
    status: str
    updated_at: float


@dataclass(slots=True)
class TaskRecord:
    """One task as the simulator holds it; its status is derived from the clock, not stored.

    ``delay`` is captured at create time so changing the knob later does not move running tasks.
    Deleted tasks stay here (flagged) so their already-signed result URLs keep working, as TOS
    objects outlive Ark's task records.
    """

    id: str
    owner_key: str
    created_at: float
    delay: float
    submission: Submission
    cancelled_at: float | None = None
    deleted: bool = False

    def phase(self, now: float) -> Phase:
        if self.cancelled_at is not None:
            return Phase("cancelled", self.cancelled_at)
        elapsed = now - self.created_at
        started = self.created_at + self.delay / 3
        if self.delay > 0 and elapsed < self.delay / 3:
            return Phase("queued", self.created_at)
        if self.submission.outcome == "never" or elapsed < self.delay:
            return Phase("running", started)
        return Phase(self.submission.outcome, self.created_at + self.delay)

    def body(self, phase: Phase, content: dict[str, str]) -> dict[str, Any]:
        """The GET/list task object; ``content`` holds the signed result URLs once succeeded."""
        sub = self.submission
        error = sub.error if phase.status in ("failed", "expired") else None
        task: dict[str, Any] = {
            "id": self.id,
            "model": sub.model.reported_as,
            "status": phase.status,
            "error": None if error is None else {"code": error.code, "message": error.message},
            "content": content,
        }
        if phase.status == "succeeded":
            tokens = completion_tokens(sub.width, sub.height, sub.duration)
            task["usage"] = {"completion_tokens": tokens, "total_tokens": tokens}
        task.update({
            "created_at": int(self.created_at),
            "updated_at": int(phase.updated_at),
            "seed": sub.seed,
            "resolution": sub.resolution,
            "ratio": sub.ratio,
            "duration": sub.duration,
            "framespersecond": FRAMES_PER_SECOND,
            "service_tier": sub.service_tier,
            "execution_expires_after": sub.execution_expires_after,
            "generate_audio": sub.generate_audio,
            "draft": False,
            "priority": sub.priority,
        })
        if sub.safety_identifier is not None:
            task["safety_identifier"] = sub.safety_identifier
        return task
