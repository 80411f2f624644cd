"""deploy/ checked without Docker or a cluster: every file parses, the pieces agree with each
other and with the code (config schema, Dockerfile, routes, metric catalogue), and promtool
accepts the Prometheus config and rules.

`referenced_metric_names()` is public: other tests compare it with a live /metrics.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from gateway import downloads
from gateway.config import Config, build_catalogue, parse_config
from gateway.metrics import PREFIX, Metrics

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "docker-compose.yml"
GATEWAY_CONFIG = DEPLOY / "gateway.config.yaml"
PROMETHEUS = DEPLOY / "prometheus" / "prometheus.yml"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
ALERT_TESTS = DEPLOY / "prometheus" / "alerts.test.yml"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "seedance-gateway.json"
DATASOURCES = DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml"
DASHBOARD_PROVIDERS = DEPLOY / "grafana" / "provisioning" / "dashboards" / "dashboards.yml"
K8S = DEPLOY / "kubernetes"

# Values for the ${ENV} references of the deploy configs: obviously not keys.
FAKE_ENV = {
    "ARK_API_KEY": "fake-ark-key-for-tests",
    "GATEWAY_KEY_ALICE": "fake-client-key-for-tests",
    "METRICS_BEARER": "fake-metrics-token-for-tests",
}
ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
METRIC_NAME = re.compile(rf"\b{PREFIX}_[A-Za-z0-9_]+")
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")
CONTENT_ROUTE = downloads.routes()[0].path  # /v1/videos/{video_id}/content
GRAFANA_RANGE_VARIABLES = ("$__rate_interval", "$__interval", "$__range")


# --- helpers ---------------------------------------------------------------------------------


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return data


def dashboard_panels() -> Iterator[dict[str, Any]]:
    """Every panel but rows, including panels nested in collapsed rows."""
    for panel in dashboard()["panels"]:
        if panel.get("type") == "row":
            yield from panel.get("panels", [])
        else:
            yield panel


def dashboard_exprs() -> list[str]:
    exprs = [t["expr"] for p in dashboard_panels() for t in p.get("targets", []) if "expr" in t]
    for variable in dashboard().get("templating", {}).get("list", []):
        query = variable.get("query")
        if isinstance(query, dict):
            query = query.get("query")
        if isinstance(query, str):
            exprs.append(query)
    return exprs


def alert_rules() -> list[dict[str, Any]]:
    return [rule for group in load_yaml(ALERTS)["groups"] for rule in group["rules"]]


def base_metric_name(name: str) -> str:
    for suffix in HISTOGRAM_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def referenced_metric_names() -> frozenset[str]:
    """Every `seedance_gateway_*` metric the dashboard and the alert rules query, as exposed
    on /metrics (counters with `_total`), histogram series reduced to the histogram's name
    (`..._bucket`/`_sum`/`_count` → `...`)."""
    exprs = dashboard_exprs() + [rule["expr"] for rule in alert_rules()]
    return frozenset(base_metric_name(m) for expr in exprs for m in METRIC_NAME.findall(expr))


def declared_metric_names() -> frozenset[str]:
    """The names gateway.metrics.Metrics exposes. prometheus_client's collect() names counter
    families without `_total`; their samples (what PromQL sees) carry it."""
    names = set()
    for family in Metrics(["m"]).registry.collect():
        names.add(f"{family.name}_total" if family.type == "counter" else family.name)
    return frozenset(names)


def dockerfile_cmd() -> list[str]:
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    match = re.search(r"^CMD\s+(\[.*\])\s*$", text, re.MULTILINE)
    assert match, "the Dockerfile has no exec-form CMD"
    cmd: list[str] = json.loads(match.group(1))
    return cmd


def dockerfile_config_path() -> str:
    cmd = dockerfile_cmd()
    return cmd[cmd.index("--config") + 1]


def dockerfile_port() -> int:
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    match = re.search(r"^EXPOSE\s+(\d+)", text, re.MULTILINE)
    assert match
    return int(match.group(1))


def env_references(text: str) -> set[str]:
    """The ${NAME} references in a gateway config's values (comments left out)."""

    def strings(node: Any) -> Iterator[str]:
        if isinstance(node, dict):
            for value in node.values():
                yield from strings(value)
        elif isinstance(node, list):
            for value in node:
                yield from strings(value)
        elif isinstance(node, str):
            yield node

    return {name for s in strings(yaml.safe_load(text)) for name in ENV_REFERENCE.findall(s)}


