"""One upstream's keys and their health: which key takes the next create, which rest or wait.

A key is *healthy*, *cooling down* after a 429 (for its Retry-After), or *quarantined* after a
401/403 until a probe (a cheap authenticated call, see ``Upstream.watch_keys``) passes. The
state lives in this process's memory: each replica and worker learns it from its own calls.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Literal

from gateway.observability.logs import get_logger
from gateway.observability.metrics import Metrics

KeyHealth = Literal["healthy", "cooldown", "quarantined"]
KEY_STATES: tuple[KeyHealth, ...] = ("healthy", "cooldown", "quarantined")
# Why a create left an upstream for the next key or upstream (the failovers metric's reasons).
FailoverReason = Literal["rate_limited", "key_rejected", "unreachable"]
FAILOVER_REASONS: tuple[FailoverReason, ...] = ("rate_limited", "key_rejected", "unreachable")
REJECTED_STATUSES = frozenset({401, 403})
MAX_COOLDOWN = 3600.0  # a Retry-After further out than this is not believed
log = get_logger("gateway.upstream")


@dataclass(slots=True)
class KeyState:
    name: str
    in_flight: int = 0  # this process's calls with the key that have not answered yet
    cooldown_until: float = 0.0  # on the pool's clock
    quarantined: int | None = None  # the HTTP status that refused the key, while it does
    probe_at: float = 0.0


class KeyPool:
    """The keys of one upstream. ``choose`` picks the key for a create; ``report`` tells the
    pool what an answer with a key said about it."""

    def __init__(self, upstream: str, keys: Sequence[str], *, probe_interval: float,
                 cooldown: float, metrics: Metrics,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.upstream = upstream
        self._order = list(keys)
        self._states = {name: KeyState(name) for name in keys}
        self._turn = 0
        self._probe_interval = probe_interval
        self._cooldown = cooldown
        self._clock = clock
        self._gauge = metrics.upstream_key_state
        self._failovers = {reason: metrics.create_failovers.labels(upstream, reason)
                           for reason in FAILOVER_REASONS}  # zero from the start
        self._shown: dict[str, KeyHealth] = {}
        self.refresh()

    def choose(self, exclude: Collection[str] = ()) -> str | None:
        """The healthy key with the fewest calls in flight, `exclude` left out; ties take turns
        so that one-at-a-time creates spread too. None when no key may take a create."""
        now = self._clock()
        best: KeyState | None = None
        count = len(self._order)
        for offset in range(count):
            state = self._states[self._order[(self._turn + offset) % count]]
            if state.name in exclude or self._health(state, now) != "healthy":
                continue
            if best is None or state.in_flight < best.in_flight:
                best = state
        if best is None:
            return None
        self._turn = (self._order.index(best.name) + 1) % count
        return best.name

    @contextmanager
    def busy(self, key: str) -> Iterator[None]:
        """Counts a call with `key` in flight while it runs."""
        state = self._states[key]
        state.in_flight += 1
        try:
            yield
        finally:
            state.in_flight -= 1

    def report(self, key: str, status: int, retry_after: str | None = None) -> None:
        """What an upstream answer with `key` says about the key. 401/403: it is refused, out
        until a probe passes. 429: it authenticated, and rests for the Retry-After. Any other
        success: it authenticated. Other errors say nothing about the key."""
        state = self._states[key]
        now = self._clock()
        if status in REJECTED_STATUSES:
            if state.quarantined is None:
                log.warning("upstream_key_quarantined", upstream=self.upstream, upstream_key=key,
                            status=status, probe_in=self._probe_interval)
            state.quarantined = status
            state.probe_at = now + self._probe_interval
        elif status == 429 or 200 <= status < 300:
            if state.quarantined is not None:
                log.info("upstream_key_recovered", upstream=self.upstream, upstream_key=key)
            state.quarantined = None
            if status == 429:
                rest = rest_seconds(retry_after, self._cooldown)
                state.cooldown_until = max(state.cooldown_until, now + rest)
                log.info("upstream_key_cooling_down", upstream=self.upstream, upstream_key=key,
                         seconds=round(rest, 3))
        self._show(state, now)

    def due_probes(self) -> list[str]:
        """The quarantined keys whose probe is due; each is next due an interval later."""
        now = self._clock()
        due = []
        for state in self._states.values():
            if state.quarantined is not None and state.probe_at <= now:
                state.probe_at = now + self._probe_interval
                due.append(state.name)
        return due

    def health(self, key: str) -> KeyHealth:
        return self._health(self._states[key], self._clock())

    def retry_in(self) -> float | None:
        """Seconds until the first cooling key may take a create again; None when no key is
        cooling down (they are all quarantined)."""
        now = self._clock()
        waits = [s.cooldown_until - now for s in self._states.values()
                 if self._health(s, now) == "cooldown"]
        return min(waits) if waits else None

    def failed_over(self, reason: FailoverReason) -> None:
        """A create left this upstream for the next key or upstream."""
        self._failovers[reason].inc()

    def refresh(self) -> None:
        """Brings the state gauge up to date (a cooldown ends without any call)."""
        now = self._clock()
        for state in self._states.values():
            self._show(state, now)

    def _health(self, state: KeyState, now: float) -> KeyHealth:
        if state.quarantined is not None:
            return "quarantined"
        return "cooldown" if state.cooldown_until > now else "healthy"

    def _show(self, state: KeyState, now: float) -> None:
        health = self._health(state, now)
        if self._shown.get(state.name) == health:
            return
        self._shown[state.name] = health
        for each in KEY_STATES:
            self._gauge.labels(self.upstream, state.name, each).set(1 if each == health else 0)


def rest_seconds(retry_after: str | None, default: float) -> float:
    """A Retry-After (delta-seconds or an HTTP date) in seconds, within [0, MAX_COOLDOWN];
    `default` when there is none or it cannot be read."""
    if retry_after is None:
        return default
    text = retry_after.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return default
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
    if not math.isfinite(seconds):
        return default
    return min(max(seconds, 0.0), MAX_COOLDOWN)
