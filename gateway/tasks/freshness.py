"""When a task's record may answer a poll without the upstream being asked.

An unfinished task's record answers while the last fetch of it (by any replica: its
``fetched_at``, stamped when a replica asked) is less than the poll window old. A finished
task's answer never changes, except that Ark signs its result URLs anew on every answer: its
record answers until the URLs it holds are within URL_MARGIN of expiring.

A URL's expiry is read from its TOS signature (``X-Tos-Date`` + ``X-Tos-Expires``, or the
S3-style ``X-Amz-`` pair that TOS also accepts). A URL signed some other way is taken to be
valid for Ark's documented 24 h from the fetch that brought it; a record with no fetch time
(stored before the gateway kept one) is refreshed once. Either way, a file host that refuses
a URL still makes the download refresh the task once (gateway/surfaces/downloads.py).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

import orjson

from gateway.seedance import RESULT_URL_VALIDITY
from gateway.store.base import TaskRecord

URL_MARGIN = 600.0  # seconds: a URL this close to expiry is refreshed before it is handed out
_SIGNED_AT = re.compile(r"[?&]X-(?:Tos|Amz)-Date=(\d{8}T\d{6}Z)(?:&|$)", re.IGNORECASE)
_VALID_FOR = re.compile(r"[?&]X-(?:Tos|Amz)-Expires=(\d{1,10})(?:&|$)", re.IGNORECASE)


def is_fresh(record: TaskRecord, *, now: float, window: float) -> bool:
    """Whether the record may answer a poll at `now` (`window`: tracker.poll_window)."""
    if record.task_json is None:
        return False  # never answered: only the upstream knows the task
    if record.status == "succeeded":
        expiry = urls_expire_at(record.task_json, fetched_at=record.fetched_at)
        return expiry is None or expiry - now > URL_MARGIN
    if record.terminal:
        return True
    return record.fetched_at is not None and now - record.fetched_at < window


def urls_expire_at(body: bytes, *, fetched_at: float | None) -> float | None:
    """When the first of the result URLs in a task body expires; None when it holds none."""
    try:
        task = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    content = task.get("content") if isinstance(task, dict) else None
    if not isinstance(content, dict):
        return None
    earliest: float | None = None
    for value in content.values():
        if not isinstance(value, str) or not value.startswith(("https://", "http://")):
            continue
        expiry = signed_until(value)
        if expiry is None:
            expiry = fetched_at + RESULT_URL_VALIDITY if fetched_at is not None else 0.0
        earliest = expiry if earliest is None else min(earliest, expiry)
    return earliest


def signed_until(url: str) -> float | None:
    """The end of a TOS-signed URL's validity, or None when it carries no readable one."""
    signed_at, valid_for = _SIGNED_AT.search(url), _VALID_FOR.search(url)
    if signed_at is None or valid_for is None:
        return None
    d = signed_at.group(1)  # 20260315T081500Z; sliced, not strptime'd: every poll may read it
    try:
        start = datetime(int(d[:4]), int(d[4:6]), int(d[6:8]), int(d[9:11]), int(d[11:13]),
                         int(d[13:15]), tzinfo=UTC)
    except ValueError:
        return None
    return start.timestamp() + int(valid_for.group(1))