def compose() -> dict[str, Any]:
    data: dict[str, Any] = load_yaml(COMPOSE)
    return data


def mounts(service: dict[str, Any]) -> dict[str, tuple[str, bool]]:
    """target -> (source, read-only) of a compose service's short-syntax volumes."""
    result = {}
    for volume in service.get("volumes", []):
        source, target, *mode = volume.split(":")
        result[target] = (source, "ro" in mode)
    return result


def k8s(name: str) -> dict[str, Any]:
    data: dict[str, Any] = load_yaml(K8S / name)
    return data


def configmap_config() -> str:
    text: str = k8s("configmap.yaml")["data"]["config.yaml"]
    return text


def pod_spec() -> dict[str, Any]:
    spec: dict[str, Any] = k8s("deployment.yaml")["spec"]["template"]["spec"]
    return spec


def container() -> dict[str, Any]:
    containers = pod_spec()["containers"]
    assert len(containers) == 1
    result: dict[str, Any] = containers[0]
    return result


def container_port(port: int | str) -> int:
    """A probe's or Service's port, by number or by the container port's name."""
    ports = container()["ports"]
    if isinstance(port, int):
        assert port in [p["containerPort"] for p in ports]
        return port
    by_name = {p["name"]: p["containerPort"] for p in ports}
    assert port in by_name, f"no container port named {port!r}"
    result: int = by_name[port]
    return result


# --- every file ------------------------------------------------------------------------------


def test_every_yaml_file_parses() -> None:
    files = sorted([*DEPLOY.rglob("*.yml"), *DEPLOY.rglob("*.yaml")])
    assert len(files) >= 14
    for path in files:
        documents = list(yaml.safe_load_all(path.read_text(encoding="utf-8")))
        assert documents and all(isinstance(d, dict) for d in documents), path


def test_no_real_looking_secret_in_deploy() -> None:
    """Secrets are references or REPLACE_ME placeholders, never values."""
    secret = k8s("secret.example.yaml")
    assert secret["kind"] == "Secret"
    assert secret["stringData"], "the template lists the keys the Deployment needs"
    for key, value in secret["stringData"].items():
        assert "REPLACE_ME" in value, key
    for line in (DEPLOY / ".env.example").read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            assert "REPLACE_ME" in line.partition("=")[2], line
    assert ".env" in (DEPLOY / ".gitignore").read_text(encoding="utf-8").split()


# --- gateway configs -------------------------------------------------------------------------


def parse(text: str, source: str) -> Config:
    return parse_config(yaml.safe_load(text), env=FAKE_ENV, source=source)


def test_compose_gateway_config_validates() -> None:
    config = parse(GATEWAY_CONFIG.read_text(encoding="utf-8"), str(GATEWAY_CONFIG))
    catalogue = build_catalogue(config)
    aliases = catalogue.aliases()
    assert {"sora-2", "sora-2-pro"} <= aliases.keys()
    # The upstream is the compose `simulator` service, on the port its command listens on.
    url = urlsplit(config.upstreams[0].base_url)
    simulator = compose()["services"]["simulator"]
    command = simulator["command"]
    assert url.hostname == "simulator"
    assert str(url.port) == command[command.index("--port") + 1]
    assert url.path == "/api/v3"
    # The store lives in the named volume.
    assert config.store.url.startswith("sqlite:////var/lib/seedance-gateway/")


def test_configmap_config_validates() -> None:
    config = parse(configmap_config(), "configmap.yaml")
    assert {"sora-2", "sora-2-pro"} <= build_catalogue(config).aliases().keys()
    store_dir = config.store.url.removeprefix("sqlite:///").rsplit("/", 1)[0]
    mounted = {m["mountPath"]: m["name"] for m in container()["volumeMounts"]}
    assert store_dir in mounted, "the SQLite store must be on a mounted volume"
    volume = next(v for v in pod_spec()["volumes"] if v["name"] == mounted[store_dir])
    assert "emptyDir" in volume or "persistentVolumeClaim" in volume


