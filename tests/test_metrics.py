"""Metrics move as they should across a scripted scenario; labels stay bounded."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import GatewayFactory, SimulatorFactory
from tests.leaks import CANARY_METRICS_TOKEN
from tests.servers import FAKE_ALICE_KEY, FAKE_UPSTREAM_KEY, CliProcess, ServerThread, free_port
from tests.test_deploy import referenced_metric_names

AUTH = {"Authorization": f"Bearer {FAKE_ALICE_KEY}"}
MODEL = "doubao-seedance-2-0-fast-260128"


def scrape(url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    text = httpx.get(url + "/metrics").text
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str,
          **labels: str) -> float:
    """Sum of the samples named `name` whose labels include `labels`."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= ls)


def wait_done(gateway: ServerThread, video_id: str) -> dict[str, object]:
    deadline = time.monotonic() + 10
    while True:
        video = httpx.get(f"{gateway.url}/v1/videos/{video_id}", headers=AUTH).json()
        if video["status"] in ("completed", "failed") or time.monotonic() > deadline:
            return dict(video)
        time.sleep(0.05)


def run_scenario(gateway: ServerThread) -> str:
    """create → poll to done → download → a bad request → a bad key → a failed task."""
    created = httpx.post(f"{gateway.url}/v1/videos", headers=AUTH,
                         json={"prompt": "a lighthouse", "model": "sora-2", "seconds": "8",
                               "size": "1280x720"}).json()
    assert wait_done(gateway, created["id"])["status"] == "completed"
    video = httpx.get(f"{gateway.url}/v1/videos/{created['id']}/content", headers=AUTH)
    assert video.status_code == 200
    bad = httpx.post(f"{gateway.url}/api/v3/contents/generations/tasks", headers=AUTH,
                     json={"model": MODEL, "content": [{"type": "text", "text": "x"}],
                           "ratio": "7:5"})
    assert bad.status_code == 400
    assert httpx.get(f"{gateway.url}/v1/videos",
                     headers={"Authorization": "Bearer wrong"}).status_code == 401
    failed = httpx.post(f"{gateway.url}/v1/videos", headers=AUTH,
                        json={"prompt": "[sim:fail] no", "model": "sora-2"}).json()
    assert wait_done(gateway, failed["id"])["status"] == "failed"
    return str(created["id"])


def test_every_metric_moves_across_the_scenario(
    simulator: ServerThread, gateway: ServerThread, start_gateway: GatewayFactory
) -> None:
    before = scrape(gateway.url)
    video_id = run_scenario(gateway)
    after = scrape(gateway.url)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("seedance_gateway_requests_total", route="/v1/videos", method="POST",
                 status="200") == 2
    assert delta("seedance_gateway_requests_total",
                 route="/api/v3/contents/generations/tasks", status="400") == 1
    assert delta("seedance_gateway_request_duration_seconds_count",
                 route="/v1/videos/{video_id}/content") == 1
    assert delta("seedance_gateway_upstream_requests_total", operation="create",
                 status="200") == 2
    assert delta("seedance_gateway_upstream_requests_total", operation="get") >= 2
    assert delta("seedance_gateway_upstream_requests_total", operation="download",
                 status="200") == 1
    assert delta("seedance_gateway_upstream_request_duration_seconds_count",
                 operation="create") == 2
    assert delta("seedance_gateway_tasks_created_total", model="sora-2", surface="openai") == 2
    assert delta("seedance_gateway_tasks_finished_total", model="sora-2",
                 status="succeeded") == 1
    assert delta("seedance_gateway_tasks_finished_total", model="sora-2", status="failed") == 1
    assert delta("seedance_gateway_task_duration_seconds_count", model="sora-2",
                 resolution="720p") == 1
    assert delta("seedance_gateway_tokens_total", model="sora-2",
                 client_key="alice") == 1280 * 720 * (24 * 8 + 1) // 1024
    assert delta("seedance_gateway_download_bytes_total", variant="video") > 1000
    assert delta("seedance_gateway_auth_failures_total", surface="openai") == 1
    assert delta("seedance_gateway_rejected_requests_total", surface="native",
                 reason="invalid_parameter") == 1
    assert value(after, "seedance_gateway_requests_in_flight") == 1  # the scrape itself
    assert value(after, "seedance_gateway_build_info") == 1

    # Polls of a finished task do not count it again.
    httpx.get(f"{gateway.url}/v1/videos/{video_id}", headers=AUTH)
    again = scrape(gateway.url)
    assert value(again, "seedance_gateway_tasks_finished_total", status="succeeded") == value(
        after, "seedance_gateway_tasks_finished_total", status="succeeded")


