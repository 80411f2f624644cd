"""The first steps a new user takes, as they take them: `./dev demo` with a webhook and the
simulator stopped afterwards, a busy port, `./dev keys …`, a relative SQLite path, an upstream
given as a bare host."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml
from openai import OpenAI
from standardwebhooks import Webhook
from volcenginesdkarkruntime import Ark

from tests.servers import FAKE_ALICE_KEY, FAKE_UPSTREAM_KEY, CliProcess, free_port
from tests.test_webhooks import Receiver

pytestmark = pytest.mark.filterwarnings("ignore:The Sora API:DeprecationWarning")
ROOT = Path(__file__).resolve().parent.parent


def test_demo_webhook_arrives_and_the_video_outlives_the_simulator(tmp_path: Path) -> None:
    """Issue 10's "done when": with the README's first command, a key with a webhook gets a
    verifiable video.completed, and the video still downloads after the simulator stops."""
    receiver = Receiver()
    receiver.server.start()
    port = free_port()
    demo = CliProcess(["demo", "--port", str(port), "--client-key", "sgw-demo-webhooks",
                       "--sim-delay", "0.3", "--webhook-url", receiver.url,
                       "--store", f"sqlite:///{tmp_path}/demo.db"],
                      port=port, log=tmp_path / "demo.log")
    try:
        demo.wait_ready()
        banner = demo.output()
        secret = re.search(r"whsec_[A-Za-z0-9+/=]+", banner)
        stop_url = re.search(r"http://127\.0\.0\.1:\d+/_sim/stop", banner)
        assert secret and stop_url, banner
        assert "export GATEWAY_KEY=sgw-demo-webhooks" in banner
        assert 'OpenAI(base_url="' + demo.url + '/v1"' in banner  # the OpenAI snippet
        assert f"web console:  {demo.url}/" in banner

        client = OpenAI(base_url=demo.url + "/v1", api_key="sgw-demo-webhooks", max_retries=0)
        video = client.videos.create_and_poll(model="sora-2", prompt="a lighthouse",
                                              seconds="4", poll_interval_ms=100)
        assert video.status == "completed"
        headers, body, _ = receiver.wait(1)[0]
        event = Webhook(secret.group()).verify(body, headers)
        assert event["type"] == "video.completed" and event["data"]["id"] == video.id

        # The archive has the files once the task's link is the gateway's own.
        ark = Ark(base_url=demo.url + "/api/v3", api_key="sgw-demo-webhooks", max_retries=0)
        deadline = time.monotonic() + 10
        while not (link := str(ark.content_generation.tasks.get(
                task_id=video.id).content.video_url)).startswith(demo.url + "/files/"):
            assert time.monotonic() < deadline, link
            time.sleep(0.1)
        expected = client.videos.download_content(video.id).content

        assert httpx.post(stop_url.group()).json() == {"stopped": True}
        simulator = stop_url.group().removesuffix("/_sim/stop")
        deadline = time.monotonic() + 5
        while True:  # the simulator's port refuses connections once it has stopped
            try:
                httpx.get(simulator + "/_sim/faults", timeout=1)
            except httpx.ConnectError:
                break
            assert time.monotonic() < deadline, "the simulator still answers"
            time.sleep(0.05)

        assert client.videos.download_content(video.id).content == expected
        thumbnail = client.videos.download_content(video.id, variant="thumbnail").content
        assert thumbnail.startswith(b"\x89PNG")
        assert httpx.get(link).content == expected  # the Ark SDK user's download loop
        assert demo.proc.poll() is None  # the gateway itself keeps running
    finally:
        demo.stop()
        receiver.server.stop()


def test_a_busy_port_is_one_line_and_no_key(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "gateway", "demo", "--port", str(port),
             "--store", f"sqlite:///{tmp_path}/demo.db"],
            capture_output=True, text=True, timeout=30)
        config = write_config(tmp_path, "http://127.0.0.1:9/api/v3")
        served = subprocess.run(
            [sys.executable, "-m", "gateway", "serve", "--config", str(config),
             "--port", str(port)],
            capture_output=True, text=True, timeout=30, env=ENV)
    assert result.returncode == 1 and served.returncode == 1
    for run, command in ((result, "demo"), (served, "serve")):
        assert run.stdout == "", run.stdout  # no banner, no key
        assert run.stderr == (f"seedance-gateway {command}: cannot listen on 127.0.0.1:{port}: "
                              "address already in use\n"), run.stderr


ENV = {"UPSTREAM_KEY": FAKE_UPSTREAM_KEY, "ALICE_KEY": FAKE_ALICE_KEY,
       "PATH": os.environ.get("PATH", "/usr/bin:/bin")}


def write_config(folder: Path, upstream_url: str, **changes: object) -> Path:
    data = {
        "upstreams": [{"name": "ark", "base_url": upstream_url,
                       "keys": [{"name": "main", "secret": "${UPSTREAM_KEY}"}]}],
        "client_keys": [{"name": "alice", "secret": "${ALICE_KEY}"}],
        "store": {"url": "sqlite:///team.db"},
        **changes,
    }
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_a_relative_sqlite_path_is_relative_to_the_config_file(tmp_path: Path) -> None:
    config = write_config(tmp_path / "conf", "http://127.0.0.1:9/api/v3")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    created = subprocess.run(
        [sys.executable, "-m", "gateway", "keys", "--config", str(config), "create", "bea"],
        capture_output=True, text=True, timeout=30, env=ENV, cwd=elsewhere)
    assert created.returncode == 0, created.stderr
    listed = subprocess.run(
        [sys.executable, "-m", "gateway", "keys", "--config", "config.yaml", "list"],
        capture_output=True, text=True, timeout=30, env=ENV, cwd=config.parent)
    assert listed.returncode == 0, listed.stderr
    assert "bea" in listed.stdout
    assert (tmp_path / "conf" / "team.db").exists()
    assert not (elsewhere / "team.db").exists()


def test_an_upstream_given_as_its_root_gets_the_api_path(tmp_path: Path) -> None:
    config = write_config(tmp_path, "https://api.example.com")
    checked = subprocess.run([sys.executable, "-m", "gateway", "check-config", str(config)],
                             capture_output=True, text=True, timeout=30, env=ENV)
    assert checked.returncode == 0, checked.stderr
    assert "base_url names no path; /api/v3 added" in checked.stdout
    assert "https://api.example.com/api/v3 (preset" in checked.stdout


def test_an_upstream_root_url_serves_creates(tmp_path: Path) -> None:
    """The seed document's BASE_URL (a host's root) reaches Ark's task routes."""
    sim_port = free_port()
    sim = CliProcess(["simulate", "--port", str(sim_port), "--upstream-key", FAKE_UPSTREAM_KEY,
                      "--delay", "0.2"], port=sim_port, log=tmp_path / "sim.log")
    port = free_port()
    config = write_config(tmp_path, f"http://127.0.0.1:{sim_port}",
                          store={"url": f"sqlite:///{tmp_path}/t.db"},
                          server={"host": "127.0.0.1", "port": port})
    gateway = CliProcess(["serve", "--config", str(config)], port=port,
                         log=tmp_path / "gateway.log", env=ENV)
    try:
        sim.wait_ready("/_sim/faults")
        gateway.wait_ready()
        ark = Ark(base_url=gateway.url + "/api/v3", api_key=FAKE_ALICE_KEY, max_retries=0)
        task = ark.content_generation.tasks.create(
            model="doubao-seedance-2-0-260128", content=[{"type": "text", "text": "x"}])
        assert task.id.startswith("cgt-")
    finally:
        gateway.stop()
        sim.stop()


def test_dev_passes_other_commands_to_the_cli(tmp_path: Path) -> None:
    config = write_config(tmp_path, "http://127.0.0.1:9/api/v3")
    result = subprocess.run([str(ROOT / "dev"), "check-config", str(config)],
                            capture_output=True, text=True, timeout=120,
                            env={**os.environ, **ENV})
    assert result.returncode == 0, result.stderr
    assert f"{config}: OK" in result.stdout
    usage = subprocess.run([str(ROOT / "dev"), "no-such-command"], capture_output=True,
                           text=True, timeout=120)
    assert usage.returncode == 2 and "invalid choice" in usage.stderr
