"""An Ark task (or the gateway's record of it) as an OpenAI `Video`, per translation.md §5."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.errors import UpstreamBadResponse
from gateway.store.base import TaskRecord
from gateway.translate.openai_video import deleted_video, poll_after_ms, video_from_task

CREATED = 1_779_348_818
UPDATED = 1_779_348_874
VIDEO_KEYS = {
    "id", "object", "model", "status", "progress", "created_at", "completed_at", "expires_at",
    "prompt", "size", "seconds", "remixed_from_video_id", "error",
}


def record(**changes: Any) -> TaskRecord:
    fields: dict[str, Any] = {
        "task_id": "cgt-20260521120000-abcde", "owner": "team-a", "upstream": "ark",
        "upstream_key": "main", "model": "sora-2",
        "upstream_model": "doubao-seedance-2-0-fast-260128", "surface": "openai",
        "created_at": CREATED, "updated_at": CREATED, "prompt": "a cat",
        "requested_size": "1280x720", "requested_seconds": "8",
    }
    return TaskRecord(**{**fields, **changes})


def task(status: str, **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": "cgt-20260521120000-abcde", "model": "doubao-seedance-2-0-fast-260128",
        "status": status, "created_at": CREATED, "updated_at": UPDATED,
        "resolution": "720p", "ratio": "16:9", "duration": 8, "framespersecond": 24,
        "seed": 78674, "service_tier": "default", "execution_expires_after": 172800,
    }
    if status == "succeeded":
        body["content"] = {"video_url": "https://tos/x.mp4", "last_frame_url": "https://tos/x.png"}
        body["usage"] = {"completion_tokens": 108900, "total_tokens": 108900}
    return {**body, **changes}


def video(status: str | None = None, *, now: int = UPDATED + 10, **changes: Any) -> dict[str, Any]:
    return video_from_task(record(), task(status, **changes) if status else None, now=now)


# --- status, progress, timestamps, error ------------------------------------------------------

@pytest.mark.parametrize(("status", "expected"), [
    ("queued", {"status": "queued", "progress": 0, "completed_at": None, "expires_at": None,
                "error": None}),
    ("succeeded", {"status": "completed", "progress": 100, "completed_at": UPDATED,
                   "expires_at": UPDATED + 86400, "error": None}),
    ("failed", {"status": "failed", "progress": 100, "completed_at": UPDATED,
                "expires_at": None,
                "error": {"code": "OutputVideoSensitiveContentDetected",
                          "message": "The output video may contain sensitive information."}}),
    ("expired", {"status": "failed", "progress": 100, "completed_at": UPDATED,
                 "expires_at": None}),
    ("cancelled", {"status": "failed", "progress": 100, "completed_at": UPDATED,
                   "expires_at": None}),
])
def test_status_mapping(status: str, expected: dict[str, Any]) -> None:
    error = {"code": "OutputVideoSensitiveContentDetected",
             "message": "The output video may contain sensitive information."}
    got = video(status, error=error if status == "failed" else None)
    assert {key: got[key] for key in expected} == expected


def test_running_is_in_progress() -> None:
    got = video("running", now=CREATED + 60)
    assert (got["status"], got["completed_at"], got["expires_at"], got["error"]) == (
        "in_progress", None, None, None)
    assert 0 < got["progress"] < 100


@pytest.mark.parametrize(("status", "code"), [("expired", "expired"), ("cancelled", "cancelled")])
def test_expired_and_cancelled_say_what_happened(status: str, code: str) -> None:
    error = video(status)["error"]
    assert error["code"] == code and code in error["message"]


@pytest.mark.parametrize(("error", "expected"), [
    ({"code": "InternalServiceError", "message": "retry later"},
     {"code": "InternalServiceError", "message": "retry later"}),
    ({"code": "X", "message": ""}, {"code": "X",
                                    "message": "The video generation failed upstream without a "
                                               "reason."}),
    ({"message": "no code"}, {"code": "failed", "message": "no code"}),
    (None, {"code": "failed", "message": "The video generation failed upstream without a reason."}),
    ("garbage", {"code": "failed",
                 "message": "The video generation failed upstream without a reason."}),
])
def test_failed_error_comes_from_ark(error: object, expected: dict[str, str]) -> None:
    assert video("failed", error=error)["error"] == expected


@pytest.mark.parametrize("status", [
    "unknown", "processing", "pending", "completed", "in_progress", "SUCCEEDED", "", None, 3,
])
def test_unknown_upstream_status_is_an_upstream_error(status: object) -> None:
    with pytest.raises(UpstreamBadResponse) as caught:
        video_from_task(record(), {**task("running"), "status": status}, now=UPDATED)
    assert caught.value.status == 502


def test_task_without_status_is_an_upstream_error() -> None:
    with pytest.raises(UpstreamBadResponse):
        video_from_task(record(), {"id": "cgt-x"}, now=UPDATED)


def test_unknown_recorded_status_is_an_upstream_error() -> None:
    with pytest.raises(UpstreamBadResponse):
        video_from_task(record(status="paused"), None, now=UPDATED)


# --- every field, always ----------------------------------------------------------------------

ALL_CASES = [
    (record(), None),
    (record(status="running"), None),
    (record(status="succeeded", updated_at=UPDATED), None),
    (record(status="failed"), None),
    (record(status="expired", requested_size=None, requested_seconds=None, prompt=None), None),
    (record(), task("queued")),
    (record(), task("running")),
    (record(), task("succeeded")),
    (record(), task("failed", error={"code": "c", "message": "m"})),
    (record(), task("expired")),
    (record(), task("cancelled")),
    (record(), {"status": "running"}),
    (record(requested_size=None, requested_seconds=None), {"status": "succeeded"}),
]


@pytest.mark.parametrize(("rec", "tsk"), ALL_CASES)
def test_all_thirteen_fields_are_always_present(
    rec: TaskRecord, tsk: dict[str, Any] | None
) -> None:
    got = video_from_task(rec, tsk, now=UPDATED + 5)
    assert set(got) == VIDEO_KEYS
    assert got["object"] == "video" and got["id"] == rec.task_id
    assert got["remixed_from_video_id"] is None
    assert isinstance(got["seconds"], str) and isinstance(got["size"], str)
    assert isinstance(got["progress"], int) and 0 <= got["progress"] <= 100
    assert got["created_at"] == CREATED


def test_identity_fields_come_from_the_record() -> None:
    got = video_from_task(record(model="sora-2-pro", prompt="a dog"), task("running"), now=UPDATED)
    assert (got["id"], got["model"], got["prompt"]) == (
        "cgt-20260521120000-abcde", "sora-2-pro", "a dog")


# --- progress ---------------------------------------------------------------------------------

@pytest.mark.parametrize("requested_seconds", ["4", "8", "15", "30", None, "-1", "garbage"])
def test_running_progress_is_monotone_and_below_100(requested_seconds: str | None) -> None:
    rec = record(requested_seconds=requested_seconds)
    seen = [video_from_task(rec, task("running"), now=CREATED + elapsed)["progress"]
            for elapsed in range(-60, 7200, 7)]
    assert seen == sorted(seen)
    assert 1 <= seen[0] and seen[-1] == 99 and max(seen) <= 99


@pytest.mark.parametrize(("elapsed", "low", "high"), [
    (0, 1, 1),
    (30, 15, 30),
    (120, 50, 70),
    (300, 85, 95),
    (900, 98, 99),
])
def test_running_progress_tracks_typical_ark_times(elapsed: int, low: int, high: int) -> None:
    # 5 s of video: tau = 135 s.
    rec = record(requested_seconds="5")
    assert low <= video_from_task(rec, task("running"), now=CREATED + elapsed)["progress"] <= high


def test_progress_never_goes_backwards_through_the_lifecycle() -> None:
    rec = record()
    steps = [
        video_from_task(rec, task("queued"), now=CREATED + 5)["progress"],
        video_from_task(rec, task("running"), now=CREATED + 60)["progress"],
        video_from_task(rec, task("running"), now=CREATED + 600)["progress"],
        video_from_task(rec, task("succeeded"), now=CREATED + 700)["progress"],
    ]
    assert steps == sorted(steps) and steps[0] == 0 and steps[-1] == 100
    failed = video_from_task(rec, task("failed"), now=CREATED + 700)["progress"]
    assert failed >= steps[2]


# --- size and seconds -------------------------------------------------------------------------

@pytest.mark.parametrize(("upstream_model", "resolution", "ratio", "size"), [
    ("doubao-seedance-2-0-fast-260128", "720p", "16:9", "1280x720"),
    ("doubao-seedance-2-0-fast-260128", "720p", "9:16", "720x1280"),
    ("doubao-seedance-2-0-fast-260128", "480p", "16:9", "864x496"),
    ("doubao-seedance-2-0-260128", "1080p", "3:4", "1248x1664"),
    ("doubao-seedance-2-0-260128", "4k", "21:9", "4398x1886"),
    ("doubao-seedance-2-0-mini-260615", "480p", "1:1", "640x640"),
    ("doubao-seedance-2-5-260628", "480p", "16:9", "854x480"),
    ("dreamina-seedance-2-5-260628", "480p", "16:9", "854x480"),
    ("doubao-seedance-2-5-260628", "1080p", "16:9", "1920x1080"),
    ("doubao-seedance-2.0", "720p", "1:1", "960x960"),
])
def test_size_is_the_actual_output_size(
    upstream_model: str, resolution: str, ratio: str, size: str
) -> None:
    got = video_from_task(record(upstream_model=upstream_model, requested_size="1x1"),
                          task("succeeded", resolution=resolution, ratio=ratio), now=UPDATED)
    assert got["size"] == size


def test_family_can_be_given_explicitly() -> None:
    rec = record(upstream_model="ep-20260101000000-abcde")
    tsk = task("succeeded", resolution="480p", ratio="16:9")
    assert video_from_task(rec, tsk, now=UPDATED)["size"] == "864x496"
    assert video_from_task(rec, tsk, now=UPDATED, family="2.5")["size"] == "854x480"


@pytest.mark.parametrize(("requested_size", "changes", "size"), [
    ("1280x720", {"ratio": "adaptive"}, "1280x720"),  # not resolved yet
    ("1280x720", {"ratio": None}, "1280x720"),
    ("1280x720", {"resolution": "8k"}, "1280x720"),
    (None, {"ratio": "adaptive"}, ""),
    ("1280x720", {"resolution": "720p", "ratio": "9:16"}, "720x1280"),  # Ark's answer wins
])
def test_size_falls_back_to_what_the_request_implied(
    requested_size: str | None, changes: dict[str, Any], size: str
) -> None:
    got = video_from_task(record(requested_size=requested_size), task("running", **changes),
                          now=UPDATED)
    assert got["size"] == size


@pytest.mark.parametrize(("requested_size", "size"), [("1920x1080", "1920x1080"), (None, "")])
def test_size_before_the_first_poll(requested_size: str | None, size: str) -> None:
    assert video_from_task(record(requested_size=requested_size), None, now=UPDATED)["size"] == size


@pytest.mark.parametrize(("changes", "seconds"), [
    ({"duration": 5}, "5"),
    ({"duration": 15}, "15"),
    ({"duration": 5.0}, "5"),
    ({"duration": 5.54}, "5.54"),
    ({"duration": 16.709}, "16.709"),
    ({"duration": 0.5}, "0.5"),
    ({"duration": None, "frames": 121}, "5.042"),
    ({"duration": None, "frames": 120, "framespersecond": 24}, "5"),
    ({"duration": None, "frames": 120, "framespersecond": 0}, "5"),
    ({"duration": -1}, "8"),  # not decided yet: what was requested
    ({"duration": 0}, "8"),
    ({"duration": None}, "8"),
    ({"duration": "5"}, "8"),
    ({"duration": True}, "8"),
    ({"duration": float("nan")}, "8"),
])
def test_seconds_is_a_string_of_the_actual_duration(changes: dict[str, Any], seconds: str) -> None:
    got = video("succeeded", **changes)["seconds"]
    assert isinstance(got, str) and got == seconds


@pytest.mark.parametrize(("requested_seconds", "seconds"), [("8", "8"), ("15", "15"), (None, "")])
def test_seconds_before_the_first_poll(requested_seconds: str | None, seconds: str) -> None:
    got = video_from_task(record(requested_seconds=requested_seconds), None, now=UPDATED)
    assert got["seconds"] == seconds


# --- completed_at / expires_at ----------------------------------------------------------------

@pytest.mark.parametrize(("rec", "tsk", "completed_at", "expires_at"), [
    (record(), task("succeeded"), UPDATED, UPDATED + 86400),
    (record(), task("succeeded", updated_at=None), CREATED, CREATED + 86400),
    (record(updated_at=UPDATED + 3), task("succeeded", updated_at="x"), UPDATED + 3,
     UPDATED + 3 + 86400),
    (record(status="succeeded", updated_at=UPDATED), None, UPDATED, UPDATED + 86400),
    (record(status="failed", updated_at=UPDATED), None, UPDATED, None),
    (record(), task("failed"), UPDATED, None),
    (record(), task("queued"), None, None),
    (record(), task("running"), None, None),
])
def test_completion_and_expiry(
    rec: TaskRecord, tsk: dict[str, Any] | None, completed_at: int | None,
    expires_at: int | None,
) -> None:
    got = video_from_task(rec, tsk, now=UPDATED + 100)
    assert (got["completed_at"], got["expires_at"]) == (completed_at, expires_at)


def test_record_alone_failed_has_a_generic_error() -> None:
    got = video_from_task(record(status="failed"), None, now=UPDATED)
    assert got["error"]["code"] == "failed" and got["error"]["message"]


# --- poll-after header and delete -------------------------------------------------------------

@pytest.mark.parametrize(("rec", "tsk", "expected"), [
    (record(), None, 5000),
    (record(status="running"), None, 5000),
    (record(status="succeeded"), None, None),
    (record(status="failed"), None, None),
    (record(), task("queued"), 5000),
    (record(), task("running"), 5000),
    (record(), task("succeeded"), None),
    (record(), task("failed"), None),
    (record(), task("expired"), None),
    (record(), task("cancelled"), None),
    (record(status="queued"), task("succeeded"), None),  # the fresh task wins
])
def test_poll_after_ms(rec: TaskRecord, tsk: dict[str, Any] | None, expected: int | None) -> None:
    assert poll_after_ms(rec, tsk) == expected


@pytest.mark.parametrize("task_id", ["cgt-20260521120000-abcde", "cgt-x"])
def test_deleted_video(task_id: str) -> None:
    assert deleted_video(task_id) == {"id": task_id, "object": "video.deleted", "deleted": True}
