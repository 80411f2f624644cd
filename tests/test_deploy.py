"""deploy/ checked without Docker or a cluster: every file parses, the pieces agree with each
other and with the code (config schema, Dockerfile, routes, metric catalogue), and promtool
accepts the Prometheus config and rules. Both stacks are covered: the single node
(docker-compose.yml, kubernetes/) and several replicas sharing Redis
(docker-compose.replicas.yml with nginx, kubernetes/replicas/).

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

from gateway.catalog import build_catalogue
from gateway.config import Config, parse_config
from gateway.observability.metrics import PREFIX, Metrics
from gateway.observability.middleware import is_sane_id
from gateway.surfaces import downloads

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
K8S_BASE = K8S / "base"
COMPOSE_REPLICAS = DEPLOY / "docker-compose.replicas.yml"
REPLICAS_CONFIG = DEPLOY / "gateway.replicas.config.yaml"
NGINX_CONF = DEPLOY / "nginx" / "gateway.conf"
PROMETHEUS_REPLICAS = DEPLOY / "prometheus" / "prometheus.replicas.yml"
K8S_REPLICAS = K8S / "replicas"

# Values for the ${ENV} references of the deploy configs: obviously not keys.
FAKE_ENV = {
    "ARK_API_KEY": "fake-ark-key-for-tests",
    "GATEWAY_KEY_ALICE": "fake-client-key-for-tests",
    "METRICS_BEARER": "fake-metrics-token-for-tests",
    "GATEWAY_ADMIN_KEY": "fake-admin-key-for-tests",
    # Not a secret: the value kubernetes/replicas/secret.example.yaml gives (test_overlay_secrets).
    "REDIS_URL": "redis://seedance-gateway-redis:6379/0",
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
    """A manifest of the base (kubernetes/base/)."""
    data: dict[str, Any] = load_yaml(K8S_BASE / name)
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
    assert config.store.url.get_secret_value().startswith("sqlite:////var/lib/seedance-gateway/")


def test_configmap_config_validates() -> None:
    config = parse(configmap_config(), "configmap.yaml")
    assert {"sora-2", "sora-2-pro"} <= build_catalogue(config).aliases().keys()
    store_dir = config.store.url.get_secret_value().removeprefix("sqlite:///").rsplit("/", 1)[0]
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
    "ingress.yaml": ("networking.k8s.io/v1", "Ingress"),
    "servicemonitor.yaml": ("monitoring.coreos.com/v1", "ServiceMonitor"),
    "prometheusrule.yaml": ("monitoring.coreos.com/v1", "PrometheusRule"),
    "kustomization.yaml": ("kustomize.config.k8s.io/v1beta1", "Kustomization"),
}
# The base's resources outside base/: the dashboard ConfigMap, generated from the JSON file
# (tests/test_deploy_kubernetes.py checks what the rendered installs hold).
K8S_BASE_FOREIGN = {"../../grafana": ("v1", "ConfigMap")}


def test_k8s_kinds_and_api_versions() -> None:
    assert {p.name for p in K8S_BASE.glob("*.yaml")} == K8S_KINDS.keys()
    for name, (api_version, kind) in K8S_KINDS.items():
        data = k8s(name)
        assert (data["apiVersion"], data["kind"]) == (api_version, kind), name


def test_k8s_top_level_kustomization_is_the_base() -> None:
    """`kubectl apply -k deploy/kubernetes` installs the base as is. The manifests live in
    base/ because kustomize refuses an overlay (replicas/) inside its own base directory."""
    assert {p.name for p in K8S.glob("*.yaml")} == {"kustomization.yaml"}
    top = load_yaml(K8S / "kustomization.yaml")
    assert (top["apiVersion"], top["kind"]) == K8S_KINDS["kustomization.yaml"]
    assert top["resources"] == ["base"]
    assert set(top) <= {"apiVersion", "kind", "resources"}, "settings belong in base/"


def test_kustomization_lists_every_manifest_but_the_secret_template() -> None:
    resources = k8s("kustomization.yaml")["resources"]
    assert sorted(resources) == sorted((K8S_KINDS.keys() | K8S_BASE_FOREIGN.keys())
                                       - {"kustomization.yaml", "secret.example.yaml"})
    assert (K8S_BASE / "../../grafana").resolve() == DASHBOARD.parent.parent


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
    store = parse(configmap_config(), "configmap.yaml").store.url.get_secret_value()
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


def kubectl() -> str:
    """kubectl (its built-in kustomize renders the manifests); a skip locally, a failure under
    CI, which must check them."""
    path = shutil.which("kubectl")
    if path is None:
        hint = ("kubectl is not installed (https://kubernetes.io/docs/tasks/tools/; Debian's "
                "kubernetes-client is too old for kustomize v5)")
        if os.environ.get("CI", "").lower() not in ("", "0", "false"):
            pytest.fail(f"{hint}; CI is set, so the kustomize checks may not be skipped")
        pytest.skip(hint)
    return path


def test_kustomize_builds() -> None:
    result = subprocess.run([kubectl(), "kustomize", str(K8S)], capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    kinds = sorted(d["kind"] for d in yaml.safe_load_all(result.stdout))
    assert kinds == sorted(kind for name, (_, kind) in (K8S_KINDS | K8S_BASE_FOREIGN).items()
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


# --- metric names: the contract with gateway/observability/metrics.py ------------------------


def test_referenced_metrics_are_declared() -> None:
    referenced = referenced_metric_names()
    assert referenced, "no seedance_gateway_* metric found in the dashboard and alerts"
    undeclared = referenced - declared_metric_names()
    assert not undeclared, (f"queried but not exported by gateway.observability.metrics: "
                            f"{sorted(undeclared)}")


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
    "SeedanceGatewayUpstreamKeyQuarantined",
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


# --- several replicas: gateway config ---------------------------------------------------------

# What the replicas' configs may add to or change from their single-node counterparts.
REPLICA_ONLY_SECTIONS = {"store", "admin", "tracker"}


def replicas_config() -> Config:
    return parse(REPLICAS_CONFIG.read_text(encoding="utf-8"), str(REPLICAS_CONFIG))


def test_replicas_gateway_config_validates() -> None:
    config = replicas_config()
    assert {"sora-2", "sora-2-pro"} <= build_catalogue(config).aliases().keys()
    # The store is the compose `redis` service, on Redis's port, with its own key prefix.
    store = urlsplit(config.store.url.get_secret_value())
    assert store.scheme == "redis"
    assert store.hostname == "redis" and (store.port or 6379) == 6379
    assert "redis" in compose_replicas()["services"]
    assert "prefix=sgw:" in store.query
    # An operator key (a reference), and the tracker that settles usage across replicas.
    assert [k.name for k in config.admin.keys] == ["ops"]
    assert config.tracker.enabled
    # The upstream is the simulator of this stack, on the port its command listens on.
    url = urlsplit(config.upstreams[0].base_url)
    command = compose_replicas()["services"]["simulator"]["command"]
    assert url.hostname == "simulator"
    assert str(url.port) == command[command.index("--port") + 1]


def test_replicas_gateway_config_is_the_single_node_one_plus_redis() -> None:
    """Everything but the store, the admin keys and the tracker is as in gateway.config.yaml."""
    single, replicas = load_yaml(GATEWAY_CONFIG), load_yaml(REPLICAS_CONFIG)
    for name in REPLICA_ONLY_SECTIONS:
        single.pop(name, None)
        replicas.pop(name, None)
    assert replicas == single


def test_replica_configs_refuse_to_load_without_the_admin_key() -> None:
    env = {k: v for k, v in FAKE_ENV.items() if k != "GATEWAY_ADMIN_KEY"}
    for text in (REPLICAS_CONFIG.read_text(encoding="utf-8"), overlay_config()):
        with pytest.raises(Exception, match="GATEWAY_ADMIN_KEY"):
            parse_config(yaml.safe_load(text), env=env)


# --- several replicas: docker compose ---------------------------------------------------------


def compose_replicas() -> dict[str, Any]:
    data: dict[str, Any] = load_yaml(COMPOSE_REPLICAS)
    return data


def gateway_replicas() -> dict[str, dict[str, Any]]:
    """The gateway services of the replicas stack (gateway-a, gateway-b, …)."""
    return {name: service for name, service in compose_replicas()["services"].items()
            if name.startswith("gateway")}


def published_ports(service: dict[str, Any]) -> list[tuple[str, int, int]]:
    """(host ip, host port, container port) of a service's short-syntax `ports`."""
    result = []
    for port in service.get("ports", []):
        assert isinstance(port, str), f"quote ports: {port!r}"
        host_ip, host_port, container_port = port.rsplit(":", 2)
        result.append((host_ip, int(host_port), int(container_port)))
    return result


