"""deploy/kubernetes rendered by kustomize and checked object by object: the core kinds against
Kubernetes' own JSON schemas (the `kubernetes-validate` package bundles them, so no cluster and
no network), prometheus-operator's ServiceMonitor and PrometheusRule against the
openAPIV3Schema of their CRDs (vendored in tests/fixtures/crds/ with their source). Both
installs: deploy/kubernetes (one replica) and deploy/kubernetes/replicas.

Beyond the schemas, the pieces that must agree: the PrometheusRule carries exactly
deploy/prometheus/alerts.yml's rules, the dashboard ConfigMap is the dashboard file byte for
byte, the Ingress and ServiceMonitor reach the Service, and every ${ENV} of the rendered
config comes from the Secret whose template lists it.
"""

from __future__ import annotations

import copy
import functools
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import all_versions

from gateway.config import Config, parse_config
from tests.test_deploy import (
    ALERTS,
    DASHBOARD,
    DEPLOY,
    FAKE_ENV,
    K8S,
    K8S_BASE,
    K8S_REPLICAS,
    PROMETHEUS,
    ROOT,
    env_references,
    kubectl,
    load_yaml,
    run_promtool,
)

CRDS = ROOT / "tests" / "fixtures" / "crds"
OPERATOR_GROUP = "monitoring.coreos.com"
SECRET_NAME = "seedance-gateway-secrets"
# The oldest and the newest Kubernetes whose schemas the package bundles.
K8S_VERSIONS = (all_versions()[0], all_versions()[-1])
# install -> (kustomization folder, the Secret template for it)
INSTALLS = {
    "single": (K8S, K8S_BASE / "secret.example.yaml"),
    "replicas": (K8S_REPLICAS, K8S_REPLICAS / "secret.example.yaml"),
}


# --- rendering -------------------------------------------------------------------------------


