"""The key pool's choice and states, and which upstreams stand in for a model (no sockets).

End-to-end behaviour over real sockets is in tests/test_key_failover.py.
"""

from __future__ import annotations

import subprocess
import sys
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.catalog import build_catalogue
from gateway.config import parse_config
from gateway.observability.metrics import Metrics
from gateway.upstream.keypool import KeyPool, rest_seconds
from tests.servers import FAKE_ALICE_KEY, FAKE_UPSTREAM_KEY
from tests.simulator.simkit import FakeClock

KEYS = ("one", "two", "three")


def pool(clock: FakeClock, keys: tuple[str, ...] = KEYS, *, metrics: Metrics | None = None,
         probe_interval: float = 180.0, cooldown: float = 5.0) -> KeyPool:
    return KeyPool("ark", keys, probe_interval=probe_interval, cooldown=cooldown,
                   metrics=metrics or Metrics(()), clock=clock)


def gauge(metrics: Metrics, key: str, state: str) -> float | None:
    return metrics.registry.get_sample_value(
        "seedance_gateway_upstream_key_state", {"upstream": "ark", "key": key, "state": state})


def test_idle_keys_take_turns() -> None:
    keys = pool(FakeClock())
    assert [keys.choose() for _ in range(6)] == ["one", "two", "three", "one", "two", "three"]


def test_the_least_busy_key_is_chosen() -> None:
    keys = pool(FakeClock())
    with ExitStack() as calls:
        for key in ("one", "one", "two"):
            calls.enter_context(keys.busy(key))
        assert keys.choose() == "three"
        calls.enter_context(keys.busy("three"))
        assert [keys.choose() for _ in range(3)] == ["two", "three", "two"]  # one has 2
    assert keys.choose(exclude={"one", "two"}) == "three"  # all idle again


def test_a_rate_limited_key_rests_for_its_retry_after() -> None:
    clock, metrics = FakeClock(), Metrics(())
    keys = pool(clock, ("one", "two"), metrics=metrics, cooldown=60)
    assert gauge(metrics, "one", "healthy") == 1 and gauge(metrics, "one", "cooldown") == 0
    keys.report("one", 429, "2")
    assert keys.health("one") == "cooldown" and gauge(metrics, "one", "cooldown") == 1
    assert {keys.choose() for _ in range(4)} == {"two"}
    assert keys.retry_in() == pytest.approx(2)
    clock.advance(2.01)
    assert keys.health("one") == "healthy"
    keys.refresh()  # the watcher's tick: the gauge follows without any call
    assert gauge(metrics, "one", "healthy") == 1 and gauge(metrics, "one", "cooldown") == 0
    assert {keys.choose() for _ in range(4)} == {"one", "two"}


def test_a_429_without_retry_after_rests_for_the_configured_cooldown() -> None:
    clock = FakeClock()
    keys = pool(clock, cooldown=7)
    keys.report("two", 429, None)
    clock.advance(6.9)
    assert keys.health("two") == "cooldown"
    clock.advance(0.2)
    assert keys.health("two") == "healthy"


def test_a_refused_key_is_quarantined_until_a_probe_passes() -> None:
    clock, metrics = FakeClock(), Metrics(())
    keys = pool(clock, ("one", "two"), metrics=metrics, probe_interval=180)
    keys.report("one", 401)
    assert keys.health("one") == "quarantined" and gauge(metrics, "one", "quarantined") == 1
    assert gauge(metrics, "one", "healthy") == 0
    assert {keys.choose() for _ in range(4)} == {"two"}
    assert keys.retry_in() is None  # no key is merely resting
    assert keys.due_probes() == []
    clock.advance(3600)
    assert keys.health("one") == "quarantined"  # time alone never brings it back
    assert keys.due_probes() == ["one"]
    assert keys.due_probes() == []  # the next probe is an interval later
    keys.report("one", 403)  # the probe is refused too
    clock.advance(179)
    assert keys.due_probes() == []
    clock.advance(1)
    assert keys.due_probes() == ["one"]
    keys.report("one", 200)
    assert keys.health("one") == "healthy" and gauge(metrics, "one", "quarantined") == 0
    assert {keys.choose() for _ in range(4)} == {"one", "two"}