def test_replicas_compose_services() -> None:
    data = compose_replicas()
    services = data["services"]
    assert {"redis", "nginx", "simulator", "prometheus"} <= services.keys()
    assert len(gateway_replicas()) >= 2
    assert services["redis"]["image"].startswith("redis:7")
    assert services["nginx"]["image"].startswith("nginx:")
    assert services["prometheus"]["image"] == compose()["services"]["prometheus"]["image"]
    # The simulator is the single-node stack's.
    assert services["simulator"]["command"] == compose()["services"]["simulator"]["command"]
    for name in (*gateway_replicas(), "simulator"):
        build = services[name]["build"]
        assert (DEPLOY / build["context"] / build["dockerfile"]).resolve() == ROOT / "Dockerfile"
    for name, service in services.items():
        for source, _ in mounts(service).values():
            if source.startswith("."):
                assert (DEPLOY / source).exists(), f"{name}: {source} is missing"
            else:
                assert source in data["volumes"], f"{name}: volume {source} is not declared"
        # `deploy.replicas` > 1 cannot share a published port: replicas are named services.
        assert service.get("deploy", {}).get("replicas", 1) == 1, name


def test_every_published_port_is_on_loopback() -> None:
    for path in (COMPOSE, COMPOSE_REPLICAS):
        for name, service in load_yaml(path)["services"].items():
            for host_ip, _, _ in published_ports(service):
                assert host_ip == "127.0.0.1", f"{path.name}: {name}"


