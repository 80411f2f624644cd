"""Admin input at its edges: model lists, huge integers, calendar days; budget resets in any TZ."""

from __future__ import annotations

import subprocess
import sys
import time
from calendar import timegm
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from gateway.catalog import preset_models
from gateway.errors import GatewayError
from gateway.keys.auth import ClientIdentity
from gateway.keys.policy import Policy
from gateway.store.base import KeyRecord, LimitRefusal, Limits, Reservation
from tests.conftest import GatewayFactory
from tests.leaks import CANARY_ADMIN_KEY
from tests.servers import FAKE_ALICE_KEY, FAKE_UPSTREAM_KEY, ServerThread

ADMIN = {"Authorization": f"Bearer {CANARY_ADMIN_KEY}"}
MODEL = "doubao-seedance-2-0-fast-260128"
MAX_COUNT = 2**53 - 1
YEAR_9999_END = 253402300799  # 9999-12-31T23:59:59Z


@pytest.fixture
def admin_gateway(simulator: ServerThread, start_gateway: GatewayFactory,
                  backend_url: str) -> ServerThread:
    return start_gateway(simulator.url + "/api/v3", store_url=backend_url,
                         extra={"admin": {"keys": [{"name": "ops", "secret": "${ADMIN_KEY}"}]}},
                         env={"ADMIN_KEY": CANARY_ADMIN_KEY})


def admin(gateway: ServerThread, method: str, path: str, body: Any = None) -> httpx.Response:
    return httpx.request(method, f"{gateway.url}/admin{path}", headers=ADMIN, json=body)


def openai_refusal(response: httpx.Response, param: str) -> str:
    """The message of a 400 in OpenAI's envelope naming `param`."""
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error" and error["param"] == param
    assert param in error["message"]
    return str(error["message"])


# models: [] and unknown names

def test_an_empty_model_list_is_refused_not_read_as_every_model(
    admin_gateway: ServerThread
) -> None:
    message = openai_refusal(admin(admin_gateway, "POST", "/keys",
                                   {"name": "kate", "models": []}), "models")
    assert "empty" in message
    assert admin(admin_gateway, "GET", "/keys/kate").status_code == 404  # nothing was created

    assert admin(admin_gateway, "POST", "/keys", {"name": "kate", "models": ["sora-2"]}
                 ).status_code == 201
    openai_refusal(admin(admin_gateway, "PATCH", "/keys/kate", {"models": []}), "models")
    assert admin(admin_gateway, "GET", "/keys/kate").json()["models"] == ["sora-2"]


def test_unknown_models_are_refused_naming_each_of_them(admin_gateway: ServerThread) -> None:
    body = {"name": "liam", "models": ["sora-2", "sora-3", "gpt-4o", "doubao-seedance-9"]}
    message = openai_refusal(admin(admin_gateway, "POST", "/keys", body), "models")
    for unknown in ("sora-3", "gpt-4o", "doubao-seedance-9"):
        assert f"'{unknown}'" in message
    assert "'sora-2'," not in message.split(";")[0]  # the known one is not called unknown
    assert admin(admin_gateway, "GET", "/keys/liam").status_code == 404

    assert admin(admin_gateway, "POST", "/keys", {"name": "liam"}).status_code == 201
    message = openai_refusal(admin(admin_gateway, "PATCH", "/keys/liam", {"models": ["nope"]}),
                             "models")
    assert "'nope'" in message
    assert admin(admin_gateway, "GET", "/keys/liam").json()["models"] == ["*"]


@pytest.mark.parametrize("models", [
    ["*"],
    [MODEL],  # a catalogue name
    ["sora-2", "doubao-seedance-2.0"],  # aliases
    None,  # null: every model
])
def test_known_models_aliases_and_star_are_accepted(admin_gateway: ServerThread,
                                                    models: list[str] | None) -> None:
    created = admin(admin_gateway, "POST", "/keys", {"name": "mia", "models": models})
    assert created.status_code == 201, created.text
    assert created.json()["models"] == (models or ["*"])


# huge integers

