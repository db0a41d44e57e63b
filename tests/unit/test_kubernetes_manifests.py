"""deploy/kubernetes, checked offline: both profiles (the default and small-compute/) as `kubectl apply -k`
builds them (tests/unit/manifests.py), against Kubernetes' own schemas (kubernetes-validate, strict:
unknown fields are errors), KEDA's v1alpha1 and the Prometheus Operator's v1 schemas (cloudcoil models,
made strict the way the API server's field validation is), and the facts the manifests share with the
worker, its image and the alert rules."""

from __future__ import annotations

import json
import re
from importlib.metadata import version
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from cloudcoil.models.keda.v1alpha1 import ScaledObject, TriggerAuthentication
from cloudcoil.models.prometheus_operator.v1 import PodMonitor
from pydantic import BaseModel

from tests.unit.manifests import MANIFESTS, PROFILES, REPO, build, one, profile
from worker.config import ENVIRONMENT, load_settings

KUBERNETES_VERSION = "1.30.0"
CRD_MODELS: dict[str, type[BaseModel]] = {"ScaledObject": ScaledObject, "TriggerAuthentication": TriggerAuthentication,
                                          "PodMonitor": PodMonitor}
CRD_GROUPS = ("keda.sh/", "monitoring.coreos.com/")
DEPLOYMENT_DOC = REPO / "docs" / "deployment.md"
ALERTS = REPO / "monitoring" / "alerts.yml"


def _dict(value: Any) -> dict[str, Any]:
    assert isinstance(value, dict)
    return value


def _all() -> list[dict[str, Any]]:
    return profile("default")


def _one(kind: str) -> dict[str, Any]:
    return one(_all(), kind)


def _every_profiles_objects() -> list[tuple[str, dict[str, Any]]]:
    return [(name, doc) for name in PROFILES for doc in profile(name)]


def _strict(schema: Any) -> Any:
    """Every object with declared properties refuses others, as `kubectl apply --validate=strict` does."""
    if isinstance(schema, dict):
        if "properties" in schema and "additionalProperties" not in schema:
            schema["additionalProperties"] = False
        for value in schema.values():
            _strict(value)
    elif isinstance(schema, list):
        for value in schema:
            _strict(value)
    return schema


def _crd_errors(doc: dict[str, Any]) -> list[str]:
    schema = _strict(CRD_MODELS[doc["kind"]].model_json_schema(by_alias=True, mode="validation"))
    return [f"{'/'.join(map(str, error.path))}: {error.message}"
            for error in jsonschema.Draft202012Validator(schema).iter_errors(doc)]


def _container() -> dict[str, Any]:
    [container] = _one("Deployment")["spec"]["template"]["spec"]["containers"]
    return _dict(container)


@pytest.mark.parametrize(("profile_name", "doc"), [(p, d) for p, d in _every_profiles_objects()
                                                    if not d["apiVersion"].startswith(CRD_GROUPS)],
                         ids=lambda value: value if isinstance(value, str) else value["kind"])
def test_kubernetes_objects_match_the_kubernetes_schema(profile_name: str, doc: dict[str, Any]) -> None:
    kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize(("profile_name", "doc"), [(p, d) for p, d in _every_profiles_objects()
                                                    if d["apiVersion"].startswith(CRD_GROUPS)],
                         ids=lambda value: value if isinstance(value, str) else value["kind"])
def test_keda_and_prometheus_operator_objects_match_their_schemas(profile_name: str, doc: dict[str, Any]) -> None:
    assert _crd_errors(doc) == []


def test_the_crd_check_refuses_a_misspelt_field() -> None:
    scaled = json.loads(json.dumps(_one("ScaledObject")))
    scaled["spec"]["minReplicas"] = 1  # the HPA's name, not KEDA's
    assert any("minReplicas" in error for error in _crd_errors(scaled))
    monitor = json.loads(json.dumps(_one("PodMonitor")))
    monitor["spec"]["podMetricEndpoints"] = monitor["spec"].pop("podMetricsEndpoints")
    assert any("podMetricEndpoints" in error for error in _crd_errors(monitor))