def test_upstream_failures_are_counted(start_simulator: SimulatorFactory,
                                       start_gateway: GatewayFactory) -> None:
    sim = start_simulator(error_rate=1.0)
    gateway = start_gateway(sim.url + "/api/v3")
    assert httpx.post(f"{gateway.url}/v1/videos", headers=AUTH,
                      json={"prompt": "x"}).status_code == 500
    down = start_gateway(f"http://127.0.0.1:{free_port()}/api/v3")
    assert httpx.post(f"{down.url}/v1/videos", headers=AUTH,
                      json={"prompt": "x"}).status_code == 502
    assert value(scrape(gateway.url), "seedance_gateway_upstream_requests_total",
                 operation="create", status="500") == 1
    assert value(scrape(down.url), "seedance_gateway_upstream_requests_total",
                 operation="create", status="error") == 1


def test_labels_stay_bounded(gateway: ServerThread) -> None:
    """Unknown models, raw paths, task ids and keys never become label values."""
    for i in range(5):
        httpx.post(f"{gateway.url}/v1/videos", headers=AUTH,
                   json={"prompt": "x", "model": f"made-up-{i}"})
        httpx.get(f"{gateway.url}/no/such/path/{i}", headers=AUTH)
        httpx.get(f"{gateway.url}/v1/videos/cgt-fake-{i}", headers=AUTH)
    text = httpx.get(gateway.url + "/metrics").text
    assert "made-up" not in text and "cgt-fake" not in text and "/no/such" not in text
    assert FAKE_ALICE_KEY not in text and FAKE_UPSTREAM_KEY not in text
    samples = scrape(gateway.url)
    routes = {dict(ls).get("route") for (n, ls) in samples
              if n == "seedance_gateway_requests_total"}
    assert "unmatched" in routes and all(r is None or "cgt-" not in r for r in routes)


def test_metrics_add_up_across_workers(tmp_path: Path, simulator: ServerThread) -> None:
    config = {
        "upstreams": [{"name": "ark", "base_url": simulator.url + "/api/v3",
                       "keys": [{"name": "main", "secret": "${UPSTREAM_KEY}"}]}],
        "client_keys": [{"name": "alice", "secret": "${ALICE_KEY}"}],
        "store": {"url": f"sqlite:///{tmp_path}/tasks.db"},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    port = free_port()
    gateway = CliProcess(["serve", "--config", str(path), "--port", str(port), "--workers", "2"],
                         port=port, log=tmp_path / "gw.log",
                         env={"UPSTREAM_KEY": FAKE_UPSTREAM_KEY, "ALICE_KEY": FAKE_ALICE_KEY})
    try:
        gateway.wait_ready()
        # New connections spread over both workers; every one must be counted once.
        for _ in range(40):
            with httpx.Client() as client:
                assert client.get(f"{gateway.url}/v1/videos", headers=AUTH).status_code == 200
        samples = scrape(gateway.url)
        assert value(samples, "seedance_gateway_requests_total", route="/v1/videos",
                     method="GET", status="200") == 40
    finally:
        gateway.stop()


@pytest.mark.parametrize("token", [None, "wrong"])
def test_metrics_can_require_a_bearer_token(
    simulator: ServerThread, start_gateway: GatewayFactory, token: str | None
) -> None:
    gateway = start_gateway(simulator.url + "/api/v3",
                            extra={"metrics": {"bearer": "${METRICS_TOKEN}"}},
                            env={"METRICS_TOKEN": CANARY_METRICS_TOKEN})
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    assert httpx.get(gateway.url + "/metrics", headers=headers).status_code == 401
    ok = httpx.get(gateway.url + "/metrics",
                   headers={"Authorization": f"Bearer {CANARY_METRICS_TOKEN}"})
    assert ok.status_code == 200 and "seedance_gateway_build_info" in ok.text


def test_dashboard_and_alerts_query_metrics_a_live_gateway_exports(
    simulator: ServerThread, gateway: ServerThread
) -> None:
    """Every metric the Grafana dashboard and the alert rules use has samples in a live
    /metrics after the scenario (parsed from their JSON/YAML, not grepped)."""
    run_scenario(gateway)
    live = {name for name, _ in scrape(gateway.url)}
    histograms = {n.removesuffix("_bucket") for n in live if n.endswith("_bucket")}
    referenced = referenced_metric_names()
    assert len(referenced) >= 10
    missing = sorted(m for m in referenced if m not in live and m not in histograms)
    assert not missing, f"queried by deploy/ but absent from a live /metrics: {missing}"
