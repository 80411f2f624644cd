"""The list endpoint's query: page bounds, the `filter.*` parameters, and which tasks match."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

from starlette.datastructures import QueryParams

from gateway.simulator.ark_errors import invalid_parameter
from gateway.simulator.submission import SERVICE_TIERS
from gateway.simulator.tasks import Phase, TaskRecord

# `expired` cannot be filtered on, per the list API's enum.
LISTABLE_STATUSES: tuple[str, ...] = ("queued", "running", "cancelled", "succeeded", "failed")
MAX_PAGE = 500
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class ListQuery:
    page_num: int
    page_size: int
    status: str | None
    task_ids: frozenset[str]
    model: str | None
    service_tier: str

    @classmethod
    def read(cls, query: QueryParams) -> ListQuery:
        """Parse the query string; raises ArkError for out-of-range or unknown values."""
        tier = _one_of(query.get("filter.service_tier"), "filter.service_tier", SERVICE_TIERS)
        return cls(
            page_num=_page_bound(query.get("page_num"), "page_num", 1),
            page_size=_page_bound(query.get("page_size"), "page_size", 20),
            status=_one_of(query.get("filter.status"), "filter.status", LISTABLE_STATUSES),
            task_ids=frozenset(query.getlist("filter.task_ids")),  # the key repeats
            model=query.get("filter.model") or None,
            # Ark defaults this filter to `default`: flex tasks only show when asked for.
            service_tier=tier or "default",
        )

    def admits(self, task: TaskRecord, phase: Phase) -> bool:
        sub = task.submission
        return (
            (not self.task_ids or task.id in self.task_ids)
            and (self.status is None or phase.status == self.status)
            and sub.service_tier == self.service_tier
            and (self.model is None or self.model in (sub.requested_model, sub.model.reported_as))
        )

    def page(self, matches: list[T]) -> list[T]:
        start = (self.page_num - 1) * self.page_size
        return matches[start:start + self.page_size]


def _page_bound(raw: str | None, name: str, default: int) -> int:
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise invalid_parameter(name, f"`{name}` must be an integer") from None
    if not 1 <= value <= MAX_PAGE:
        raise invalid_parameter(name, f"`{name}` must be between 1 and {MAX_PAGE}")
    return value


def _one_of(raw: str | None, name: str, allowed: tuple[str, ...]) -> str | None:
    if raw is not None and raw not in allowed:
        raise invalid_parameter(name, f"`{name}` must be one of {', '.join(allowed)}")
    return raw