def test_configs_refuse_to_load_without_their_secrets() -> None:
    """The ${ENV} references are real references: no env, no config."""
    for text in (GATEWAY_CONFIG.read_text(encoding="utf-8"), configmap_config()):
        with pytest.raises(Exception, match="ARK_API_KEY"):
            parse_config(yaml.safe_load(text), env={})


# --- docker compose --------------------------------------------------------------------------


def test_compose_services() -> None:
    services = compose()["services"]
    assert {"gateway", "simulator", "prometheus", "grafana"} <= services.keys()
    for name in ("gateway", "simulator"):
        build = services[name]["build"]
        assert (DEPLOY / build["context"]).resolve() == ROOT
        dockerfile = DEPLOY / build["context"] / build["dockerfile"]
        assert dockerfile.resolve() == ROOT / "Dockerfile"
    assert services["prometheus"]["image"].startswith("prom/prometheus:")
    assert services["grafana"]["image"].startswith("grafana/grafana")
    # Every bind mount's source exists.
    for name, service in services.items():
        for source, _ in mounts(service).values():
            if source.startswith("."):
                assert (DEPLOY / source).exists(), f"{name}: {source} is missing"


def test_compose_gateway_service() -> None:
    data = compose()
    gateway = data["services"]["gateway"]
    assert "command" not in gateway, "the image's CMD (serve --config …) is used as is"
    volumes = mounts(gateway)
    config_path = dockerfile_config_path()
    assert volumes[config_path] == ("./gateway.config.yaml", True)
    store_source, store_read_only = volumes["/var/lib/seedance-gateway"]
    assert store_source in data["volumes"] and not store_read_only
    # Secrets: pass-through from the host, required, one per reference in the config.
    environment = gateway["environment"]
    for name, value in environment.items():
        assert re.fullmatch(rf"\$\{{{name}:\?[^}}]+\}}", value), f"{name}: {value}"
    assert env_references(GATEWAY_CONFIG.read_text(encoding="utf-8")) == set(environment)
    test = " ".join(gateway["healthcheck"]["test"])
    assert f"127.0.0.1:{dockerfile_port()}/healthz" in test
    assert any(p.endswith(f":{dockerfile_port()}") for p in gateway["ports"])


def test_compose_simulator_service() -> None:
    simulator = compose()["services"]["simulator"]
    command = simulator["command"]
    assert command[0] == "simulate"
    assert command[command.index("--host") + 1] == "0.0.0.0"
    key = command[command.index("--upstream-key") + 1]
    assert re.fullmatch(r"\$\{SIMULATOR_UPSTREAM_KEY:\?[^}]+\}", key), key
    # The image's HEALTHCHECK probes the gateway port: the simulator needs its own.
    port = command[command.index("--port") + 1]
    assert port == "9090" and port in " ".join(simulator["healthcheck"]["test"])


