"""An Ark task, or the gateway's record of it, as an OpenAI `Video` object (translation.md §5).

Decisions where translation.md §5 is silent:

- `created_at` is the record's (the gateway's create time), so a video keeps one timestamp before
  and after the first poll; `prompt` and `model` are the record's too (Ark's task has neither the
  prompt nor the client's model name).
- `progress`: 0 queued; 100 for every terminal status, failed included (progress never goes
  backwards, and a failed video will not advance any more); while running
  `min(99, 1 + int(99 × (1 − e^(−t/τ))))` with t = seconds since `created_at` and
  τ = 60 s + 15 s per requested second of video (5 s → 135 s: ~60 % at 2 min, ~90 % at 5 min,
  matching the 2–5 min Ark usually takes). τ depends only on the record, so the estimate is
  monotone in `now` for a task.
- `size`: Ark's pixel size for the task's `resolution` + `ratio`; before Ark has resolved them
  (not fetched yet, `adaptive` still pending) the record's `requested_size`, else `""`. The pixel
  table is chosen from the upstream model id (`pixel_family`) unless the caller passes `family`.
- `seconds`: Ark's `duration` as sent (`5`, `16.709`, never `5.0`), or `frames / framespersecond`
  for a frame-count task; while unknown (`-1`, not fetched) the record's `requested_seconds`,
  else `""`.
- `completed_at`: Ark's `updated_at` once terminal (the record's when the task has none);
  `expires_at`: `completed_at` + 24 h for completed videos (Ark's signed result URLs), else null.
- Errors: Ark's `{code, message}` for `failed` (code `failed` and a generic message when Ark sent
  none); `expired` and `cancelled` get their own code and a message saying what happened.
- `openai-poll-after-ms` is 5000 while queued or running: the Python SDK reads it once and keeps
  that interval, Ark tasks take minutes, and Ark allows only 20 task GETs/s per account, so 5 s
  costs a client at most a few seconds of latency while sparing the shared upstream quota.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from gateway.errors import UpstreamBadResponse
from gateway.seedance import FRAMES_PER_SECOND, UNFINISHED_STATUSES
from gateway.store.base import MAX_COUNT, TaskRecord
from gateway.translate.openai_sizes import output_size, pixel_family

RESULT_TTL_SECONDS = 86400  # Ark's result URLs are signed for 24 h
POLL_AFTER_MS = 5000
DEFAULT_EXPECTED_SECONDS = 5
VIDEO_STATUSES: Mapping[str, str] = {
    "queued": "queued",
    "running": "in_progress",
    "succeeded": "completed",
    "failed": "failed",
    "expired": "failed",
    "cancelled": "failed",
}
_PENDING = frozenset(UNFINISHED_STATUSES)
_ENDED_ERRORS: Mapping[str, dict[str, str]] = {
    "expired": {"code": "expired", "message": "The video task expired before it finished: the "
                "upstream gives up on tasks still queued or running after their "
                "execution_expires_after (48 hours by default)."},
    "cancelled": {"code": "cancelled", "message": "The video task was cancelled before it "
                  "started."},
}
_FAILED_MESSAGE = "The video generation failed upstream without a reason."


def video_from_task(
    record: TaskRecord,
    task: Mapping[str, Any] | None,
    *,
    now: int,
    family: str | None = None,
) -> dict[str, Any]:
    """The complete OpenAI `Video` (all 13 fields); `task` is None before the first poll."""
    status = _upstream_status(record, task)
    terminal = status not in _PENDING
    completed_at = _completed_at(record, task) if terminal else None
    return {
        "id": record.task_id,
        "object": "video",
        "model": record.model,
        "status": VIDEO_STATUSES[status],
        "progress": _progress(status, record, now),
        "created_at": record.created_at,
        "completed_at": completed_at,
        "expires_at": (completed_at + RESULT_TTL_SECONDS
                       if status == "succeeded" and completed_at is not None else None),
        "prompt": record.prompt,
        "size": _size(record, task, family or pixel_family(record.upstream_model)),
        "seconds": _seconds(record, task),
        "remixed_from_video_id": None,
        "error": _error(status, task),
    }


def poll_after_ms(record: TaskRecord, task: Mapping[str, Any] | None = None) -> int | None:
    """The `openai-poll-after-ms` header value while the task is not terminal, else None."""
    status = task.get("status") if task is not None else record.status
    return POLL_AFTER_MS if status in _PENDING else None


def deleted_video(task_id: str) -> dict[str, Any]:
    return {"id": task_id, "object": "video.deleted", "deleted": True}


def _upstream_status(record: TaskRecord, task: Mapping[str, Any] | None) -> str:
    status = task.get("status") if task is not None else record.status
    if not isinstance(status, str) or status not in VIDEO_STATUSES:
        # Never "in progress forever": a status we do not know is the upstream's error.
        raise UpstreamBadResponse(
            f"the upstream reported video {record.task_id} in an unknown status {status!r}")
    return status


def _progress(status: str, record: TaskRecord, now: int) -> int:
    if status == "queued":
        return 0
    if status != "running":
        return 100
    elapsed = max(0, now - record.created_at)
    tau = 60 + 15 * _expected_seconds(record.requested_seconds)
    return min(99, 1 + int(99 * (1 - math.exp(-elapsed / tau))))


def _expected_seconds(requested: str | None) -> float:
    try:
        seconds = float(requested) if requested else 0.0
    except ValueError:
        seconds = 0.0
    return seconds if 0 < seconds < 3600 else DEFAULT_EXPECTED_SECONDS


def _completed_at(record: TaskRecord, task: Mapping[str, Any] | None) -> int:
    updated_at = task.get("updated_at") if task is not None else None
    if isinstance(updated_at, int) and not isinstance(updated_at, bool) \
            and 0 <= updated_at <= MAX_COUNT:  # else not a time (the record's is)
        return updated_at
    return record.updated_at


def _size(record: TaskRecord, task: Mapping[str, Any] | None, family: str) -> str:
    if task is not None:
        resolution, ratio = task.get("resolution"), task.get("ratio")
        if isinstance(resolution, str) and isinstance(ratio, str):
            actual = output_size(resolution, ratio, family)
            if actual is not None:
                return actual
    return record.requested_size or ""


def _seconds(record: TaskRecord, task: Mapping[str, Any] | None) -> str:
    if task is not None:
        duration = _positive(task.get("duration"))
        if duration is not None:
            return _decimal(duration)
        frames = _positive(task.get("frames"))
        if frames is not None:
            fps = _positive(task.get("framespersecond")) or FRAMES_PER_SECOND
            return _decimal(round(frames / fps, 3))
    return record.requested_seconds or ""


def _positive(value: object) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        if math.isfinite(value) and value > 0:
            return value
    return None


def _decimal(value: float) -> str:
    # 5 → "5", 5.0 → "5", 16.709 → "16.709" (repr is the shortest exact form).
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _error(status: str, task: Mapping[str, Any] | None) -> dict[str, str] | None:
    if status in _ENDED_ERRORS:
        return dict(_ENDED_ERRORS[status])
    if status != "failed":
        return None
    error = task.get("error") if task is not None else None
    code = error.get("code") if isinstance(error, Mapping) else None
    message = error.get("message") if isinstance(error, Mapping) else None
    return {"code": str(code) if code else "failed",
            "message": str(message) if message else _FAILED_MESSAGE}