@functools.cache
def _render(folder: Path) -> tuple[dict[str, Any], ...]:
    result = subprocess.run([kubectl(), "kustomize", str(folder)], capture_output=True,
                            text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    return tuple(d for d in yaml.safe_load_all(result.stdout) if d)


def rendered(install: str) -> dict[tuple[str, str], dict[str, Any]]:
    """(kind, name) -> object, as `kubectl kustomize` builds the install (copies: callers may
    change them)."""
    objects = copy.deepcopy(_render(INSTALLS[install][0]))
    by_key = {(o["kind"], o["metadata"]["name"]): o for o in objects}
    assert len(by_key) == len(objects), "two objects of the same kind and name"
    return by_key


def secret_template(install: str) -> dict[str, str]:
    secret = load_yaml(INSTALLS[install][1])
    assert secret["metadata"]["name"] == SECRET_NAME
    values: dict[str, str] = secret["stringData"]
    return values


# --- schemas ---------------------------------------------------------------------------------


def _strict(schema: Any) -> Any:
    """A CRD schema that refuses unknown fields, as the API server's strict field validation
    (kubectl's default) does: an object with `properties` and no
    x-kubernetes-preserve-unknown-fields gets additionalProperties: false."""
    if isinstance(schema, list):
        return [_strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    result = {k: _strict(v) for k, v in schema.items()}
    if ("properties" in schema and "additionalProperties" not in schema
            and not schema.get("x-kubernetes-preserve-unknown-fields")):
        result["additionalProperties"] = False
    return result


@functools.cache
def crd_validators() -> dict[tuple[str, str], jsonschema.protocols.Validator]:
    """(apiVersion, kind) -> a validator from the vendored CRD's openAPIV3Schema."""
    validators = {}
    for path in sorted(CRDS.glob("*.yaml")):
        crd = load_yaml(path)
        assert crd["kind"] == "CustomResourceDefinition" and crd["spec"]["group"] == OPERATOR_GROUP
        for version in crd["spec"]["versions"]:
            if not version["served"]:
                continue
            schema = _strict(version["schema"]["openAPIV3Schema"])
            schema["properties"]["metadata"] = {"type": "object"}  # checked as ObjectMeta below
            key = (f"{OPERATOR_GROUP}/{version['name']}", crd["spec"]["names"]["kind"])
            validators[key] = jsonschema.Draft7Validator(schema)
    return validators


def validate(obj: dict[str, Any]) -> None:
    """Raises when `obj` does not match its schema, for every version in K8S_VERSIONS."""
    if obj["apiVersion"].startswith(f"{OPERATOR_GROUP}/"):
        validator = crd_validators().get((obj["apiVersion"], obj["kind"]))
        assert validator is not None, f"no vendored CRD for {obj['apiVersion']} {obj['kind']}"
        validator.validate(obj)
        # The metadata of a custom object is an ObjectMeta: check it as a ConfigMap's.
        obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": obj["metadata"]}
    for version in K8S_VERSIONS:
        kubernetes_validate.validate(obj, version, strict=True)


@pytest.mark.parametrize("install", INSTALLS)
def test_every_rendered_object_matches_its_schema(install: str) -> None:
    objects = rendered(install)
    kinds = {kind for kind, _ in objects}
    assert {"Deployment", "Service", "Ingress", "ServiceMonitor", "PrometheusRule"} <= kinds
    for (kind, name), obj in objects.items():
        try:
            validate(obj)
        except (jsonschema.ValidationError, kubernetes_validate.ValidationError) as exc:
            path = ".".join(str(p) for p in exc.absolute_path)
            pytest.fail(f"{install}: {kind}/{name} at {path or '.'}: {exc.message}")


@pytest.mark.parametrize("install", INSTALLS)
def test_secret_template_matches_its_schema(install: str) -> None:
    validate(load_yaml(INSTALLS[install][1]))


def test_the_schemas_refuse_what_a_cluster_refuses() -> None:
    """The checks above can fail: misspelt or misplaced fields are caught in core kinds and in
    the operator's kinds alike."""
    objects = rendered("single")
    deployment = objects[("Deployment", "seedance-gateway")]
    deployment["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy "] = "Always"
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(deployment)
    monitor = objects[("ServiceMonitor", "seedance-gateway")]
    monitor["spec"]["endpoints"][0]["intervall"] = "15s"
    with pytest.raises(jsonschema.ValidationError):
        validate(monitor)
    rule = objects[("PrometheusRule", "seedance-gateway")]
    rule["spec"]["groups"][0]["rules"][0]["for"] = 120  # a duration is a string
    with pytest.raises(jsonschema.ValidationError):
        validate(rule)
    ingress = objects[("Ingress", "seedance-gateway")]
    del ingress["spec"]["rules"][0]["http"]["paths"][0]["pathType"]
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(ingress)


def test_vendored_crds_say_where_they_come_from() -> None:
    for path in CRDS.glob("*.yaml"):
        head = path.read_text(encoding="utf-8").split("\n---", 1)[0]
        assert "github.com/prometheus-operator/prometheus-operator/blob/" in head, path.name
        assert "0.93.0" in head and "Apache-2.0" in head, path.name
    assert {p.name for p in CRDS.glob("*.yaml")} == {
        "monitoring.coreos.com_servicemonitors.yaml",
        "monitoring.coreos.com_prometheusrules.yaml",
    }


# --- the pieces agree ------------------------------------------------------------------------


@pytest.mark.parametrize("install", INSTALLS)
def test_prometheus_rule_is_alerts_yml(install: str) -> None:
    """The same rules as deploy/prometheus/alerts.yml, so the two never drift."""
    rule = rendered(install)[("PrometheusRule", "seedance-gateway")]
    assert rule["spec"]["groups"] == load_yaml(ALERTS)["groups"], (
        "deploy/kubernetes/base/prometheusrule.yaml differs from deploy/prometheus/alerts.yml: "
        "copy alerts.yml's `groups` into its spec.groups")


def test_promtool_accepts_the_prometheus_rule(tmp_path: Path) -> None:
    groups = load_yaml(K8S_BASE / "prometheusrule.yaml")["spec"]["groups"]
    path = tmp_path / "prometheusrule-rules.yml"
    path.write_text(yaml.safe_dump({"groups": groups}), encoding="utf-8")
    result = run_promtool("check", "rules", str(path))
    count = sum(len(g["rules"]) for g in groups)
    assert f"{count} rules found" in result.stdout


@pytest.mark.parametrize("install", INSTALLS)
def test_dashboard_configmap_is_the_dashboard_file(install: str) -> None:
    dashboards = [o for (kind, _), o in rendered(install).items() if kind == "ConfigMap"
                  and o["metadata"].get("labels", {}).get("grafana_dashboard") == "1"]
    (configmap,) = dashboards
    assert configmap["metadata"]["name"] == "seedance-gateway-dashboard", "no hash suffix"
    assert configmap["data"] == {DASHBOARD.name: DASHBOARD.read_text(encoding="utf-8")}
    generator = load_yaml(DEPLOY / "grafana" / "kustomization.yaml")["configMapGenerator"]
    assert [(DEPLOY / "grafana" / f).resolve() for g in generator for f in g["files"]] == [
        DASHBOARD]


@pytest.mark.parametrize("install", INSTALLS)
def test_ingress_serves_the_service_over_tls(install: str) -> None:
    objects = rendered(install)
    service = objects[("Service", "seedance-gateway")]
    spec = objects[("Ingress", "seedance-gateway")]["spec"]
    (tls,) = spec["tls"]
    assert tls["secretName"] == "seedance-gateway-tls"
    assert tls["hosts"] == [rule["host"] for rule in spec["rules"]] == ["gateway.example.com"]
    (path,) = spec["rules"][0]["http"]["paths"]
    assert (path["path"], path["pathType"]) == ("/", "Prefix")
    backend = path["backend"]["service"]
    assert backend["name"] == service["metadata"]["name"]
    assert backend["port"]["name"] in {p["name"] for p in service["spec"]["ports"]}
    annotations = objects[("Ingress", "seedance-gateway")]["metadata"]["annotations"]
    assert annotations["nginx.ingress.kubernetes.io/proxy-body-size"] == "64m"
    assert annotations["nginx.ingress.kubernetes.io/proxy-buffering"] == "off"
    readme = (DEPLOY / "README.md").read_text(encoding="utf-8")
    assert "gateway.example.com" in readme and "seedance-gateway-tls" in readme


def _config(objects: dict[tuple[str, str], dict[str, Any]], env: dict[str, str]) -> Config:
    text = objects[("ConfigMap", "seedance-gateway-config")]["data"]["config.yaml"]
    return parse_config(yaml.safe_load(text), env=env, source="rendered ConfigMap")


@pytest.mark.parametrize("install", INSTALLS)
def test_service_monitor_scrapes_the_job_the_alerts_expect(install: str) -> None:
    objects = rendered(install)
    service = objects[("Service", "seedance-gateway")]
    monitor = objects[("ServiceMonitor", "seedance-gateway")]["spec"]
    # A ServiceMonitor selects Services by their labels; the job is the Service's name.
    assert monitor["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert "jobLabel" not in monitor
    assert service["metadata"]["name"] == "seedance-gateway"
    alerts = " ".join(r["expr"] for g in load_yaml(ALERTS)["groups"] for r in g["rules"])
    assert 'job="seedance-gateway"' in alerts
    (endpoint,) = monitor["endpoints"]
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
    assert endpoint["path"] == "/metrics"
    assert endpoint["interval"] == load_yaml(PROMETHEUS)["global"]["scrape_interval"]
    # The token it sends is the one the gateway wants.
    credentials = endpoint["authorization"]["credentials"]
    assert credentials == {"name": SECRET_NAME, "key": "METRICS_BEARER"}
    config = _config(objects, FAKE_ENV | secret_template(install))
    assert config.metrics.bearer is not None
    assert config.metrics.bearer.get_secret_value() == secret_template(install)["METRICS_BEARER"]


@pytest.mark.parametrize("install", INSTALLS)
def test_every_config_reference_comes_from_the_secret(install: str) -> None:
    """Including the admin key (both installs) and the Redis URL (replicas)."""
    objects = rendered(install)
    (container,) = objects[("Deployment", "seedance-gateway")]["spec"]["template"]["spec"][
        "containers"]
    env = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"]}
    text = objects[("ConfigMap", "seedance-gateway-config")]["data"]["config.yaml"]
    references = env_references(text)
    expected = {"ARK_API_KEY", "GATEWAY_KEY_ALICE", "GATEWAY_ADMIN_KEY", "METRICS_BEARER"}
    assert references == (expected | {"REDIS_URL"} if install == "replicas" else expected)
    template = secret_template(install)
    for name in references:
        assert env[name] == {"name": SECRET_NAME, "key": name}, name
        assert name in template, name
    config = _config(objects, dict(template))
    assert [k.name for k in config.admin.keys] == ["ops"]
    assert config.admin.keys[0].secret.get_secret_value() == template["GATEWAY_ADMIN_KEY"]
    if install == "replicas":
        assert yaml.safe_load(text)["store"]["url"] == "${REDIS_URL}", "no URL in a ConfigMap"
        store = config.store.url.get_secret_value()
        redis = objects[("Service", "seedance-gateway-redis")]
        assert store == f"redis://{redis['metadata']['name']}:{redis['spec']['ports'][0]['port']}/0"
    # Every secret value but the in-cluster Redis's address is a placeholder.
    for name, value in template.items():
        assert "REPLACE_ME" in value or name == "REDIS_URL", name