def test_the_kubernetes_check_refuses_a_misspelt_field() -> None:
    deployment = json.loads(json.dumps(_one("Deployment")))
    deployment["spec"]["template"]["spec"]["containers"][0]["livenesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


def test_keda_scales_the_deployment_with_the_queue_observers_credentials() -> None:
    scaled, auth, deployment = _one("ScaledObject"), _one("TriggerAuthentication"), _one("Deployment")
    assert scaled["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    [trigger] = scaled["spec"]["triggers"]
    assert trigger["authenticationRef"]["name"] == auth["metadata"]["name"]
    assert "replicas" not in deployment["spec"], "the autoscaler owns the replica count"


def test_keda_target_is_the_workers_concurrency() -> None:
    env = {item["name"]: item.get("value") for item in _container()["env"]}
    [trigger] = _one("ScaledObject")["spec"]["triggers"]
    assert trigger["metadata"]["targetQueryValue"] == env["WORKER_CONCURRENCY"]


def test_the_container_sets_only_settings_the_worker_reads_and_they_are_valid() -> None:
    known = {variable for variable, _ in ENVIRONMENT.values()}
    env = {item["name"]: item.get("value", "from a secret") for item in _container()["env"]}
    assert set(env) <= known, set(env) - known
    settings = load_settings(env | {"DATABASE_URL": "postgresql://assessment_worker@db/postgres"})
    port = _container()["ports"][0]
    assert port == {"name": "ops", "containerPort": settings.ops_port}
    grace = _one("Deployment")["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace > settings.shutdown_grace_seconds, "jobs in flight need their grace period before SIGKILL"
    assert settings.shutdown_grace_seconds > settings.ai_deadline_seconds, \
        "a scale-down must let the AI calls in flight finish, or they are asked (and paid) twice"


def test_the_pod_runs_as_the_images_user_and_probes_as_its_healthcheck() -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    user, group = re.search(r"^USER (\d+):(\d+)$", dockerfile, re.MULTILINE).groups()  # type: ignore[union-attr]
    pod = _one("Deployment")["spec"]["template"]["spec"]["securityContext"]
    assert (str(pod["runAsUser"]), str(pod["runAsGroup"]), pod["runAsNonRoot"]) == (user, group, True)
    healthcheck = re.search(r'HEALTHCHECK .*\n\s+CMD (\[.*\])', dockerfile)
    assert healthcheck is not None
    assert _container()["livenessProbe"]["exec"]["command"] == json.loads(healthcheck.group(1))


def test_only_prometheus_may_reach_the_ops_port() -> None:
    policy = _one("NetworkPolicy")
    assert policy["spec"]["podSelector"]["matchLabels"] == \
        _one("Deployment")["spec"]["template"]["metadata"]["labels"]
    [rule] = policy["spec"]["ingress"]
    assert rule["ports"] == [{"port": "ops"}]
    assert [peer["podSelector"]["matchLabels"] for peer in rule["from"]] == [{"app.kubernetes.io/name": "prometheus"}]


def alert_jobs() -> set[str]:
    return set(re.findall(r'job="([^"]+)"', ALERTS.read_text()))


def test_the_pod_monitors_job_is_the_job_the_alerts_select() -> None:
    # The Prometheus Operator names the job after the pod's `jobLabel` label, else "<namespace>/<name>".
    monitor, pod = _one("PodMonitor")["spec"], _one("Deployment")["spec"]["template"]
    job = pod["metadata"]["labels"][monitor["jobLabel"]]
    assert alert_jobs() == {job}, "AssessmentNoWorkerRunning would fire for ever"


def test_the_pod_monitor_scrapes_the_workers_pods_on_the_ops_port() -> None:
    monitor, pod = _one("PodMonitor")["spec"], _one("Deployment")["spec"]["template"]
    assert monitor["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    [endpoint] = monitor["podMetricsEndpoints"]
    assert endpoint["path"] == "/metrics"
    assert endpoint["port"] in {port["name"] for port in _container()["ports"]}
    assert "namespaceSelector" not in monitor, "the worker's own namespace, where the PodMonitor is applied"


def test_the_small_compute_profile_never_runs_a_second_pod() -> None:
    small = profile("small-compute")
    rolling = one(small, "Deployment")["spec"]["strategy"]["rollingUpdate"]
    scaled = one(small, "ScaledObject")["spec"]
    assert (rolling["maxSurge"], rolling["maxUnavailable"]) == (0, 1)
    assert (scaled["minReplicaCount"], scaled["maxReplicaCount"], scaled["fallback"]["replicas"]) == (1, 1, 1)
    # Everything else is the default profile's.
    default = _all()
    assert [doc["kind"] for doc in small] == [doc["kind"] for doc in default]
    assert one(small, "Deployment")["spec"]["template"] == _one("Deployment")["spec"]["template"]


def test_the_default_profile_is_what_kubectl_apply_k_reads() -> None:
    # kustomization.yaml lists every manifest in the folder, so none is silently left out of an apply.
    listed = set(yaml.safe_load((MANIFESTS / "kustomization.yaml").read_text())["resources"])
    assert listed == {path.name for path in MANIFESTS.glob("*.yaml")} - {"kustomization.yaml"}
    assert [doc["kind"] for doc in build(MANIFESTS)] == \
        ["Deployment", "NetworkPolicy", "TriggerAuthentication", "ScaledObject", "PodMonitor"]


def test_the_image_is_the_one_kustomization_names() -> None:
    [image] = yaml.safe_load((MANIFESTS / "kustomization.yaml").read_text())["images"]
    raw = next(yaml.safe_load_all((MANIFESTS / "worker.yaml").read_text()))
    assert raw["spec"]["template"]["spec"]["containers"][0]["image"] == image["name"]
    assert _container()["image"] == f"{image['newName']}:{image['newTag']}"


def test_the_prerequisites_name_the_crd_versions_the_manifests_are_checked_against() -> None:
    section = DEPLOYMENT_DOC.read_text().split("### Prerequisites", 1)[1].split("\n### ", 1)[0]
    keda = ".".join(version("cloudcoil.models.keda").split(".")[:2])
    operator = ".".join(version("cloudcoil.models.prometheus_operator").split(".")[:2])
    assert f"KEDA {keda}" in section and f"/v{keda}." in section, f"name KEDA {keda} and its install command"
    assert f"Prometheus Operator {operator}" in section
    for command in ("docker build", "docker push", "kustomize edit set image", "kubectl create secret",
                    "kubectl apply -k deploy/kubernetes/", "kubectl apply -k deploy/kubernetes/small-compute/"):
        assert command in section, command
