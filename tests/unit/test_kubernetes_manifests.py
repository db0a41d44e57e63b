"""deploy/kubernetes, checked offline: Kubernetes' own schemas (kubernetes-validate, strict: unknown fields
are errors), KEDA's v1alpha1 schemas (cloudcoil-models-keda, made strict the way the API server's field
validation is), and the facts the manifests share with the worker and its image."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from cloudcoil.models.keda.v1alpha1 import ScaledObject, TriggerAuthentication
from pydantic import BaseModel

from worker.config import ENVIRONMENT, load_settings

REPO = Path(__file__).resolve().parents[2]
MANIFESTS = REPO / "deploy" / "kubernetes"
KUBERNETES_VERSION = "1.30.0"
KEDA_MODELS: dict[str, type[BaseModel]] = {"ScaledObject": ScaledObject, "TriggerAuthentication": TriggerAuthentication}


def documents(name: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all((MANIFESTS / name).read_text()) if doc]


def _dict(value: Any) -> dict[str, Any]:
    assert isinstance(value, dict)
    return value


def _all() -> list[dict[str, Any]]:
    return [doc for path in sorted(MANIFESTS.glob("*.yaml")) for doc in documents(path.name)]


def _one(kind: str) -> dict[str, Any]:
    [doc] = [doc for doc in _all() if doc["kind"] == kind]
    return doc


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


def _keda_errors(doc: dict[str, Any]) -> list[str]:
    schema = _strict(KEDA_MODELS[doc["kind"]].model_json_schema(by_alias=True, mode="validation"))
    return [f"{'/'.join(map(str, error.path))}: {error.message}"
            for error in jsonschema.Draft202012Validator(schema).iter_errors(doc)]


def _container() -> dict[str, Any]:
    [container] = _one("Deployment")["spec"]["template"]["spec"]["containers"]
    return _dict(container)


@pytest.mark.parametrize("doc", [d for d in _all() if d["apiVersion"] != "keda.sh/v1alpha1"],
                         ids=lambda d: d["kind"])
def test_kubernetes_objects_match_the_kubernetes_schema(doc: dict[str, Any]) -> None:
    kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("doc", [d for d in _all() if d["apiVersion"] == "keda.sh/v1alpha1"],
                         ids=lambda d: d["kind"])
def test_keda_objects_match_kedas_schema(doc: dict[str, Any]) -> None:
    assert _keda_errors(doc) == []


def test_the_keda_check_refuses_a_misspelt_field() -> None:
    scaled = json.loads(json.dumps(_one("ScaledObject")))
    scaled["spec"]["minReplicas"] = 1  # the HPA's name, not KEDA's
    assert any("minReplicas" in error for error in _keda_errors(scaled))


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
