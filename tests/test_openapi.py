"""/openapi.json: a valid OpenAPI 3.1 document, naming every route served, and true of the
gateway's live answers (status declared, content type declared, body matching its schema)."""

from __future__ import annotations

import time
from typing import Any

import httpx
import orjson
import pytest
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate as validate_spec
from starlette.routing import Route

from gateway.openapi import document
from tests.conftest import GatewayFactory, SimulatorFactory
from tests.leaks import CANARY_ADMIN_KEY
from tests.servers import FAKE_ALICE_KEY, FAKE_BOB_KEY, ServerThread

ALICE = {"Authorization": f"Bearer {FAKE_ALICE_KEY}"}
BOB = {"Authorization": f"Bearer {FAKE_BOB_KEY}"}
ADMIN = {"Authorization": f"Bearer {CANARY_ADMIN_KEY}"}
NATIVE = "/api/v3/contents/generations/tasks"
NATIVE_BODY = {"model": "doubao-seedance-2-0-fast-260128",
               "content": [{"type": "text", "text": "a kite over a beach"}]}
MAX_BODY = 64 * 1024
# People's pages, not an API (gateway/surfaces/console.py).
UNDOCUMENTED = {"/", "/console", "/console/", "/console/{name}", "/docs"}


@pytest.fixture
def live(start_simulator: SimulatorFactory, start_gateway: GatewayFactory) -> ServerThread:
    simulator = start_simulator(delay=0.3)
    return start_gateway(simulator.url + "/api/v3", bob_models=("sora-2",),
                         extra={"admin": {"keys": [{"name": "ops", "secret": "${ADMIN_KEY}"}]},
                                "server": {"max_body_bytes": MAX_BODY}},
                         env={"ADMIN_KEY": CANARY_ADMIN_KEY})


class Conformance:
    """Checks live answers against the document the gateway serves; remembers what it saw."""

    def __init__(self, gateway: ServerThread) -> None:
        self.url = gateway.url
        self.document: dict[str, Any] = httpx.get(gateway.url + "/openapi.json").json()
        self.seen: set[tuple[str, str, int]] = set()

    def call(self, method: str, template: str, status: int, *, path: str | None = None,
             **kwargs: Any) -> httpx.Response:
        response = httpx.request(method, self.url + (path or template), timeout=30, **kwargs)
        assert response.status_code == status, (method, path or template, response.text)
        self.check(method, template, response)
        return response

    def check(self, method: str, template: str, response: httpx.Response) -> None:
        operation = self.document["paths"][template][method.lower()]
        declared = operation["responses"].get(str(response.status_code))
        assert declared is not None, (method, template, response.status_code, response.text)
        self.seen.add((method, template, response.status_code))
        content = declared.get("content")
        if not content:
            return
        media = response.headers["content-type"].split(";")[0].strip()
        assert media in content, (method, template, media, list(content))
        schema = content[media].get("schema", {})
        if media == "application/json":
            Draft202012Validator({**schema, "components": self.document["components"]}
                                 ).validate(response.json())


def test_the_document_is_valid_openapi_3_1(live: ServerThread) -> None:
    served = httpx.get(live.url + "/openapi.json")
    assert served.status_code == 200 and served.headers["content-type"] == "application/json"
    spec = orjson.loads(served.content)
    validate_spec(spec)
    assert spec["openapi"] == "3.1.0"
    validate_spec(document())  # every area, whatever the config serves
    operation_ids = [op["operationId"] for item in spec["paths"].values()
                     for key, op in item.items() if key != "parameters"]
    assert len(operation_ids) == len(set(operation_ids))
    assert served.content == httpx.get(live.url + "/openapi.json").content  # cached bytes


def test_every_route_served_is_described_and_nothing_else(live: ServerThread) -> None:
    paths = orjson.loads(httpx.get(live.url + "/openapi.json").content)["paths"]
    app = live.app.app
    served = {(r.path, m.lower()) for r in app.routes if isinstance(r, Route)
              for m in (r.methods or ()) if m != "HEAD" and r.path not in UNDOCUMENTED}
    described = {(p, m) for p, item in paths.items() for m in item if m != "parameters"}
    assert served == described


def test_metrics_off_is_not_described(simulator: ServerThread,
                                      start_gateway: GatewayFactory) -> None:
    gateway = start_gateway(simulator.url + "/api/v3", extra={"metrics": {"enabled": False}})
    paths = httpx.get(gateway.url + "/openapi.json").json()["paths"]
    assert "/metrics" not in paths and "/healthz" in paths