def test_replicas_compose_gateway_services() -> None:
    config_references = env_references(REPLICAS_CONFIG.read_text(encoding="utf-8"))
    assert config_references == {"ARK_API_KEY", "GATEWAY_KEY_ALICE", "GATEWAY_ADMIN_KEY"}
    for name, gateway in gateway_replicas().items():
        assert "command" not in gateway, name
        assert mounts(gateway) == {dockerfile_config_path(): ("./gateway.replicas.config.yaml",
                                                              True)}, name
        assert "ports" not in gateway, f"{name}: clients go through nginx"
        environment = gateway["environment"]
        for variable, value in environment.items():
            assert re.fullmatch(rf"\$\{{{variable}:\?[^}}]+\}}", value), f"{variable}: {value}"
        assert set(environment) == config_references, name
        assert gateway["depends_on"]["redis"]["condition"] == "service_healthy"
        assert gateway["read_only"] is True and gateway["cap_drop"] == ["ALL"]
        test = " ".join(gateway["healthcheck"]["test"])
        assert f"127.0.0.1:{dockerfile_port()}/readyz" in test, name


def test_replicas_compose_redis_persists() -> None:
    data = compose_replicas()
    redis = data["services"]["redis"]
    assert "ports" not in redis, "Redis has no password: it stays on the compose network"
    command = redis["command"]
    assert command[command.index("--appendonly") + 1] == "yes"
    source, read_only = mounts(redis)["/data"]
    assert source in data["volumes"] and not read_only
    assert "PONG" in " ".join(redis["healthcheck"]["test"])


def test_replicas_compose_nginx_service() -> None:
    nginx = compose_replicas()["services"]["nginx"]
    assert mounts(nginx) == {"/etc/nginx/conf.d/default.conf": ("./nginx/gateway.conf", True)}
    (_, host_port, container_port), = published_ports(nginx)
    assert host_port == dockerfile_port(), "the same URL as the single-node gateway"
    assert container_port == nginx_listen_port()
    # Started once every replica is ready, restarted with them (it resolves their names then).
    for name in gateway_replicas():
        dependency = nginx["depends_on"][name]
        assert dependency == {"condition": "service_healthy", "restart": True}, name
    assert "/nginx-health" in " ".join(nginx["healthcheck"]["test"])