@pytest.mark.parametrize("status", [400, 404, 500, 503])
def test_other_answers_say_nothing_about_the_key(status: int) -> None:
    keys = pool(FakeClock())
    keys.report("one", 401)
    keys.report("one", status)
    keys.report("two", status)
    assert (keys.health("one"), keys.health("two")) == ("quarantined", "healthy")


def test_a_429_to_a_probe_means_the_key_authenticates() -> None:
    keys = pool(FakeClock())
    keys.report("one", 403)
    keys.report("one", 429, "1")
    assert keys.health("one") == "cooldown"


def test_no_healthy_key_is_none() -> None:
    keys = pool(FakeClock(), ("one", "two"))
    keys.report("one", 401)
    keys.report("two", 429, "3")
    assert keys.choose() is None
    assert keys.retry_in() == pytest.approx(3)


def test_failovers_are_counted_from_zero() -> None:
    metrics = Metrics(())
    keys = pool(FakeClock(), ("one",), metrics=metrics)
    for reason in ("rate_limited", "key_rejected", "unreachable"):
        assert metrics.registry.get_sample_value(
            "seedance_gateway_create_failovers_total",
            {"upstream": "ark", "reason": reason}) == 0
    keys.failed_over("unreachable")
    assert metrics.registry.get_sample_value(
        "seedance_gateway_create_failovers_total",
        {"upstream": "ark", "reason": "unreachable"}) == 1


def http_date(seconds: float) -> str:
    return format_datetime(datetime.now(UTC) + timedelta(seconds=seconds), usegmt=True)


@pytest.mark.parametrize(("retry_after", "expected"), [
    (None, 5.0),  # Ark's 429s carry none
    ("2", 2.0),
    (" 2.5 ", 2.5),
    ("0", 0.0),
    ("-3", 0.0),
    ("86400", 3600.0),  # not believed past an hour
    ("nan", 5.0),
    ("inf", 5.0),
    ("soon", 5.0),
    ("", 5.0),
    ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),  # a date in the past
])
def test_retry_after_values(retry_after: str | None, expected: float) -> None:
    assert rest_seconds(retry_after, 5.0) == pytest.approx(expected)


def test_retry_after_as_an_http_date() -> None:
    assert rest_seconds(http_date(30), 5.0) == pytest.approx(30, abs=1.5)


# --- which upstreams stand in for a model ---------------------------------------------------


def catalogue(*upstreams: dict[str, Any], overrides: list[dict[str, Any]] | None = None) -> Any:
    data = {
        "upstreams": [{"base_url": "http://127.0.0.1:1/api/v3",
                       "keys": [{"name": "k", "secret": "${KEY}"}], **u} for u in upstreams],
        "models": {"aliases": {"sora-2": "doubao-seedance-2-0-fast-260128"},
                   "overrides": overrides or []},
        "client_keys": [{"name": "alice", "secret": "${KEY}"}],
    }
    return build_catalogue(parse_config(data, env={"KEY": "not-a-real-key"}))


def where(specs: list[Any]) -> list[tuple[str, str]]:
    return [(s.upstream, s.upstream_model) for s in specs]


def test_fallbacks_are_the_other_upstreams_by_priority_under_their_own_ids() -> None:
    cat = catalogue({"name": "ark"}, {"name": "far", "preset": "byteplus", "priority": 20},
                    {"name": "near", "preset": "byteplus", "priority": 10},
                    {"name": "ark2", "priority": 10})
    spec = cat.resolve("doubao-seedance-2-0-260128")
    assert spec.upstream == "ark"
    assert where(cat.fallbacks(spec)) == [
        ("near", "dreamina-seedance-2-0-260128"), ("ark2", "doubao-seedance-2-0-260128"),
        ("far", "dreamina-seedance-2-0-260128")]
    # An alias keeps its family: sora-2 is the fast model everywhere.
    assert where(cat.fallbacks(cat.resolve("sora-2")))[0] == (
        "near", "dreamina-seedance-2-0-fast-260128")
    # A BytePlus name: near has it (lower priority than far), the others stand in.
    bp = cat.resolve("dreamina-seedance-2-0-260128")
    assert bp.upstream == "near"
    assert [s.upstream for s in cat.fallbacks(bp)] == ["ark", "ark2", "far"]