def test_compose_prometheus_and_grafana_wiring() -> None:
    services = compose()["services"]
    prometheus = mounts(services["prometheus"])
    config_target = next(t for t, (s, _) in prometheus.items()
                         if s == "./prometheus/prometheus.yml")
    assert f"--config.file={config_target}" in services["prometheus"]["command"]
    # rule_files resolve next to the config file, inside the container as here.
    for rule_file in load_yaml(PROMETHEUS)["rule_files"]:
        target = str(Path(config_target).parent / rule_file)
        assert prometheus[target][0] == "./prometheus/" + rule_file
        assert (PROMETHEUS.parent / rule_file).is_file()
    scrape = {job["job_name"]: job for job in load_yaml(PROMETHEUS)["scrape_configs"]}
    gateway_job = scrape["seedance-gateway"]
    assert load_yaml(PROMETHEUS)["global"]["scrape_interval"] == "15s"
    assert gateway_job.get("scrape_interval", "15s") == "15s"
    assert gateway_job.get("metrics_path", "/metrics") == "/metrics"
    assert [f"gateway:{dockerfile_port()}"] == gateway_job["static_configs"][0]["targets"]

    grafana = services["grafana"]
    grafana_mounts = mounts(grafana)
    assert grafana_mounts["/etc/grafana/provisioning"] == ("./grafana/provisioning", True)
    datasource = load_yaml(DATASOURCES)["datasources"][0]
    assert datasource["type"] == "prometheus"
    assert urlsplit(datasource["url"]).hostname == "prometheus"
    provider = load_yaml(DASHBOARD_PROVIDERS)["providers"][0]
    assert grafana_mounts[provider["options"]["path"]] == ("./grafana/dashboards", True)
    assert grafana["environment"]["GF_AUTH_ANONYMOUS_ENABLED"] == "true"
    assert grafana["environment"]["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer"


# --- kubernetes ------------------------------------------------------------------------------

K8S_KINDS = {
    "deployment.yaml": ("apps/v1", "Deployment"),
    "service.yaml": ("v1", "Service"),
    "configmap.yaml": ("v1", "ConfigMap"),
    "secret.example.yaml": ("v1", "Secret"),
    "pvc.yaml": ("v1", "PersistentVolumeClaim"),
    "hpa.yaml": ("autoscaling/v2", "HorizontalPodAutoscaler"),
    "pdb.yaml": ("policy/v1", "PodDisruptionBudget"),
    "kustomization.yaml": ("kustomize.config.k8s.io/v1beta1", "Kustomization"),
}


def test_k8s_kinds_and_api_versions() -> None:
    assert {p.name for p in K8S.glob("*.yaml")} == K8S_KINDS.keys()
    for name, (api_version, kind) in K8S_KINDS.items():
        data = k8s(name)
        assert (data["apiVersion"], data["kind"]) == (api_version, kind), name


def test_kustomization_lists_every_manifest_but_the_secret_template() -> None:
    resources = k8s("kustomization.yaml")["resources"]
    assert sorted(resources) == sorted(K8S_KINDS.keys() - {"kustomization.yaml",
                                                           "secret.example.yaml"})


def test_deployment_probes_and_ports() -> None:
    c = container()
    assert container_port("http") == dockerfile_port()
    assert "command" not in c and "args" not in c, "the image's CMD reads the mounted config"
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz"),
                        ("startupProbe", "/healthz")):
        get = c[probe]["httpGet"]
        assert get["path"] == path, probe
        assert container_port(get["port"]) == dockerfile_port(), probe
    annotations = k8s("deployment.yaml")["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert int(annotations["prometheus.io/port"]) == dockerfile_port()
    assert annotations["prometheus.io/path"] == "/metrics"


def test_deployment_security_and_resources() -> None:
    pod, c = pod_spec(), container()
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001
    security = c["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    resources = c["resources"]
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= resources[kind].keys(), kind
    # ~50 MB RSS measured: the request covers it, the limit leaves room.
    assert _mebibytes(resources["requests"]["memory"]) >= 64
    assert _mebibytes(resources["limits"]["memory"]) >= 2 * _mebibytes(
        resources["requests"]["memory"])


def _mebibytes(quantity: str) -> int:
    match = re.fullmatch(r"(\d+)(Mi|Gi)", quantity)
    assert match, quantity
    return int(match.group(1)) * (1024 if match.group(2) == "Gi" else 1)


def test_deployment_config_and_secrets() -> None:
    c = container()
    mounted = {m["mountPath"]: m for m in c["volumeMounts"]}
    config_dir, config_file = dockerfile_config_path().rsplit("/", 1)
    assert mounted[config_dir]["readOnly"] is True
    volume = next(v for v in pod_spec()["volumes"] if v["name"] == mounted[config_dir]["name"])
    configmap = k8s("configmap.yaml")
    assert volume["configMap"]["name"] == configmap["metadata"]["name"]
    assert config_file in configmap["data"]
    assert "/tmp" in mounted, "a read-only root needs a writable /tmp"
    # Every ${ENV} the config refers to comes from the Secret (the template has each key).
    env = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in c["env"]}
    secret = k8s("secret.example.yaml")
    references = env_references(configmap_config())
    assert references
    for name in references:
        assert env[name]["name"] == secret["metadata"]["name"], name
        assert env[name]["key"] in secret["stringData"], name


def test_sqlite_store_means_one_replica() -> None:
    store = parse(configmap_config(), "configmap.yaml").store.url
    assert store.startswith("sqlite:")
    deployment, hpa = k8s("deployment.yaml"), k8s("hpa.yaml")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"]["type"] == "Recreate"
    assert hpa["spec"]["maxReplicas"] == 1


def test_selectors_match_the_pods() -> None:
    deployment = k8s("deployment.yaml")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    selectors = [
        deployment["spec"]["selector"]["matchLabels"],
        k8s("service.yaml")["spec"]["selector"],
        k8s("pdb.yaml")["spec"]["selector"]["matchLabels"],
    ]
    for selector in selectors:
        assert selector.items() <= pod_labels.items()
    service_port = k8s("service.yaml")["spec"]["ports"][0]
    assert container_port(service_port["targetPort"]) == dockerfile_port()
    target = k8s("hpa.yaml")["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])
    metric = k8s("hpa.yaml")["spec"]["metrics"][0]
    assert metric["type"] == "Resource" and metric["resource"]["name"] == "cpu"
    volumes = {v["name"]: v for v in pod_spec()["volumes"]}
    claims = [v["persistentVolumeClaim"]["claimName"] for v in volumes.values()
              if "persistentVolumeClaim" in v]
    assert claims == [k8s("pvc.yaml")["metadata"]["name"]]


def test_kustomize_builds() -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl not installed (kustomize build is checked where it is)")
    result = subprocess.run([kubectl, "kustomize", str(K8S)], capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    kinds = sorted(d["kind"] for d in yaml.safe_load_all(result.stdout))
    assert kinds == sorted(kind for name, (_, kind) in K8S_KINDS.items()
                           if name not in ("kustomization.yaml", "secret.example.yaml"))


# --- grafana ---------------------------------------------------------------------------------

DASHBOARD_PANELS = (
    "Request rate by route and status", "Error rate (4xx, 5xx)", "Latency p50 / p95 / p99",
    "Requests in flight", "Upstream requests by operation and status", "Upstream latency p95",
    "Tasks created by model and surface", "Tasks finished by status",
    "Task duration p50 / p95 by model", "Token rate per client key", "Token rate per model",
    "Tokens per client key (dashboard range)", "Tokens per model (dashboard range)",
    "Download throughput", "Auth failures", "Rejected inputs by reason", "Build info",
)


def test_dashboard_is_a_provisionable_grafana_dashboard() -> None:
    data = dashboard()
    assert data["schemaVersion"] >= 36
    assert data["uid"] and data["title"]
    assert data.get("id") is None, "provisioned dashboards carry no database id"
    datasource_uid = load_yaml(DATASOURCES)["datasources"][0]["uid"]
    ids = [p["id"] for p in data["panels"]]
    assert len(ids) == len(set(ids))
    titles = [p["title"] for p in dashboard_panels()]
    assert set(DASHBOARD_PANELS) <= set(titles)
    for panel in dashboard_panels():
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        assert panel["datasource"] == {"type": "prometheus", "uid": datasource_uid}
        targets = panel.get("targets", [])
        assert targets, f"{panel['title']}: no query"
        for target in targets:
            assert target["expr"].strip(), panel["title"]
            assert target["datasource"]["uid"] == datasource_uid
            assert METRIC_NAME.search(target["expr"]) or "up{" in target["expr"], target
    assert "${DS_" not in DASHBOARD.read_text(encoding="utf-8")


def test_dashboard_latency_excludes_content_downloads() -> None:
    latency = next(p for p in dashboard_panels() if p["title"] == "Latency p50 / p95 / p99")
    for target in latency["targets"]:
        assert f'route!="{CONTENT_ROUTE}"' in target["expr"]


# --- metric names: the contract with gateway/metrics.py --------------------------------------


def test_referenced_metrics_are_declared() -> None:
    referenced = referenced_metric_names()
    assert referenced, "no seedance_gateway_* metric found in the dashboard and alerts"
    undeclared = referenced - declared_metric_names()
    assert not undeclared, f"queried but not exported by gateway.metrics: {sorted(undeclared)}"


def test_dashboard_shows_every_declared_metric() -> None:
    dashboard_names = {base_metric_name(m) for e in dashboard_exprs()
                       for m in METRIC_NAME.findall(e)}
    assert declared_metric_names() <= dashboard_names


def test_referenced_metric_names_strips_histogram_suffixes() -> None:
    referenced = referenced_metric_names()
    assert f"{PREFIX}_request_duration_seconds" in referenced
    assert f"{PREFIX}_requests_total" in referenced
    assert not any(name.endswith(HISTOGRAM_SUFFIXES) for name in referenced)


# --- alerts ----------------------------------------------------------------------------------

ALERT_NAMES = {
    "SeedanceGatewayTargetDown", "SeedanceGatewayUpstreamErrorRateHigh",
    "SeedanceGatewayHigh5xxRate", "SeedanceGatewayLatencyHigh",
    "SeedanceGatewayTaskFailureRateHigh", "SeedanceGatewayUpstreamKeyRejected",
}


def test_alert_rules_are_complete() -> None:
    rules = alert_rules()
    assert {r["alert"] for r in rules} == ALERT_NAMES
    for rule in rules:
        assert re.fullmatch(r"\d+[smh]", rule["for"]), rule["alert"]
        assert rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]
        assert rule["annotations"]["summary"].strip(), rule["alert"]
        assert rule["annotations"]["description"].strip(), rule["alert"]
        for window in re.findall(r"\[([^\]]+)\]", rule["expr"]):
            assert window == "5m", f"{rule['alert']}: rate window {window}"
    by_name = {r["alert"]: r["expr"] for r in rules}
    assert f'route!="{CONTENT_ROUTE}"' in by_name["SeedanceGatewayLatencyHigh"]
    assert 'job="seedance-gateway"' in by_name["SeedanceGatewayTargetDown"]
    # Download 401/403 are expired signed URLs, not rejected keys.
    assert 'operation!="download"' in by_name["SeedanceGatewayUpstreamKeyRejected"]


# --- promtool --------------------------------------------------------------------------------


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        hint = "promtool is not installed: apt-get install -y --no-install-recommends prometheus"
        if os.environ.get("CI", "").lower() not in ("", "0", "false"):
            pytest.fail(f"{hint} (CI is set, so the Prometheus checks may not be skipped)")
        pytest.skip(hint)
    return path


def run_promtool(*args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([promtool(), *args], capture_output=True, text=True, timeout=120,
                            check=False, cwd=ROOT)
    assert result.returncode == 0, f"promtool {' '.join(args)}:\n{result.stdout}{result.stderr}"
    return result


def test_promtool_check_config() -> None:
    # rule_files are resolved relative to prometheus.yml, so alerts.yml is checked too.
    result = run_promtool("check", "config", str(PROMETHEUS.relative_to(ROOT)))
    assert "SUCCESS" in result.stdout


def test_promtool_check_rules() -> None:
    result = run_promtool("check", "rules", str(ALERTS.relative_to(ROOT)))
    assert f"{len(ALERT_NAMES)} rules found" in result.stdout


def test_promtool_alert_unit_tests() -> None:
    run_promtool("test", "rules", str(ALERT_TESTS.relative_to(ROOT)))


def test_promtool_parses_every_dashboard_query(tmp_path: Path) -> None:
    """Each dashboard query as a recording rule (Grafana's range variables made concrete), so
    promtool's PromQL parser checks it."""
    promtool()
    rules = []
    for i, expr in enumerate(dashboard_exprs()):
        for variable in GRAFANA_RANGE_VARIABLES:
            expr = expr.replace(variable, "5m")
        assert "$" not in expr, expr
        rules.append({"record": f"dashboard:query_{i}", "expr": expr})
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}),
                    encoding="utf-8")
    result = run_promtool("check", "rules", str(path))
    assert f"{len(rules)} rules found" in result.stdout