def test_replicas_compose_prometheus_scrapes_every_replica() -> None:
    prometheus = compose_replicas()["services"]["prometheus"]
    volumes = mounts(prometheus)
    config_target = next(t for t, (s, _) in volumes.items()
                         if s == "./prometheus/prometheus.replicas.yml")
    assert f"--config.file={config_target}" in prometheus["command"]
    config = load_yaml(PROMETHEUS_REPLICAS)
    for rule_file in config["rule_files"]:
        target = str(Path(config_target).parent / rule_file)
        assert volumes[target][0] == "./prometheus/" + rule_file
    scrape = {job["job_name"]: job for job in config["scrape_configs"]}
    targets = [t for c in scrape["seedance-gateway"]["static_configs"] for t in c["targets"]]
    assert sorted(targets) == sorted(f"{name}:{dockerfile_port()}" for name in gateway_replicas())
    assert scrape["seedance-gateway"].get("metrics_path", "/metrics") == "/metrics"


def test_promtool_check_replicas_config() -> None:
    result = run_promtool("check", "config", str(PROMETHEUS_REPLICAS.relative_to(ROOT)))
    assert "SUCCESS" in result.stdout


# --- several replicas: the nginx load balancer ------------------------------------------------


def nginx_conf() -> str:
    """nginx/gateway.conf without comments (no `#` appears inside its strings)."""
    return re.sub(r"#[^\n]*", "", NGINX_CONF.read_text(encoding="utf-8"))


def nginx_directive(name: str) -> list[str]:
    """The arguments of every `name …;` directive."""
    return [m.strip() for m in re.findall(rf"(?:^|[;{{}}\s]){name}\s+([^;]*);", nginx_conf())]


def nginx_listen_port() -> int:
    (listen,) = nginx_directive("listen")
    return int(listen.rsplit(":", 1)[-1])


def nginx_upstreams() -> dict[str, list[str]]:
    """upstream name -> its `server` addresses."""
    blocks = re.findall(r"\bupstream\s+(\S+)\s*\{([^}]*)\}", nginx_conf())
    return {name: re.findall(r"(?:^|;)\s*server\s+(\S+)", body, re.MULTILINE)
            for name, body in blocks}


def _nginx_size(value: str) -> int:
    match = re.fullmatch(r"(\d+)([kKmMgG]?)", value)
    assert match, value
    return int(match.group(1)) * {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}[
        match.group(2).lower()]


def test_nginx_balances_over_every_replica() -> None:
    upstreams = nginx_upstreams()
    assert len(upstreams) == 1
    (name, servers), = upstreams.items()
    assert nginx_directive("proxy_pass") == [f"http://{name}"]
    # Every replica, on the port the image EXPOSEs; round robin = no other balancing method.
    assert sorted(servers) == sorted(f"{s}:{dockerfile_port()}" for s in gateway_replicas())
    body = dict(re.findall(r"\bupstream\s+(\S+)\s*\{([^}]*)\}", nginx_conf()))[name]
    for method in ("least_conn", "ip_hash", "hash", "random"):
        assert not re.search(rf"(?:^|;)\s*{method}\b", body, re.MULTILINE), method
    # Keep-alive to the replicas needs HTTP/1.1 and no `Connection: close`.
    assert nginx_directive("proxy_http_version") == ["1.1"]


def test_nginx_matches_the_gateway_limits_and_streams() -> None:
    config = replicas_config()
    (size,) = nginx_directive("client_max_body_size")
    assert size == "64m"
    assert _nginx_size(size) == config.server.max_body_bytes
    assert nginx_directive("proxy_buffering") == ["off"], "downloads must stream"
    (read_timeout,) = nginx_directive("proxy_read_timeout")
    assert _nginx_seconds(read_timeout) > config.upstreams[0].timeouts.read


def _nginx_seconds(value: str) -> int:
    match = re.fullmatch(r"(\d+)([sm]?)", value)
    assert match, value
    return int(match.group(1)) * (60 if match.group(2) == "m" else 1)


