"""Auth, request ids, the request log, latency and injected faults on /api/v3 requests."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import pytest

from .simkit import KEY, TASKS, Sim

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("authorization", [None, "Bearer wrong-key", f"Basic {KEY}", "Bearer "])
async def test_bad_or_missing_key_gets_arks_exact_401(
    make_sim: Callable[..., Sim], authorization: str | None,
) -> None:
    sim = make_sim()
    headers = {} if authorization is None else {"Authorization": authorization}
    client = httpx.AsyncClient(transport=httpx.ASGITransport(sim.app), base_url="http://sim.test")
    response = await client.get(f"{TASKS}/cgt-20250331175019-68d9t", headers=headers)

    assert response.status_code == 401
    assert response.headers["x-error-code"] == "AuthN_MissOrInvalidAuthorizationHeader"
    request_id = response.headers["x-request-id"]
    assert response.json() == {"error": {
        "code": "AuthenticationError",
        "message": "the API key or AK/SK in the request is missing or invalid. "
                   f"request id: {request_id}",
        "param": "",
        "type": "Unauthorized",
    }}


async def test_any_configured_key_is_accepted(make_sim: Callable[..., Sim]) -> None:
    sim = make_sim(upstream_keys=("key-a", "key-b"))
    response = await sim.client.get(TASKS, headers={"Authorization": "Bearer key-b"})
    assert response.status_code == 200


async def test_request_ids_are_sent_and_client_request_id_echoed(
    make_sim: Callable[..., Sim],
) -> None:
    sim = make_sim()
    first = await sim.client.get(TASKS, headers={"X-Client-Request-Id": "20260101000000abc"})
    second = await sim.client.get(TASKS)

    assert first.headers["x-client-request-id"] == "20260101000000abc"
    assert "x-client-request-id" not in second.headers
    assert first.headers["x-request-id"] != second.headers["x-request-id"]


async def test_error_messages_end_with_the_request_id(make_sim: Callable[..., Sim]) -> None:
    sim = make_sim()
    response = await sim.client.get(f"{TASKS}/cgt-missing")
    error = response.json()["error"]
    assert set(error) == {"code", "message", "param", "type"}
    assert error["message"].endswith(f"Request id: {response.headers['x-request-id']}")


async def test_unknown_routes_answer_in_the_ark_envelope(make_sim: Callable[..., Sim]) -> None:
    sim = make_sim()
    missing = await sim.client.get("/api/v3/no/such/route")
    wrong_method = await sim.client.put(TASKS)

    assert missing.status_code == 404
    assert missing.json()["error"]["type"] == "NotFound"
    assert wrong_method.status_code == 405
    assert "POST" in wrong_method.headers["allow"]


async def test_every_api_request_is_recorded_as_received(make_sim: Callable[..., Sim]) -> None:
    sim = make_sim()
    await sim.client.post(TASKS, content=b'{"not": "valid"', headers={"X-Trace": "t1"})
    await sim.client.get(TASKS, params={"page_size": "5"}, headers={"Authorization": "Bearer x"})
    await sim.client.get("/_sim/faults")  # control routes are not API traffic

    first, second = sim.state.requests
    assert (first.method, first.path, first.body) == ("POST", TASKS, b'{"not": "valid"')
    assert first.headers["authorization"] == f"Bearer {KEY}"
    assert first.headers["x-trace"] == "t1"
    assert (second.query, second.headers["authorization"]) == ("page_size=5", "Bearer x")

    listed = (await sim.client.get("/_sim/requests")).json()
    assert [seen["path"] for seen in listed] == [TASKS, TASKS]
    assert listed[0]["body"] == '{"not": "valid"'
    assert (await sim.client.delete("/_sim/requests")).status_code == 200
    assert (await sim.client.get("/_sim/requests")).json() == []


async def test_recorded_bodies_are_cut_at_64_kib_and_the_log_is_bounded(
    make_sim: Callable[..., Sim],
) -> None:
    sim = make_sim()
    big = b'{"model": "' + b"x" * 100_000 + b'"}'
    response = await sim.client.post(TASKS, content=big)
    assert response.status_code == 404  # the handler still saw the whole body
    assert sim.state.requests[-1].body == big[:65536]

    for _ in range(1005):
        await sim.client.get(f"{TASKS}/cgt-x")
    assert len(sim.state.requests) == 1000


async def test_latency_delays_api_requests(make_sim: Callable[..., Sim]) -> None:
    sim = make_sim(latency=0.05)
    started = time.perf_counter()
    await sim.client.get(TASKS)
    assert time.perf_counter() - started >= 0.05


async def test_seeded_fault_rates_are_reproducible_and_ark_shaped(
    make_sim: Callable[..., Sim],
) -> None:
    async def statuses(sim: Sim) -> list[int]:
        return [(await sim.client.get(TASKS)).status_code for _ in range(200)]

    sim = make_sim(error_rate=0.3, rate_limit_rate=0.2, seed=7)
    seen = await statuses(sim)
    assert seen == await statuses(make_sim(error_rate=0.3, rate_limit_rate=0.2, seed=7))
    assert 40 <= seen.count(500) <= 80
    assert 20 <= seen.count(429) <= 60
    assert seen.count(200) == 200 - seen.count(500) - seen.count(429)

    sim.state.faults.error_rate = 1.0
    error = (await sim.client.get(TASKS)).json()["error"]
    assert (error["code"], error["type"]) == ("InternalServiceError", "InternalServerError")
    sim.state.faults.error_rate, sim.state.faults.rate_limit_rate = 0.0, 1.0
    error = (await sim.client.get(TASKS)).json()["error"]
    assert error["code"].startswith("RateLimitExceeded")
    assert error["type"] == "TooManyRequests"


async def test_fault_knobs_can_be_changed_over_http(make_sim: Callable[..., Sim]) -> None:
    sim = make_sim()
    response = await sim.client.post("/_sim/faults", json={"error_rate": 1, "video_bytes": 4096})
    assert response.status_code == 200
    assert response.json()["error_rate"] == 1
    assert sim.state.faults.video_bytes == 4096
    assert (await sim.client.get(TASKS)).status_code == 500

    for bad in ({"error_rate": 1.5}, {"latency": -1}, {"url_ttl": 1.5}, {"delay": True},
                {"colour": 1}, [1]):
        assert (await sim.client.post("/_sim/faults", json=bad)).status_code == 400, bad
    assert (await sim.client.post("/_sim/faults", content=b"{")).status_code == 400
    assert (await sim.client.get("/_sim/faults")).json()["error_rate"] == 1
