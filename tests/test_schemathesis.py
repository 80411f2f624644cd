"""schemathesis against a live gateway and simulator, driven by the gateway's own /openapi.json.

Every operation gets generated requests that fit the document (positive) and that do not
(negative), sent with the key its `security` names; operations with a task id also get valid
requests for a real task. Every answer must be no 5xx, a declared status, a declared content
type and a body matching its schema. Failures are collected (not shrunk: that would take
minutes) and all reported at once. Deterministic: derandomized, no example database.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.configuration import set_hypothesis_home_dir
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.conftest import GatewayFactory, SimulatorFactory
from tests.leaks import CANARY_ADMIN_KEY
from tests.servers import FAKE_ALICE_KEY, ServerThread

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]
MIN_CASES = 2000
MAX_EXAMPLES = {schemathesis.GenerationMode.POSITIVE: 50,
                schemathesis.GenerationMode.NEGATIVE: 30}
REAL_ID_EXAMPLES = 20
ID_PARAMS = ("task_id", "video_id")
MEMBER = "member"  # a stored key, so the admin routes on /admin/keys/{name} find one


@pytest.fixture
def no_storage_in_the_repo(tmp_path: Path) -> Iterator[None]:
    """Hypothesis caches what it learns under ./.hypothesis even without an example database:
    into the test's folder instead."""
    set_hypothesis_home_dir(tmp_path / "hypothesis")
    yield
    set_hypothesis_home_dir(None)


@pytest.fixture
def live(start_simulator: SimulatorFactory, start_gateway: GatewayFactory) -> ServerThread:
    simulator = start_simulator(delay=0.05)
    return start_gateway(simulator.url + "/api/v3",
                         extra={"admin": {"keys": [{"name": "ops", "secret": "${ADMIN_KEY}"}]}},
                         env={"ADMIN_KEY": CANARY_ADMIN_KEY})


def _real_task(gateway: ServerThread) -> str:
    created = httpx.post(gateway.url + "/v1/videos",
                         headers={"Authorization": f"Bearer {FAKE_ALICE_KEY}"},
                         json={"model": "sora-2", "prompt": "a lighthouse at dusk"})
    assert created.status_code == 200, created.text
    task_id: str = created.json()["id"]
    return task_id


def _auth(operation: Any) -> dict[str, str]:
    security = operation.definition.raw.get("security")
    if security is not None and any("AdminKey" in s for s in security):
        return {"Authorization": f"Bearer {CANARY_ADMIN_KEY}"}
    if security is not None and not any(security):
        return {}  # no auth: none sent
    return {"Authorization": f"Bearer {FAKE_ALICE_KEY}"}


def _run(operation: Any, mode: schemathesis.GenerationMode, examples: int, url: str,
         counts: Counter[str], failures: list[str],
         path_parameters: dict[str, Any] | None = None) -> None:
    headers = _auth(operation)
    strategy = operation.as_strategy(generation_mode=mode, path_parameters=path_parameters)

    @settings(max_examples=examples, derandomize=True, database=None, deadline=None,
              phases=[Phase.explicit, Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(case=strategy)
    def each(case: Any) -> None:
        counts[operation.label] += 1
        try:
            case.call_and_validate(base_url=url, headers=headers, checks=CHECKS, timeout=30)
        except (Exception, BaseExceptionGroup) as exc:  # collected, none shrunk
            failures.append(f"{operation.label} [{mode.value}]: {str(exc)[:1500]}")

    try:
        each()
    except Exception as exc:  # an operation the mode cannot generate for (no inputs at all)
        if "Unsatisfiable" not in type(exc).__name__ and "negative" not in str(exc).lower():
            raise


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.usefixtures("no_storage_in_the_repo")
def test_schemathesis_finds_no_server_error_and_no_nonconformance(live: ServerThread) -> None:
    assert httpx.post(live.url + "/admin/keys", json={"name": MEMBER},
                      headers={"Authorization": f"Bearer {CANARY_ADMIN_KEY}"}
                      ).status_code == 201
    real_id = _real_task(live)
    schema = schemathesis.openapi.from_url(live.url + "/openapi.json")
    counts: Counter[str] = Counter()
    failures: list[str] = []
    started = time.monotonic()
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode, examples in MAX_EXAMPLES.items():
            _run(operation, mode, examples, live.url, counts, failures)
        names = {p.name for p in operation.path_parameters}
        fixed = {n: real_id for n in names & set(ID_PARAMS)}
        if "name" in names and operation.path.startswith("/admin/"):
            fixed["name"] = MEMBER
        if fixed:
            _run(operation, schemathesis.GenerationMode.POSITIVE, REAL_ID_EXAMPLES, live.url,
                 counts, failures, path_parameters=fixed)
    elapsed = time.monotonic() - started
    total = sum(counts.values())
    print(f"schemathesis: {total} cases over {len(counts)} operations in {elapsed:.1f} s")
    print("\n".join(f"  {n:5d} {label}" for label, n in sorted(counts.items())))
    assert not failures, f"{len(failures)} failures:\n" + "\n\n".join(failures[:30])
    assert total >= MIN_CASES, counts
