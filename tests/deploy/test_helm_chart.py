"""deploy/helm/lanai rendered by Helm's own template engine and checked against Kubernetes' schemas.

Rendering: helm-python-sdk (PyPI) binds with ctypes to libhelm_c, a C ABI built over Helm's Go SDK
(helm.sh/helm/v4, pinned by the wheel; no helm binary, no Go toolchain), so ``Chart.render`` is the
same engine as ``helm template``, with Sprig and ``required``/``fail``, and ``lint`` is ``helm lint``.

Validation: kubernetes-validate (PyPI) checks every built-in object, strictly (unknown fields are
errors), against the OpenAPI schemas of the oldest Kubernetes the chart allows and of the newest the
package ships. The ServiceMonitor is a CRD that those schemas do not hold: it is checked against
cloudcoil-models-prometheus-operator's models, generated from prometheus-operator's CRD schemas, and
any field those models do not know fails the test too.

Not done here: installing the chart into a cluster (there is none on this machine), so the probes,
the drain on SIGTERM and the Prometheus scrape are not exercised against a running pod.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import tomllib
import yaml

INSTALL = "pip install -e '.[test]' (helm-python-sdk, kubernetes-validate, cloudcoil-models-prometheus-operator)"
try:
    import helm_python as helm
    import kubernetes_validate
    from cloudcoil.models.prometheus_operator.v1 import ServiceMonitor
except ImportError as exc:  # pragma: no cover - only without the test extra
    pytest.skip(f"{exc.name} is missing: {INSTALL}", allow_module_level=True)

CHART = Path(__file__).resolve().parents[2] / "deploy" / "helm" / "lanai"
# The chart's kubeVersion floor and the newest schemas kubernetes-validate ships.
KUBE_VERSIONS = ("1.30.0", kubernetes_validate.latest_version())
RELEASE, NAMESPACE = "edge", "models"
FULLNAME = f"{RELEASE}-lanai"


def render(values: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Every object the chart renders with these values, as ``helm template`` would print them."""
    with helm.Chart.load(CHART) as chart:
        manifests = chart.render(values or {}, name=RELEASE, namespace=NAMESPACE, is_install=True)
    objects = []
    for path, text in sorted(manifests.items()):
        if path.endswith("NOTES.txt"):
            continue
        objects.extend(doc for doc in yaml.safe_load_all(text) if doc)
    return objects


def validate(objects: list[dict[str, Any]]) -> None:
    for obj in objects:
        if obj["kind"] == "ServiceMonitor":
            validate_service_monitor(obj)
            continue
        for version in KUBE_VERSIONS:
            kubernetes_validate.validate(obj, version, strict=True)


