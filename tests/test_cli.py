"""The command line as a user runs it: demo, serve, check-config, simulate."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml
from volcenginesdkarkruntime import Ark

from tests.servers import FAKE_ALICE_KEY, FAKE_UPSTREAM_KEY, CliProcess, free_port

pytestmark = pytest.mark.filterwarnings("ignore:The Sora API:DeprecationWarning")


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gateway", *args], capture_output=True,
                          text=True, timeout=30, env=env)


def test_demo_serves_the_ark_sdk_and_openai_with_two_keys(tmp_path: Path) -> None:
    port = free_port()
    # A machine whose environment names a proxy (that could never reach this machine's
    # loopback): the demo's embedded simulator is still called directly.
    dead_proxy = f"http://127.0.0.1:{free_port()}"
    demo = CliProcess(["demo", "--port", str(port), "--client-key", "sgw-demo-one",
                       "--client-key", "sgw-demo-two", "--sim-delay", "0.3",
                       "--store", f"sqlite:///{tmp_path}/demo.db"],
                      port=port, log=tmp_path / "demo.log",
                      env={"HTTP_PROXY": dead_proxy, "HTTPS_PROXY": dead_proxy, "NO_PROXY": ""})
    try:
        demo.wait_ready()
        banner = demo.output()
        assert f"http://127.0.0.1:{port}" in banner and "sgw-demo-two" in banner
        assert "curl" in banner and "volcenginesdkarkruntime" in banner

        ark = Ark(base_url=demo.url + "/api/v3", api_key="sgw-demo-one", max_retries=0)
        task = ark.content_generation.tasks.create(
            model="doubao-seedance-2.0", content=[{"type": "text", "text": "a lighthouse"}])
        deadline = time.monotonic() + 10
        while (got := ark.content_generation.tasks.get(task_id=task.id)).status != "succeeded":
            assert time.monotonic() < deadline, got.status
            time.sleep(0.1)
        assert ark.content_generation.tasks.list().total == 1
        other = Ark(base_url=demo.url + "/api/v3", api_key="sgw-demo-two", max_retries=0)
        assert other.content_generation.tasks.list().total == 0
        ark.content_generation.tasks.delete(task_id=task.id)

        from openai import OpenAI  # the OpenAI surface works out of the box with sora-2
        video = OpenAI(base_url=demo.url + "/v1", api_key="sgw-demo-two").videos.create(
            prompt="x", model="sora-2")
        assert video.model == "sora-2"
    finally:
        demo.stop()


def write_config(tmp_path: Path, upstream_url: str, **changes: object) -> Path:
    data = {
        "server": {"host": "127.0.0.1"},
        "upstreams": [{"name": "ark", "base_url": upstream_url,
                       "keys": [{"name": "main", "secret": "${UPSTREAM_KEY}"}]}],
        "client_keys": [{"name": "alice", "secret": "${ALICE_KEY}"}],
        "store": {"url": f"sqlite:///{tmp_path}/tasks.db"},
        **changes,
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


ENV = {"UPSTREAM_KEY": FAKE_UPSTREAM_KEY, "ALICE_KEY": FAKE_ALICE_KEY, "PATH": "/usr/bin:/bin"}


def test_check_config_prints_what_it_understood_with_secrets_masked(tmp_path: Path) -> None:
    path = write_config(tmp_path, "https://ark.example/api/v3")
    result = run_cli("check-config", str(path), env=ENV)
    assert result.returncode == 0, result.stderr
    assert "upstream ark: https://ark.example/api/v3" in result.stdout
    assert "model doubao-seedance-2-0-260128" in result.stdout
    assert FAKE_UPSTREAM_KEY not in result.stdout + result.stderr
    assert FAKE_ALICE_KEY not in result.stdout + result.stderr


def test_check_config_masks_passwords_inside_the_store_and_proxy_urls(tmp_path: Path) -> None:
    path = write_config(tmp_path, "https://ark.example/api/v3",
                        store={"url": "redis://:${REDIS_PASSWORD}@redis.internal:6379/0"})
    data = yaml.safe_load(path.read_text())
    data["upstreams"][0]["proxy"] = "http://egress:${PROXY_PASSWORD}@proxy.internal:3128"
    path.write_text(yaml.safe_dump(data))
    env = {**ENV, "REDIS_PASSWORD": "canary-redis-pw-J3k9", "PROXY_PASSWORD": "canary-proxy-L5q2"}
    result = run_cli("check-config", str(path), env=env)
    assert result.returncode == 0, result.stderr
    assert "store: redis://:****@redis.internal:6379/0" in result.stdout
    assert "proxy: http://egress:****@proxy.internal:3128" in result.stdout
    for secret in ("canary-redis-pw-J3k9", "canary-proxy-L5q2", FAKE_UPSTREAM_KEY):
        assert secret not in result.stdout + result.stderr


def test_bad_config_refused_at_start_naming_the_field(tmp_path: Path) -> None:
    path = write_config(tmp_path, "https://ark.example/api/v3",
                        openai={"duration_policy": "sometimes"})
    for args in (["check-config", str(path)], ["serve", "--config", str(path)]):
        result = run_cli(*args, env=ENV)
        assert result.returncode == 2
        assert "openai.duration_policy" in result.stderr
        assert "Traceback" not in result.stderr
    missing = run_cli("serve", "--config", str(tmp_path / "nope.yaml"), env=ENV)
    assert missing.returncode == 2 and "cannot read config" in missing.stderr


def test_serve_keeps_tasks_across_a_restart(tmp_path: Path) -> None:
    sim_port, port = free_port(), free_port()
    sim = CliProcess(["simulate", "--port", str(sim_port), "--upstream-key", FAKE_UPSTREAM_KEY,
                      "--delay", "0.2"], port=sim_port, log=tmp_path / "sim.log")
    path = write_config(tmp_path, f"http://127.0.0.1:{sim_port}/api/v3")
    headers = {"Authorization": f"Bearer {FAKE_ALICE_KEY}"}
    try:
        sim.wait_ready("/_sim/faults")
        first = CliProcess(["serve", "--config", str(path), "--port", str(port)], port=port,
                           log=tmp_path / "gw1.log", env=ENV)
        first.wait_ready()
        response = httpx.post(f"{first.url}/v1/videos", headers=headers,
                              json={"prompt": "survive", "model": "doubao-seedance-2-0-260128"})
        assert response.status_code == 200, response.text
        created = response.json()
        first.stop()

        second = CliProcess(["serve", "--config", str(path), "--port", str(port)], port=port,
                            log=tmp_path / "gw2.log", env=ENV)
        second.wait_ready()
        try:
            listed = httpx.get(f"{second.url}/v1/videos", headers=headers).json()
            assert [v["id"] for v in listed["data"]] == [created["id"]]
            got = httpx.get(f"{second.url}/api/v3/contents/generations/tasks/{created['id']}",
                            headers=headers)
            assert got.status_code == 200
        finally:
            second.stop()
    finally:
        sim.stop()


def test_serve_with_two_workers(tmp_path: Path) -> None:
    sim_port, port = free_port(), free_port()
    sim = CliProcess(["simulate", "--port", str(sim_port), "--upstream-key", FAKE_UPSTREAM_KEY],
                     port=sim_port, log=tmp_path / "sim.log")
    path = write_config(tmp_path, f"http://127.0.0.1:{sim_port}/api/v3")
    gateway = CliProcess(["serve", "--config", str(path), "--port", str(port), "--workers", "2"],
                         port=port, log=tmp_path / "gw.log", env=ENV)
    try:
        sim.wait_ready("/_sim/faults")
        gateway.wait_ready()
        headers = {"Authorization": f"Bearer {FAKE_ALICE_KEY}"}
        ids = {httpx.post(f"{gateway.url}/v1/videos", headers=headers,
                          json={"prompt": f"p{i}", "model": "doubao-seedance-2-0-260128"}
                          ).json()["id"] for i in range(6)}
        listed = httpx.get(f"{gateway.url}/v1/videos", headers=headers).json()
        assert {v["id"] for v in listed["data"]} == ids  # both workers share the SQLite file
    finally:
        gateway.stop()
        sim.stop()