def _wait_done(check: Conformance, video_id: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        video = check.call("GET", "/v1/videos/{video_id}", 200, path=f"/v1/videos/{video_id}",
                           headers=ALICE).json()
        if video["status"] == "completed":
            return
        time.sleep(0.2)
    raise AssertionError(f"video {video_id} did not complete")


def test_live_answers_conform_to_the_document(live: ServerThread) -> None:
    check = Conformance(live)
    c = check.call
    # Operations
    c("GET", "/healthz", 200)
    c("GET", "/readyz", 200)
    c("GET", "/metrics", 200)
    c("GET", "/openapi.json", 200)
    c("POST", "/ark/callbacks/{owner}", 200, path="/ark/callbacks/alice", json={"id": "x"})
    c("GET", "/files/{task_id}/{name}", 404, path="/files/cgt-1/video.mp4")

    # Native surface
    task_id = c("POST", NATIVE, 200, headers=ALICE, json=NATIVE_BODY).json()["id"]
    c("GET", NATIVE + "/{task_id}", 200, path=f"{NATIVE}/{task_id}", headers=ALICE)
    c("GET", NATIVE, 200, headers=ALICE, params={"page_size": 5})
    c("GET", NATIVE, 400, headers=ALICE, params={"page_size": 0})
    c("POST", NATIVE, 400, headers=ALICE, content=b"{not json")
    c("POST", NATIVE, 401, json=NATIVE_BODY)
    c("POST", NATIVE, 403, headers=BOB, json=NATIVE_BODY)
    c("POST", NATIVE, 404, headers=ALICE, json={**NATIVE_BODY, "model": "no-such-model"})
    c("GET", NATIVE + "/{task_id}", 404, path=f"{NATIVE}/cgt-nope", headers=ALICE)
    c("POST", NATIVE, 413, headers=ALICE, content=b"{" + b" " * MAX_BODY + b"}")
    c("POST", NATIVE, 200, headers={**ALICE, "Idempotency-Key": "k1"}, json=NATIVE_BODY)
    c("POST", NATIVE, 409, headers={**ALICE, "Idempotency-Key": "k1"},
      json={**NATIVE_BODY, "seed": 3})

    # OpenAI surface
    video = c("POST", "/v1/videos", 200, headers=ALICE,
              json={"model": "sora-2", "prompt": "a red fox", "seconds": "5"}).json()
    c("POST", "/v1/videos", 200, headers=ALICE,
      data={"model": "sora-2", "prompt": "a grey owl"}, files={"unused": ("a.txt", b"x")})
    _wait_done(check, video["id"])
    one = f"/v1/videos/{video['id']}"
    content = "/v1/videos/{video_id}/content"
    c("GET", content, 200, path=one + "/content", headers=ALICE)
    c("GET", content, 206, path=one + "/content", headers={**ALICE, "Range": "bytes=0-9"})
    c("GET", content, 416, path=one + "/content",
      headers={**ALICE, "Range": "bytes=999999999-"})
    c("GET", content, 404, path=one + "/content", headers=ALICE,
      params={"variant": "spritesheet"})
    c("GET", content, 400, path=one + "/content", headers=ALICE, params={"variant": "x"})
    c("GET", "/v1/videos", 200, headers=ALICE, params={"limit": 2})
    c("GET", "/v1/videos", 400, headers=ALICE, params={"order": "sideways"})
    c("POST", "/v1/videos/{video_id}/remix", 400, path=one + "/remix", headers=ALICE)
    c("POST", "/v1/videos", 415, headers={**ALICE, "content-type": "text/plain"},
      content=b"hi")
    c("POST", "/v1/videos", 403, headers=BOB, json={"model": "sora-2-pro", "prompt": "p"})
    c("DELETE", "/v1/videos/{video_id}", 200, path=one, headers=ALICE)
    c("GET", "/v1/videos/{video_id}", 404, path=one, headers=ALICE)
    c("GET", "/v1/videos", 401)

    # Models
    c("GET", "/v1/models", 200, headers=BOB)
    c("GET", "/v1/models/{model}", 200, path="/v1/models/sora-2", headers=BOB)
    c("GET", "/v1/models/{model}", 404, path="/v1/models/sora-2-pro", headers=BOB)

    # Admin API, and a stored key's limits
    keys = "/admin/keys"
    named = "/admin/keys/{name}"
    c("GET", keys, 401, headers={"Authorization": "Bearer wrong"})
    c("POST", keys, 400, headers=ADMIN, json={"name": "x", "rpm": 0})
    member = c("POST", keys, 201, headers=ADMIN, json={"name": "member", "rpm": 1}).json()
    c("POST", keys, 409, headers=ADMIN, json={"name": "member"})
    c("GET", keys, 200, headers=ADMIN)
    c("GET", named, 200, path=keys + "/member", headers=ADMIN)
    c("GET", named, 404, path=keys + "/nobody", headers=ADMIN)
    c("PATCH", named, 200, path=keys + "/member", headers=ADMIN, json={"daily_tokens": 10**6})
    member_auth = {"Authorization": f"Bearer {member['key']}"}
    c("GET", "/v1/videos", 200, headers=member_auth)
    c("GET", "/v1/videos", 429, headers=member_auth)
    c("GET", "/admin/usage", 200, headers=ADMIN)
    c("GET", "/admin/usage", 400, headers=ADMIN, params={"from": "yesterday"})
    c("GET", "/admin/webhooks/failed", 200, headers=ADMIN)
    c("GET", named + "/webhook-secret", 200, path=keys + "/member/webhook-secret",
      headers=ADMIN)
    c("POST", named + "/rotate-webhook-secret", 200, path=keys + "/member/rotate-webhook-secret",
      headers=ADMIN)
    c("POST", named + "/rotate", 200, path=keys + "/member/rotate", headers=ADMIN)
    c("DELETE", named, 200, path=keys + "/member", headers=ADMIN)
    c("POST", named + "/rotate", 409, path=keys + "/member/rotate", headers=ADMIN)

    paths = check.document["paths"]
    if "/me" in paths:  # built in parallel (issue 11): described once served
        c("GET", "/me", 200, headers=ALICE)
        c("GET", "/me", 401)
    if "/admin/tasks" in paths:
        c("GET", "/admin/tasks", 200, headers=ADMIN, params={"limit": 5})
    if "/admin/stats" in paths:
        c("GET", "/admin/stats", 200, headers=ADMIN)

    statuses = {status for _, _, status in check.seen}
    assert {200, 201, 206, 400, 401, 403, 404, 409, 413, 415, 416, 429} <= statuses