def _pruned(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _pruned(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_pruned(v) for v in value]
    return value


def validate_service_monitor(obj: dict[str, Any]) -> None:
    model = ServiceMonitor.model_validate(obj)
    # The models ignore fields they do not know; a field lost in the round trip is one the CRD lacks.
    assert _pruned(model.model_dump(by_alias=True, exclude_none=True, mode="json")) == obj


def one(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = [o for o in objects if o["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, got {[o['kind'] for o in objects]}"
    return found[0]


def kinds(objects: list[dict[str, Any]]) -> list[str]:
    return sorted(o["kind"] for o in objects)


def lanai_container(workload: dict[str, Any]) -> dict[str, Any]:
    (container,) = [c for c in workload["spec"]["template"]["spec"]["containers"] if c["name"] == "lanai"]
    return container


def volume(workload: dict[str, Any], name: str) -> dict[str, Any]:
    (found,) = [v for v in workload["spec"]["template"]["spec"]["volumes"] if v["name"] == name]
    return found


def mounts(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {m["mountPath"]: m for m in container["volumeMounts"]}


def env(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container["env"]}


def test_lint_is_clean() -> None:
    report = helm.lint(CHART, strict=True, kube_version="v1.30.0")
    assert report["errors"] == []
    # Severity 1 is information (e.g. "icon is recommended"); warnings and errors are 2 and 3.
    assert [m for m in report["messages"] if m["severity"] >= 2] == []


def test_default_is_a_deployment_with_probes_ports_and_a_claimed_store() -> None:
    objects = render()
    validate(objects)
    assert kinds(objects) == ["Deployment", "PersistentVolumeClaim", "Service"]
    deployment = one(objects, "Deployment")
    assert deployment["metadata"]["name"] == FULLNAME
    labels = deployment["metadata"]["labels"]
    assert labels["app.kubernetes.io/name"] == "lanai" and labels["app.kubernetes.io/instance"] == RELEASE
    spec = deployment["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"] == {"type": "Recreate"}  # a ReadWriteOnce store cannot be shared by two pods
    assert spec["selector"]["matchLabels"].items() <= spec["template"]["metadata"]["labels"].items()

    container = lanai_container(deployment)
    assert container["args"] == ["serve"]
    assert {(p["name"], p["containerPort"]) for p in container["ports"]} == {("http", 8000), ("grpc", 8001)}
    assert container["livenessProbe"]["httpGet"] == {"path": "/health/live", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/health/ready", "port": "http"}
    startup = container["startupProbe"]
    assert startup["httpGet"] == {"path": "/health/live", "port": "http"}
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 300  # a Pi loading models from SD

    assert mounts(container)["/var/lib/lanai"]["name"] == "store"
    claim = one(objects, "PersistentVolumeClaim")
    assert volume(deployment, "store") == {"name": "store", "persistentVolumeClaim": {"claimName": FULLNAME}}
    assert claim["metadata"]["name"] == FULLNAME
    assert claim["spec"]["resources"]["requests"]["storage"] == "8Gi"

    pod = spec["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] == 10001
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True and security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    assert mounts(container)["/tmp"]["name"] == "tmp"  # the one writable place besides the store
    assert pod["automountServiceAccountToken"] is False

    shutdown = int(env(container)["LANAI_SHUTDOWN_TIMEOUT"]["value"])
    pre_stop = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert pod["terminationGracePeriodSeconds"] > pre_stop + shutdown
    assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]
    assert "nodeSelector" not in pod

    service = one(objects, "Service")
    assert service["spec"]["type"] == "ClusterIP"
    assert service["spec"]["selector"] == spec["selector"]["matchLabels"]
    assert {(p["name"], p["port"], p["targetPort"]) for p in service["spec"]["ports"]} == {
        ("http", 8000, "http"),
        ("grpc", 8001, "grpc"),
    }


def test_daemonset_for_a_pi_fleet() -> None:
    objects = render({"kind": "DaemonSet", "arm64Only": True, "service": {"type": "NodePort"}})
    validate(objects)
    assert kinds(objects) == ["DaemonSet", "Service"]  # no claim: each node keeps its own store
    daemonset = one(objects, "DaemonSet")
    assert "replicas" not in daemonset["spec"]
    assert daemonset["spec"]["updateStrategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}}
    pod = daemonset["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"kubernetes.io/arch": "arm64"}
    assert volume(daemonset, "store")["hostPath"] == {"path": "/var/lib/lanai", "type": "DirectoryOrCreate"}
    container = lanai_container(daemonset)
    assert container["readinessProbe"]["httpGet"]["path"] == "/health/ready"
    assert mounts(container)["/var/lib/lanai"]["name"] == "store"
    (init,) = pod["initContainers"]
    assert init["command"] == ["chown", "10001:10001", "/var/lib/lanai"]
    assert init["securityContext"]["capabilities"] == {"drop": ["ALL"], "add": ["CHOWN"]}
    assert one(objects, "Service")["spec"]["type"] == "NodePort"


@pytest.mark.parametrize(
    ("persistence", "expected"),
    [
        ({"existingClaim": "models"}, {"persistentVolumeClaim": {"claimName": "models"}}),
        ({"enabled": False}, {"emptyDir": {}}),
    ],
)
@pytest.mark.parametrize("kind", ["Deployment", "DaemonSet"])
def test_store_on_an_existing_claim_or_an_empty_dir(kind: str, persistence: dict, expected: dict) -> None:
    objects = render({"kind": kind, "persistence": persistence})
    validate(objects)
    assert "PersistentVolumeClaim" not in kinds(objects)
    workload = one(objects, kind)
    assert volume(workload, "store") == {"name": "store", **expected}
    assert "initContainers" not in workload["spec"]["template"]["spec"]


def test_config_follow_keys_secrets_and_service_monitor(tmp_path: Path) -> None:
    values = {
        "config": {"server": {"trusted_signing_keys": ["/etc/lanai/keys/team.pub"], "access_log": True}},
        "follow": [
            {"model": "resnet", "reference": "registry.lan:5000/models/resnet:stable"},
            {"model": "ocr", "reference": 'registry.lan:5000/models/ocr:"edge"'},
        ],
        "signingKeys": {"team.pub": "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA\n-----END PUBLIC KEY-----\n"},
        "apiKey": {"existingSecret": "lanai-keys"},
        "metricsKey": {"existingSecret": "lanai-keys"},
        "serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"}},
    }
    objects = render(values)
    validate(objects)
    assert kinds(objects) == [
        "ConfigMap",
        "ConfigMap",
        "Deployment",
        "PersistentVolumeClaim",
        "Service",
        "ServiceMonitor",
    ]
    config_maps = {o["metadata"]["name"]: o for o in objects if o["kind"] == "ConfigMap"}
    text = config_maps[FULLNAME]["data"]["lanai.toml"]
    parsed = tomllib.loads(text)
    assert parsed["server"] == {"access_log": True, "trusted_signing_keys": ["/etc/lanai/keys/team.pub"]}
    assert parsed["follow"] == values["follow"]
    assert config_maps[f"{FULLNAME}-keys"]["data"] == values["signingKeys"]

    # lanai's own loader takes the file: the [server] keys are its settings.
    from lanai.config import load_settings

    (tmp_path / "lanai.toml").write_text(text, encoding="utf-8")
    settings = load_settings(tmp_path / "lanai.toml", environ={})
    assert settings.trusted_signing_keys == ("/etc/lanai/keys/team.pub",) and settings.access_log is True

    deployment = one(objects, "Deployment")
    container = lanai_container(deployment)
    assert container["args"] == ["serve", "--config", "/etc/lanai/lanai.toml"]
    assert mounts(container)["/etc/lanai/lanai.toml"] == {
        "name": "config",
        "mountPath": "/etc/lanai/lanai.toml",
        "subPath": "lanai.toml",
        "readOnly": True,
    }
    assert mounts(container)["/etc/lanai/keys"]["name"] == "signing-keys"
    assert volume(deployment, "config")["configMap"]["name"] == FULLNAME
    variables = env(container)
    assert variables["LANAI_API_KEY"]["valueFrom"]["secretKeyRef"] == {"name": "lanai-keys", "key": "api-key"}
    assert variables["LANAI_METRICS_KEY"]["valueFrom"]["secretKeyRef"] == {"name": "lanai-keys", "key": "metrics-key"}
    # A config change rolls the pods.
    annotation = deployment["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
    assert annotation != one(render(), "Deployment")["spec"]["template"]["metadata"]["annotations"]["checksum/config"]

    monitor = one(objects, "ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    assert monitor["spec"]["selector"]["matchLabels"] == one(objects, "Service")["spec"]["selector"]
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] == "http" and endpoint["path"] == "/metrics"
    assert endpoint["authorization"] == {"type": "Bearer", "credentials": {"name": "lanai-keys", "key": "metrics-key"}}


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"kind": "StatefulSet"}, "kind must be Deployment or DaemonSet"),
        ({"terminationGracePeriodSeconds": 20}, "terminationGracePeriodSeconds must cover"),
        ({"follow": [{"model": "resnet"}]}, "every follow entry needs a reference"),
    ],
)
def test_refuses_values_that_cannot_work(values: dict, message: str) -> None:
    with pytest.raises(helm.HelmError, match=message):
        render(values)


def test_the_validators_reject_what_a_broken_template_would_produce() -> None:
    """The checks above can fail: the same validators refuse damaged copies of the rendered objects."""
    objects = render({"serviceMonitor": {"enabled": True}})
    deployment = copy.deepcopy(one(objects, "Deployment"))
    lanai_container(deployment)["ports"][0]["containerPort"] = "8000"
    with pytest.raises(kubernetes_validate.ValidationError):
        validate([deployment])
    deployment = copy.deepcopy(one(objects, "Deployment"))
    lanai_container(deployment)["readinessProbe"]["httpGet"]["paths"] = "/health/ready"
    with pytest.raises(kubernetes_validate.ValidationError):
        validate([deployment])
    monitor = copy.deepcopy(one(objects, "ServiceMonitor"))
    monitor["spec"]["endpoints"][0]["intervall"] = "30s"
    with pytest.raises(AssertionError):
        validate([monitor])
    monitor = copy.deepcopy(one(objects, "ServiceMonitor"))
    monitor["spec"]["endpoints"] = {"port": "http"}
    with pytest.raises(ValueError):  # pydantic's ValidationError is a ValueError
        validate([monitor])
