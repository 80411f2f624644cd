"""Prometheus metrics: one Metrics object per app, on its own registry.

Labels are bounded: route templates (never raw paths), known model names (anything else is
`other`), client key *names*, upstream names, status codes. With `--workers N` the values live
in PROMETHEUS_MULTIPROC_DIR and /metrics aggregates every worker.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

from gateway import __version__

PREFIX = "seedance_gateway"
OTHER = "other"
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                   10.0, 30.0, 60.0)
TASK_BUCKETS = (10.0, 30.0, 60.0, 120.0, 180.0, 300.0, 450.0, 600.0, 900.0, 1800.0, 3600.0,
                7200.0, 21600.0, 86400.0)
REJECT_REASONS = frozenset({
    "missing_parameter", "invalid_parameter", "unsupported_parameter", "invalid_image_url",
    "model_not_found", "body_too_large", "invalid_json",
    "invalid_multipart", "unsupported_content_type", "unsupported_operation", "invalid_value",
    "invalid_type", "not_found", "idempotency_key_reused",
})
# A key's own limits (gateway/keys/policy.py, auth.py): the refusal's code, and its reason.
LIMIT_REASONS = {
    "rpm_exceeded": "rpm", "max_in_flight_exceeded": "in_flight",
    "daily_tokens_exceeded": "budget", "monthly_tokens_exceeded": "budget",
    "daily_cost_exceeded": "budget", "monthly_cost_exceeded": "budget",
    "key_disabled": "disabled", "key_expired": "expired",
}


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


class Metrics:
    """Every metric the gateway exports; names and labels are the dashboard's contract."""

    def __init__(self, models: Iterable[str], registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.known_models = frozenset(models)
        r = self.registry
        p = PREFIX
        self.requests = Counter(f"{p}_requests_total", "HTTP requests handled",
                                ["route", "method", "status"], registry=r)
        self.request_duration = Histogram(
            f"{p}_request_duration_seconds", "Time to answer an HTTP request",
            ["route", "method"], buckets=LATENCY_BUCKETS, registry=r)
        self.in_flight = Gauge(f"{p}_requests_in_flight", "HTTP requests being handled",
                               registry=r, multiprocess_mode="livesum")
        self.upstream_requests = Counter(
            f"{p}_upstream_requests_total", "Requests sent to an upstream",
            ["upstream", "operation", "status"], registry=r)
        self.upstream_duration = Histogram(
            f"{p}_upstream_request_duration_seconds", "Upstream answer time",
            ["upstream", "operation"], buckets=LATENCY_BUCKETS, registry=r)
        self.tasks_created = Counter(f"{p}_tasks_created_total", "Tasks created upstream",
                                     ["model", "surface"], registry=r)
        self.tasks_finished = Counter(
            f"{p}_tasks_finished_total", "Tasks seen reaching a terminal status",
            ["model", "status"], registry=r)
        self.task_duration = Histogram(
            f"{p}_task_duration_seconds", "From task creation to success",
            ["model", "resolution"], buckets=TASK_BUCKETS, registry=r)
        self.tokens = Counter(f"{p}_tokens_total", "Tokens billed (usage.total_tokens)",
                              ["model", "client_key"], registry=r)
        # What those tokens cost at the configured prices (gateway/keys/prices.py), counted when
        # a task's real usage is settled; `key` is the client key name. See price_series().
        self.cost = Counter(f"{p}_cost_total",
                            "Cost of billed tokens at the configured prices (prices.currency)",
                            ["model", "key", "currency"], registry=r)
        self.download_bytes = Counter(f"{p}_download_bytes_total",
                                      "Bytes streamed by content downloads", ["variant"],
                                      registry=r)
        self.auth_failures = Counter(f"{p}_auth_failures_total", "Requests refused as 401",
                                     ["surface"], registry=r)
        self.rejected = Counter(f"{p}_rejected_requests_total",
                                "Requests refused for their input, by reason",
                                ["surface", "reason"], registry=r)
        self.build_info = Gauge(f"{p}_build_info", "Gateway version", ["version"], registry=r,
                                multiprocess_mode="max")
        self.build_info.labels(__version__).set(1)
        # Upstream keys (gateway/upstream/keypool.py): each process's own view of its keys.
        self.upstream_key_state = Gauge(
            f"{p}_upstream_key_state",
            "1 for an upstream key's state: healthy, cooldown (after a 429) or quarantined "
            "(after a 401/403, until a probe passes)",
            ["upstream", "key", "state"], registry=r, multiprocess_mode="livemax")
        self.create_failovers = Counter(
            f"{p}_create_failovers_total",
            "Creates passed on from an upstream to its next key or the next upstream, by why",
            ["upstream", "reason"], registry=r)
        # Idempotent creates (gateway/tasks/idempotency.py).
        self.idempotent_replays = Counter(
            f"{p}_idempotent_replays_total",
            "Creates answered with the task an earlier request with the same Idempotency-Key "
            "made: replayed, or adopted from upstream after its answer was lost",
            ["surface", "kind"], registry=r)
        for surface in ("native", "openai"):  # exported from the start, for rate() and alerts
            for kind in ("replayed", "adopted"):
                self.idempotent_replays.labels(surface, kind)
        # Coalesced polls (gateway/tasks/polls.py): record and shared answers spared the upstream.
        self.polls = Counter(
            f"{p}_polls_total",
            "Task polls (GETs of either surface, downloads, the tracker) by what answered: the "
            "record, a GET another poll sent (shared), the poll's own GET, a tracker list call",
            ["surface", "source"], registry=r)
        # Webhook attempts (gateway/webhooks/deliverer.py): delivered, retry (scheduled again),
        # failed (gave up); kind is event (a key's webhook_url) or callback (a native task's).
        self.webhook_deliveries = Counter(
            f"{p}_webhook_deliveries_total", "Webhook delivery attempts by outcome",
            ["kind", "outcome"], registry=r)
        for kind in ("event", "callback"):
            for outcome in ("delivered", "retry", "failed"):
                self.webhook_deliveries.labels(kind, outcome)
        # The result archive (gateway/results/archiver.py): copies into the result store, the
        # bytes they wrote, removals by why, and the copies this process has not finished.
        self.archive_copies = Counter(
            f"{p}_archive_copies_total", "Archive copies of a task's files, by outcome",
            ["outcome"], registry=r)
        for outcome in ("archived", "failed"):
            self.archive_copies.labels(outcome)
        self.archive_bytes = Counter(f"{p}_archive_bytes_total",
                                     "Bytes written to the result store by archive copies",
                                     registry=r)
        self.archive_removed = Counter(
            f"{p}_archive_removed_total",
            "Archived tasks removed: past retention, over max_bytes, or deleted by their owner",
            ["reason"], registry=r)
        for reason in ("retention", "max_bytes", "deleted"):
            self.archive_removed.labels(reason)
        self.archive_pending = Gauge(
            f"{p}_archive_pending", "Archive copies scheduled or running in this process",
            registry=r, multiprocess_mode="livesum")
        # labels() takes a lock and builds a key on every call; the hot path reuses children.
        self._served: dict[tuple[str, str, str], tuple[Any, Any]] = {}
        self._upstream: dict[tuple[str, str, str], tuple[Any, Any]] = {}
        self._polls: dict[tuple[str, str], Any] = {}

    def served(self, route: str, method: str, status: str, seconds: float) -> None:
        key = (route, method, status)
        children = self._served.get(key)
        if children is None:
            children = (self.requests.labels(route, method, status),
                        self.request_duration.labels(route, method))
            self._served[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def upstream_call(self, upstream: str, operation: str, status: str, seconds: float) -> None:
        key = (upstream, operation, status)
        children = self._upstream.get(key)
        if children is None:
            children = (self.upstream_requests.labels(upstream, operation, status),
                        self.upstream_duration.labels(upstream, operation))
            self._upstream[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def polled(self, surface: str, source: str) -> None:
        child = self._polls.get((surface, source))
        if child is None:
            child = self._polls[(surface, source)] = self.polls.labels(surface, source)
        child.inc()

    def price_series(self, keys: Iterable[str], currency: str | None) -> None:
        """Exports cost_total at 0 for every config key and known model from the start (for
        rate() and the dashboard); keys created later appear with their first cost."""
        for key in keys:
            for model in self.known_models:
                self.cost.labels(model, key, cost_currency(currency))

    def model(self, name: str | None) -> str:
        """A bounded label: unknown names would let any caller mint new series."""
        return name if name in self.known_models else OTHER

    def reject(self, surface: str, code: str, param: str | None = None) -> None:
        # AccessDenied also answers a bad file link: only a model's refusal names the model.
        reason = "model" if code == "AccessDenied" and param == "model" else _reason(code)
        if reason == "authentication_failed":
            self.auth_failures.labels(surface).inc()
        else:
            self.rejected.labels(surface, reason).inc()

    def exposition(self) -> bytes:
        directory = multiprocess_dir()
        if directory is None:
            return generate_latest(self.registry)
        merged = CollectorRegistry()
        multiprocess.MultiProcessCollector(merged, path=directory)  # type: ignore[no-untyped-call]
        return generate_latest(merged)


def cost_currency(currency: str | None) -> str:
    """The currency label: `none` when prices name no currency."""
    return currency or "none"


def _reason(code: str) -> str:
    """Map an error code from either surface onto a small fixed set of reasons."""
    lowered = code.lower().replace(".", "_")
    if lowered in ("authenticationerror", "invalid_api_key", "authentication_error"):
        return "authentication_failed"
    if code in LIMIT_REASONS:
        return LIMIT_REASONS[code]
    for prefix, reason in (
        ("missingparameter", "missing_parameter"), ("missing_required", "missing_parameter"),
        ("invalidparameter_unsupported", "unsupported_parameter"),
        ("invalidimageurl", "invalid_image_url"), ("invalidparameter", "invalid_parameter"),
        ("invalidendpointormodel", "model_not_found"),
        ("requestentitytoolarge", "body_too_large"), ("notfound", "not_found"),
        ("video_not_found", "not_found"), ("idempotencykeyreused", "idempotency_key_reused"),
    ):
        if lowered.startswith(prefix):
            return reason
    return lowered if lowered in REJECT_REASONS else OTHER