def test_priority_decides_which_upstream_owns_a_shared_name() -> None:
    cat = catalogue({"name": "first", "priority": 5}, {"name": "second", "priority": 1})
    spec = cat.resolve("doubao-seedance-2-0-260128")
    assert spec.upstream == "second"
    assert [s.upstream for s in cat.fallbacks(spec)] == ["first"]
    # Equal priorities keep the config's order, as before priorities existed.
    same = catalogue({"name": "first"}, {"name": "second"})
    assert same.resolve("doubao-seedance-2-0-260128").upstream == "first"


def test_a_reseller_stands_in_with_its_own_names_and_limits() -> None:
    cat = catalogue({"name": "ark"}, {"name": "wis", "preset": "wisgate", "priority": 1})
    [reseller] = cat.fallbacks(cat.resolve("doubao-seedance-2-0-fast-260128"))
    assert (reseller.upstream, reseller.upstream_model) == ("wis", "doubao-seedance-2-fast")
    assert reseller.ratios == ("16:9", "9:16", "1:1")
    assert cat.fallbacks(cat.resolve("doubao-seedance-2-5-260628")) == []  # no 2.5 there


def test_a_custom_model_has_no_stand_in_unless_it_names_a_family() -> None:
    cat = catalogue({"name": "ark"}, {"name": "bp", "preset": "byteplus"}, overrides=[
        {"name": "my-endpoint", "upstream": "ark", "upstream_model": "ep-1",
         "resolutions": ["720p"]},
        {"name": "my-fast", "upstream": "ark", "upstream_model": "ep-2",
         "resolutions": ["720p"], "family": "2.0-fast"},
    ])
    assert cat.fallbacks(cat.resolve("my-endpoint")) == []
    assert where(cat.fallbacks(cat.resolve("my-fast"))) == [
        ("bp", "dreamina-seedance-2-0-fast-260128")]


def test_an_override_moving_a_model_makes_the_preset_upstream_its_stand_in() -> None:
    cat = catalogue({"name": "ark"}, {"name": "ep", "priority": 3}, overrides=[
        {"name": "doubao-seedance-2-0-260128", "upstream": "ep", "upstream_model": "ep-9"}])
    spec = cat.resolve("doubao-seedance-2-0-260128")
    assert (spec.upstream, spec.upstream_model) == ("ep", "ep-9")
    # ark still serves the 2.0 family under its preset id.
    assert where(cat.fallbacks(spec)) == [("ark", "doubao-seedance-2-0-260128")]


def test_check_config_shows_priorities_and_where_each_model_fails_over(tmp_path: Path) -> None:
    config = {
        "upstreams": [
            {"name": "ark", "base_url": "https://ark.example/api/v3",
             "keys": [{"name": "main", "secret": "${UPSTREAM_KEY}"}]},
            {"name": "bp", "preset": "byteplus", "priority": 5,
             "base_url": "https://bp.example/api/v3",
             "keys": [{"name": "backup", "secret": "${UPSTREAM_KEY}"}]}],
        "client_keys": [{"name": "alice", "secret": "${ALICE_KEY}"}],
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    result = subprocess.run([sys.executable, "-m", "gateway", "check-config", str(path)],
                            capture_output=True, text=True, timeout=30,
                            env={"UPSTREAM_KEY": FAKE_UPSTREAM_KEY, "ALICE_KEY": FAKE_ALICE_KEY,
                                 "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    assert "(preset byteplus, priority 5," in result.stdout
    lines = result.stdout.splitlines()
    at = lines.index(next(line for line in lines
                          if line.startswith("  model doubao-seedance-2-0-260128 -> ark/")))
    assert lines[at + 1] == "    fails over to bp/dreamina-seedance-2-0-260128"
    assert FAKE_UPSTREAM_KEY not in result.stdout + result.stderr