@pytest.mark.parametrize(("field", "value"), [
    ("max_in_flight", 9223372036854775808),  # one past SQLite's int64
    ("rpm", 2**53),
    ("daily_tokens", 2**64 - 1),  # still an integer to orjson
    ("daily_tokens", 2**64),  # a float to orjson
    ("monthly_tokens", 10**30),
    ("expires_at", 10**19),
    ("expires_at", 1e19),
    ("expires_at", YEAR_9999_END + 1),
    ("expires_at", -1),
])
@pytest.mark.parametrize("method", ["POST", "PATCH"])
def test_huge_integers_are_a_400_naming_the_field(admin_gateway: ServerThread, method: str,
                                                  field: str, value: float) -> None:
    if method == "POST":
        response = admin(admin_gateway, "POST", "/keys", {"name": "noah", field: value})
    else:
        assert admin(admin_gateway, "POST", "/keys", {"name": "noah"}).status_code == 201
        response = admin(admin_gateway, "PATCH", "/keys/noah", {field: value})
    openai_refusal(response, field)
    assert admin(admin_gateway, "GET", "/keys").status_code == 200  # the store is fine


def test_the_largest_allowed_values_are_stored_exactly(admin_gateway: ServerThread) -> None:
    limits = {"rpm": MAX_COUNT, "max_in_flight": MAX_COUNT, "daily_tokens": MAX_COUNT,
              "monthly_tokens": MAX_COUNT, "expires_at": YEAR_9999_END}
    created = admin(admin_gateway, "POST", "/keys", {"name": "olga", **limits})
    assert created.status_code == 201, created.text
    got = admin(admin_gateway, "GET", "/keys/olga").json()
    assert {field: got[field] for field in limits} == limits
    iso = admin(admin_gateway, "PATCH", "/keys/olga", {"expires_at": "9999-12-31T23:59:59Z"})
    assert iso.status_code == 200 and iso.json()["expires_at"] == YEAR_9999_END
    key = created.json()["key"]
    task = httpx.post(admin_gateway.url + "/api/v3/contents/generations/tasks",
                      headers={"Authorization": f"Bearer {key}"},
                      json={"model": MODEL, "content": [{"type": "text", "text": "x"}]})
    assert task.status_code == 200, task.text  # limits that large still let it work


# the usage report's days

@pytest.fixture
def usage_gateway(simulator: ServerThread, start_gateway: GatewayFactory) -> ServerThread:
    return start_gateway(simulator.url + "/api/v3",
                         extra={"admin": {"keys": [{"name": "ops", "secret": "${ADMIN_KEY}"}]}},
                         env={"ADMIN_KEY": CANARY_ADMIN_KEY})


@pytest.mark.parametrize(("params", "param"), [
    ({"from": "2026-99-99"}, "from"),
    ({"from": "2026-02-30", "to": "2026-03-01"}, "from"),
    ({"to": "2026-13-01"}, "to"),
    ({"from": "2026-11-01", "to": "2026-04-31"}, "to"),
    ({"from": "20261124"}, "from"),  # date.fromisoformat takes it; the API says YYYY-MM-DD
    ({"from": "2026-W48-1"}, "from"),
    ({"from": "2026-11-30", "to": "2026-11-01"}, "from"),  # from after to
])
def test_usage_days_must_be_real_days_in_order(usage_gateway: ServerThread,
                                               params: dict[str, str], param: str) -> None:
    response = httpx.get(f"{usage_gateway.url}/admin/usage", headers=ADMIN, params=params)
    openai_refusal(response, param)


def test_usage_days_that_exist_are_accepted(usage_gateway: ServerThread) -> None:
    for params in ({"from": "2028-02-29", "to": "2028-02-29"}, {"from": "2026-11-01"},
                   {"from": "2026-01-01", "to": "2026-12-31"}):
        response = httpx.get(f"{usage_gateway.url}/admin/usage", headers=ADMIN, params=params)
        assert response.status_code == 200, response.text
        assert response.json()["from"] == params["from"]


# the CLI says the same

