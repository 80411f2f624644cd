"""Key lifecycle through the admin API and the CLI; stored keys on both surfaces."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog
import yaml

from tests.backends import stored_bytes
from tests.conftest import GatewayFactory
from tests.leaks import CANARY_ADMIN_KEY
from tests.servers import FAKE_ALICE_KEY, FAKE_UPSTREAM_KEY, ServerThread

ADMIN_KEY = CANARY_ADMIN_KEY
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
MODEL = "doubao-seedance-2-0-fast-260128"
TEXT = [{"type": "text", "text": "a kite"}]


@pytest.fixture
def admin_gateway(simulator: ServerThread, start_gateway: GatewayFactory,
                  backend_url: str) -> ServerThread:
    return start_gateway(simulator.url + "/api/v3", store_url=backend_url,
                         extra={"admin": {"keys": [{"name": "ops", "secret": "${ADMIN_KEY}"}]}},
                         env={"ADMIN_KEY": ADMIN_KEY})


def admin(gateway: ServerThread, method: str, path: str, **kwargs: Any) -> httpx.Response:
    return httpx.request(method, f"{gateway.url}/admin/keys{path}", headers=ADMIN, **kwargs)


def as_key(gateway: ServerThread, key: str, method: str, path: str,
           **kwargs: Any) -> httpx.Response:
    return httpx.request(method, gateway.url + path, headers={"Authorization": f"Bearer {key}"},
                         **kwargs)


def native_create(gateway: ServerThread, key: str) -> httpx.Response:
    return as_key(gateway, key, "POST", "/api/v3/contents/generations/tasks",
                  json={"model": MODEL, "content": TEXT})


def test_lifecycle_through_the_admin_api(admin_gateway: ServerThread, backend_url: str) -> None:
    gw = admin_gateway
    with structlog.testing.capture_logs() as logs:
        created = admin(gw, "POST", "", json={"name": "carol", "rpm": 30, "models": [MODEL]})
    assert created.status_code == 201, created.text
    secret = created.json()["key"]
    assert secret.startswith("sgw-") and created.json()["prefix"] == secret[:10]
    assert {"actor": "ops", "action": "create", "key_name": "carol"}.items() <= logs[0].items()

    # Stored only as a hash: the secret is nowhere in the store, its digest is.
    held = stored_bytes(backend_url)
    assert secret.encode() not in held
    assert hashlib.sha256(secret.encode()).hexdigest().encode() in held

    listing = admin(gw, "GET", "").json()["data"]
    assert {k["name"]: k["source"] for k in listing} == {
        "alice": "config", "bob": "config", "carol": "store"}
    assert all("key" not in k and "digest" not in k for k in listing)
    assert secret not in admin(gw, "GET", "").text + admin(gw, "GET", "/carol").text

    # The new key works on both surfaces and owns its tasks.
    task = native_create(gw, secret)
    assert task.status_code == 200, task.text
    videos = as_key(gw, secret, "GET", "/v1/videos").json()["data"]
    assert [v["id"] for v in videos] == [task.json()["id"]]
    assert as_key(gw, FAKE_ALICE_KEY, "GET", f"/v1/videos/{task.json()['id']}").status_code == 404
    assert as_key(gw, secret, "POST", "/v1/videos",
                  json={"prompt": "x", "model": "sora-2"}).status_code == 403  # not allowed

    updated = admin(gw, "PATCH", "/carol", json={"rpm": 60, "models": None})
    assert updated.status_code == 200 and updated.json()["rpm"] == 60
    assert updated.json()["models"] == ["*"]

    rotated = admin(gw, "POST", "/carol/rotate").json()
    assert rotated["key"] != secret
    assert native_create(gw, secret).status_code == 401
    assert native_create(gw, rotated["key"]).status_code == 200
    # Rotation keeps the owner: the task created before is still the key's.
    assert as_key(gw, rotated["key"], "GET",
                  f"/v1/videos/{task.json()['id']}").status_code == 200

    revoked = admin(gw, "DELETE", "/carol")
    assert revoked.status_code == 200 and revoked.json()["revoked"] is True
    for path in ("/v1/videos", "/api/v3/contents/generations/tasks"):
        assert as_key(gw, rotated["key"], "GET", path).status_code == 401


@pytest.mark.parametrize(
    ("change", "code"), [({"disabled": True}, "key_disabled"), ({"expires_at": 1}, "key_expired")]
)
def test_disabled_and_expired_keys_are_403_on_both_surfaces(
    admin_gateway: ServerThread, change: dict[str, Any], code: str
) -> None:
    secret = admin(admin_gateway, "POST", "", json={"name": "dave"}).json()["key"]
    admin(admin_gateway, "PATCH", "/dave", json=change)
    native = native_create(admin_gateway, secret)
    openai = as_key(admin_gateway, secret, "POST", "/v1/videos", json={"prompt": "x"})
    for response in (native, openai):
        assert response.status_code == 403
        assert response.json()["error"]["code"] == code
    assert native.json()["error"]["type"] == "Forbidden"
    assert openai.json()["error"]["type"] == "permission_error"
    if "disabled" in change:
        admin(admin_gateway, "PATCH", "/dave", json={"disabled": False})
        assert native_create(admin_gateway, secret).status_code == 200


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "code"),
    [
        ("POST", "", {"name": "alice"}, 409, "key_conflict"),  # a config key's name
        ("POST", "", {"name": "bad name!"}, 400, "invalid_value"),
        ("POST", "", {"name": "erin", "rpm": 0}, 400, "invalid_value"),
        ("POST", "", {"name": "erin", "surprise": 1}, 400, "invalid_value"),
        ("POST", "", {"name": "erin", "expires_at": "tomorrow"}, 400, "invalid_value"),
        ("GET", "/nobody", None, 404, "key_not_found"),
        ("PATCH", "/alice", {"rpm": 5}, 409, "key_conflict"),
        ("POST", "/alice/rotate", None, 409, "key_conflict"),
    ],
)
def test_admin_api_refusals(admin_gateway: ServerThread, method: str, path: str,
                            body: dict[str, Any] | None, status: int, code: str) -> None:
    response = admin(admin_gateway, method, path, json=body)
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code


def test_duplicate_names_and_admin_auth(admin_gateway: ServerThread) -> None:
    assert admin(admin_gateway, "POST", "", json={"name": "frank"}).status_code == 201
    assert admin(admin_gateway, "POST", "", json={"name": "frank"}).status_code == 409
    for headers in ({}, {"Authorization": "Bearer nope"},
                    {"Authorization": f"Bearer {FAKE_ALICE_KEY}"}):
        response = httpx.get(f"{admin_gateway.url}/admin/keys", headers=headers)
        assert response.status_code == 401
        assert response.json()["error"]["type"] == "authentication_error"


def test_lifecycle_through_the_cli(simulator: ServerThread, start_gateway: GatewayFactory,
                                   tmp_path: Path, backend_url: str) -> None:
    db = backend_url
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({
        "upstreams": [{"name": "ark", "base_url": simulator.url + "/api/v3",
                       "keys": [{"name": "main", "secret": "${UPSTREAM_KEY}"}]}],
        "client_keys": [{"name": "alice", "secret": "${ALICE_KEY}"}],
        "store": {"url": db},
    }))
    env = {"UPSTREAM_KEY": FAKE_UPSTREAM_KEY, "ALICE_KEY": FAKE_ALICE_KEY, "PATH": "/usr/bin"}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "gateway", "keys", "--config", str(config),
                               *args], capture_output=True, text=True, env=env, timeout=30)

    created = cli("create", "grace", "--daily-tokens", "1000000", "--models", MODEL)
    assert created.returncode == 0, created.stderr
    secret = yaml.safe_load(created.stdout)["key"]
    assert "shown only now" in created.stderr
    gateway = start_gateway(simulator.url + "/api/v3", store_url=db)
    assert native_create(gateway, secret).status_code == 200

    listed = cli("list")
    assert listed.returncode == 0 and secret not in listed.stdout
    assert {k["name"] for k in yaml.safe_load(listed.stdout)} == {"alice", "grace"}
    assert yaml.safe_load(cli("update", "grace", "--rpm", "12").stdout)["rpm"] == 12
    assert yaml.safe_load(cli("get", "grace").stdout)["daily_tokens"] == 1000000
    new_secret = yaml.safe_load(cli("rotate", "grace").stdout)["key"]
    assert new_secret != secret
    assert yaml.safe_load(cli("revoke", "grace").stdout)["revoked"] is True
    again = cli("update", "grace", "--rpm", "1")
    assert again.returncode == 1 and "revoked" in again.stderr
    assert cli("create", "alice").returncode == 1  # a config key's name