def test_nginx_passes_a_request_id_the_gateway_keeps() -> None:
    headers = dict(h.split(None, 1) for h in nginx_directive("proxy_set_header"))
    variable = headers["X-Request-ID"]
    assert variable.startswith("$")
    # The map: the caller's id when the gateway accepts it, else nginx's own.
    maps = re.findall(r"\bmap\s+(\$\S+)\s+(\$\S+)\s*\{(.*?)\n\}", nginx_conf(), re.DOTALL)
    (source, _, body), = [m for m in maps if m[1] == variable]
    assert source == "$http_x_request_id"
    entries = [line.strip().rstrip(";").split() for line in body.strip().splitlines()]
    by_key = {key.strip('"'): value for key, value in entries}
    assert by_key.pop("default") == "$request_id"
    (pattern, value), = by_key.items()
    assert value == "$http_x_request_id"
    regex = re.compile(pattern.removeprefix("~"))
    for candidate in ("abc-123", "a" * 128, "req.1:2_3", "a" * 129, "bad id", "", "x/y", "é"):
        assert bool(regex.fullmatch(candidate)) == is_sane_id(candidate), candidate
    assert is_sane_id("0123456789abcdef" * 2), "nginx's $request_id (32 hex digits)"


def test_nginx_accepts_the_config(tmp_path: Path) -> None:
    """`nginx -t` on the config, inside an `http` block like the image's nginx.conf (the
    replicas' names mapped to 127.0.0.1, which resolves here)."""
    nginx = shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(p, os.X_OK)), None)
    if nginx is None:
        hint = "nginx not installed (apt-get install -y --no-install-recommends nginx)"
        if os.environ.get("CI", "").lower() not in ("", "0", "false"):
            pytest.fail(f"{hint}; CI is set, so the nginx check may not be skipped")
        pytest.skip(hint)
    site = NGINX_CONF.read_text(encoding="utf-8")
    for name in gateway_replicas():
        site = site.replace(f"{name}:", "127.0.0.1:")
    site = site.replace("/var/log/nginx/", f"{tmp_path}/")
    (tmp_path / "site.conf").write_text(site, encoding="utf-8")
    (tmp_path / "nginx.conf").write_text(
        f"pid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/error.log;\nevents {{}}\n"
        f"http {{\n  include {tmp_path}/site.conf;\n}}\n", encoding="utf-8")
    result = subprocess.run([nginx, "-t", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr


# --- several replicas: the kubernetes overlay -------------------------------------------------

REPLICAS_KINDS = {
    "kustomization.yaml": ("kustomize.config.k8s.io/v1beta1", "Kustomization"),
    "configmap-patch.yaml": ("v1", "ConfigMap"),
    "deployment-patch.yaml": ("apps/v1", "Deployment"),
    "pvc-delete.yaml": ("v1", "PersistentVolumeClaim"),
    "hpa-patch.yaml": ("autoscaling/v2", "HorizontalPodAutoscaler"),
    "pdb-patch.yaml": ("policy/v1", "PodDisruptionBudget"),
    "redis-pvc.yaml": ("v1", "PersistentVolumeClaim"),
    "redis-deployment.yaml": ("apps/v1", "Deployment"),
    "redis-service.yaml": ("v1", "Service"),
    "redis-networkpolicy.yaml": ("networking.k8s.io/v1", "NetworkPolicy"),
    "secret.example.yaml": ("v1", "Secret"),
}


def overlay(name: str) -> dict[str, Any]:
    data: dict[str, Any] = load_yaml(K8S_REPLICAS / name)
    return data


def overlay_config() -> str:
    text: str = overlay("configmap-patch.yaml")["data"]["config.yaml"]
    return text


def redis_pod() -> tuple[dict[str, Any], dict[str, Any]]:
    """(pod template, the redis container) of the overlay's Redis Deployment."""
    template: dict[str, Any] = overlay("redis-deployment.yaml")["spec"]["template"]
    (redis,) = template["spec"]["containers"]
    return template, redis


def test_overlay_kinds_and_api_versions() -> None:
    assert {p.name for p in K8S_REPLICAS.glob("*.yaml")} == REPLICAS_KINDS.keys()
    for name, (api_version, kind) in REPLICAS_KINDS.items():
        data = overlay(name)
        assert (data["apiVersion"], data["kind"]) == (api_version, kind), name


def test_overlay_kustomization() -> None:
    kustomization = overlay("kustomization.yaml")
    resources, patches = kustomization["resources"], [p["path"] for p in kustomization["patches"]]
    assert resources[0] == "../base"
    assert (K8S_REPLICAS / resources[0]).resolve() == K8S_BASE
    listed = set(resources[1:]) | set(patches)
    assert listed == REPLICAS_KINDS.keys() - {"kustomization.yaml", "secret.example.yaml"}
    assert set(resources[1:]) == {n for n in listed if n.startswith("redis-")}
    # Each patch names an object of the base.
    base = {(k8s(n)["kind"], k8s(n)["metadata"]["name"]) for n in K8S_KINDS
            if n not in ("kustomization.yaml", "secret.example.yaml")}
    for name in patches:
        patch = overlay(name)
        assert (patch["kind"], patch["metadata"]["name"]) in base, name
    assert overlay("pvc-delete.yaml")["$patch"] == "delete"


def test_overlay_config_uses_the_overlay_redis() -> None:
    config = parse(overlay_config(), "configmap-patch.yaml")
    assert {"sora-2", "sora-2-pro"} <= build_catalogue(config).aliases().keys()
    store = urlsplit(config.store.url.get_secret_value())
    assert store.scheme == "redis"
    service = overlay("redis-service.yaml")
    (port,) = service["spec"]["ports"]
    assert store.hostname == service["metadata"]["name"]
    assert (store.port or 6379) == port["port"]
    assert [k.name for k in config.admin.keys] == ["ops"]
    assert config.tracker.enabled
    # At the HPA's largest size, the tracker stays within Ark's ~20 task GETs/s per key.
    assert overlay("hpa-patch.yaml")["spec"]["maxReplicas"] * config.tracker.per_key_rate <= 20
    # Otherwise the base's config.
    single, replicas = yaml.safe_load(configmap_config()), yaml.safe_load(overlay_config())
    for name in REPLICA_ONLY_SECTIONS:
        single.pop(name, None)
        replicas.pop(name, None)
    assert replicas == single


def test_overlay_redis_service_reaches_only_redis() -> None:
    template, redis = redis_pod()
    labels = template["metadata"]["labels"]
    service = overlay("redis-service.yaml")
    assert service["spec"]["selector"].items() <= labels.items()
    (port,) = service["spec"]["ports"]
    container_ports = {p["name"]: p["containerPort"] for p in redis["ports"]}
    target = port["targetPort"]
    assert container_ports.get(target, target) == 6379
    # The gateway's Service and PDB do not select the Redis pod, nor the reverse.
    gateway_labels = k8s("deployment.yaml")["spec"]["template"]["metadata"]["labels"]
    for selector in (k8s("service.yaml")["spec"]["selector"],
                     k8s("pdb.yaml")["spec"]["selector"]["matchLabels"]):
        assert not selector.items() <= labels.items()
    assert not service["spec"]["selector"].items() <= gateway_labels.items()
    # Only gateway pods may connect.
    policy = overlay("redis-networkpolicy.yaml")["spec"]
    assert policy["podSelector"]["matchLabels"].items() <= labels.items()
    (rule,) = policy["ingress"]
    (source,) = rule["from"]
    assert source["podSelector"]["matchLabels"].items() <= gateway_labels.items()
    assert [p["port"] for p in rule["ports"]] == [6379]


def test_overlay_redis_deployment() -> None:
    deployment = overlay("redis-deployment.yaml")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"]["type"] == "Recreate", "one writer on an RWO volume"
    template, redis = redis_pod()
    assert redis["image"].startswith("redis:7")
    args = redis["args"]
    assert args[args.index("--appendonly") + 1] == "yes"
    mounted = {m["mountPath"]: m["name"] for m in redis["volumeMounts"]}
    volumes = {v["name"]: v for v in template["spec"]["volumes"]}
    claim = volumes[mounted["/data"]]["persistentVolumeClaim"]["claimName"]
    assert claim == overlay("redis-pvc.yaml")["metadata"]["name"]
    security = redis["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert template["spec"]["securityContext"]["runAsNonRoot"] is True
    assert "PONG" in " ".join(redis["readinessProbe"]["exec"]["command"])


def test_overlay_gateway_deployment_patch() -> None:
    spec = overlay("deployment-patch.yaml")["spec"]
    assert spec["replicas"] == 3
    assert spec["strategy"]["type"] == "RollingUpdate"
    assert spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    hpa = overlay("hpa-patch.yaml")["spec"]
    assert hpa["minReplicas"] >= 2 and hpa["minReplicas"] <= spec["replicas"] <= hpa["maxReplicas"]
    pdb = overlay("pdb-patch.yaml")["spec"]
    assert pdb == {"minAvailable": 1, "maxUnavailable": None}, "null removes the base's field"
    # The SQLite volume and its mount are deleted, and so is its claim.
    pod = spec["template"]["spec"]
    (deleted_volume,) = [v for v in pod["volumes"] if v.get("$patch") == "delete"]
    base_volumes = {v["name"]: v for v in pod_spec()["volumes"]}
    claim = base_volumes[deleted_volume["name"]]["persistentVolumeClaim"]["claimName"]
    assert claim == overlay("pvc-delete.yaml")["metadata"]["name"]
    (patched,) = pod["containers"]
    assert patched["name"] == container()["name"]
    (deleted_mount,) = [m for m in patched["volumeMounts"] if m.get("$patch") == "delete"]
    base_mounts = {m["mountPath"]: m["name"] for m in container()["volumeMounts"]}
    assert base_mounts[deleted_mount["mountPath"]] == deleted_volume["name"]


def test_overlay_secrets() -> None:
    """Every ${ENV} of the overlay's config comes from the Secret, whose template lists it."""
    secret = overlay("secret.example.yaml")
    assert secret["metadata"]["name"] == k8s("secret.example.yaml")["metadata"]["name"]
    assert k8s("secret.example.yaml")["stringData"].keys() <= secret["stringData"].keys()
    for key, value in secret["stringData"].items():
        if key == "REDIS_URL":  # the overlay's own Redis (no password): works as given
            assert value == FAKE_ENV["REDIS_URL"]
        else:
            assert "REPLACE_ME" in value, key
    (patched,) = overlay("deployment-patch.yaml")["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in [*container()["env"],
                                                               *patched["env"]]}
    for name in env_references(overlay_config()):
        assert env[name]["name"] == secret["metadata"]["name"], name
        assert env[name]["key"] in secret["stringData"], name


def test_overlay_kustomize_builds() -> None:
    result = subprocess.run([kubectl(), "kustomize", str(K8S_REPLICAS)], capture_output=True,
                            text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    objects = {(d["kind"], d["metadata"]["name"]): d for d in yaml.safe_load_all(result.stdout)}
    assert ("PersistentVolumeClaim", "seedance-gateway-data") not in objects
    assert {("PersistentVolumeClaim", "seedance-gateway-redis-data"),
            ("Deployment", "seedance-gateway-redis"), ("Service", "seedance-gateway-redis"),
            ("NetworkPolicy", "seedance-gateway-redis"), ("Service", "seedance-gateway"),
            ("HorizontalPodAutoscaler", "seedance-gateway")} <= objects.keys()
    gateway = objects[("Deployment", "seedance-gateway")]
    assert gateway["spec"]["replicas"] == 3
    assert gateway["spec"]["strategy"]["type"] == "RollingUpdate"
    pod = gateway["spec"]["template"]["spec"]
    assert not [v for v in pod["volumes"] if "persistentVolumeClaim" in v]
    (c,) = pod["containers"]
    assert "/var/lib/seedance-gateway" not in {m["mountPath"] for m in c["volumeMounts"]}
    assert c["image"] == container()["image"].replace(  # the base's `images:` applies
        "seedance-gateway:0.1.0",
        "{newName}:{newTag}".format(**k8s("kustomization.yaml")["images"][0]))
    env = {e["name"] for e in c["env"]}
    config_text = objects[("ConfigMap", "seedance-gateway-config")]["data"]["config.yaml"]
    assert env_references(config_text) <= env
    assert parse(config_text, "built ConfigMap").store.url.get_secret_value().startswith("redis://")
    pdb = objects[("PodDisruptionBudget", "seedance-gateway")]["spec"]
    assert pdb["minAvailable"] == 1 and "maxUnavailable" not in pdb