def test_the_cli_refuses_what_the_api_refuses(simulator: ServerThread, tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({
        "upstreams": [{"name": "ark", "base_url": simulator.url + "/api/v3",
                       "keys": [{"name": "main", "secret": "${UPSTREAM_KEY}"}]}],
        "client_keys": [{"name": "alice", "secret": "${ALICE_KEY}"}],
        "store": {"url": f"sqlite:///{tmp_path}/tasks.db"},
    }))
    env = {"UPSTREAM_KEY": FAKE_UPSTREAM_KEY, "ALICE_KEY": FAKE_ALICE_KEY, "PATH": "/usr/bin"}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "gateway", *args[:1], "--config",
                               str(config), *args[1:]],
                              capture_output=True, text=True, env=env, timeout=30)

    unknown = cli("keys", "create", "pat", "--models", MODEL, "sora-3", "veo-3")
    assert unknown.returncode != 0 and unknown.stdout == ""
    assert "'sora-3'" in unknown.stderr and "'veo-3'" in unknown.stderr
    assert "Traceback" not in unknown.stderr
    assert cli("keys", "get", "pat").returncode != 0  # not created

    assert cli("keys", "create", "pat", "--models", MODEL).returncode == 0
    update = cli("keys", "update", "pat", "--models", MODEL, "nope")
    assert update.returncode != 0 and "'nope'" in update.stderr
    huge = cli("keys", "update", "pat", "--max-in-flight", "9223372036854775808")
    assert huge.returncode != 0 and "max_in_flight" in huge.stderr
    assert "Traceback" not in huge.stderr
    assert yaml.safe_load(cli("keys", "get", "pat").stdout)["models"] == [MODEL]

    for args, param in ((("--from", "2026-99-99"), "from"), (("--to", "2026-02-30"), "to"),
                        (("--from", "2026-11-30", "--to", "2026-11-01"), "from")):
        usage = cli("usage", *args)
        assert usage.returncode != 0 and param in usage.stderr, usage.stderr
        assert usage.stdout == ""
    assert cli("usage", "--from", "2026-11-01", "--to", "2026-11-30").returncode == 0


# budget resets are UTC whatever the machine's TZ

FAST = next(s for s in preset_models("volcengine", "ark") if s.name == MODEL)


class RefusingStore:
    """A limit store whose every reservation is over the given limit."""

    def __init__(self, limit: str) -> None:
        self.limit = limit

    async def reserve(self, reservation: Reservation, limits: Limits) -> LimitRefusal:
        return LimitRefusal(self.limit, allowed=1, used=1)


@pytest.fixture(params=[
    "UTC0",
    "CST-8",  # Asia/Shanghai, as a POSIX rule: no tz database needed
    "PST8PDT,M3.2.0,M11.1.0",  # America/Los_Angeles, with its DST switches
    "<+14>-14",  # Pacific/Kiritimati: a different UTC date most of the day
])
def machine_tz(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("TZ", request.param)
    time.tzset()
    try:
        yield request.param
    finally:
        monkeypatch.undo()
        time.tzset()


def utc(text: str) -> float:
    return float(timegm(time.strptime(text, "%Y-%m-%dT%H:%M:%S")))


@pytest.mark.anyio
@pytest.mark.parametrize(("now", "daily", "monthly"), [
    ("2026-11-24T12:00:00", 12 * 3600, 6 * 86400 + 12 * 3600),
    ("2026-11-30T12:00:00", 12 * 3600, 12 * 3600),  # the month's last day
    ("2026-12-31T23:59:30", 30, 30),  # the year's last half minute
    ("2026-02-28T00:00:00", 86400, 86400),
    ("2028-02-28T06:00:00", 18 * 3600, 86400 + 18 * 3600),  # a leap year
    ("2026-03-08T12:00:00", 12 * 3600, 23 * 86400 + 12 * 3600),  # US clocks moved that day
    ("2026-11-01T12:00:00", 12 * 3600, 29 * 86400 + 12 * 3600),  # and back that day
])
async def test_budget_retry_after_is_the_time_to_the_utc_reset(
    machine_tz: str, now: str, daily: int, monthly: int
) -> None:
    clock = utc(now)
    if machine_tz != "UTC0":  # the TZ really is in effect
        assert time.localtime(clock).tm_hour != time.gmtime(clock).tm_hour
    identity = ClientIdentity("quinn", frozenset(), KeyRecord(
        name="quinn", digest="0" * 64, prefix="sgw-", daily_tokens=1, monthly_tokens=1))
    for limit, expected in (("daily_tokens", daily), ("monthly_tokens", monthly)):
        policy = Policy(RefusingStore(limit), clock=lambda: clock)  # type: ignore[arg-type]
        with pytest.raises(GatewayError) as refused:
            await policy.hold(identity, FAST, 1000)
        assert refused.value.status == 429 and refused.value.code == f"{limit}_exceeded"
        assert refused.value.headers["retry-after"] == str(expected), (limit, machine_tz)
