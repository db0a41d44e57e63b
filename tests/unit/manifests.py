"""deploy/kubernetes's profiles as `kubectl apply -k` would apply them, for the tests that check them offline.

No kustomize binary is available here, so this builds the one subset of kustomize the profiles use and
refuses anything else: `resources` (files, or a directory with its own kustomization.yaml), `patches` that
are RFC 6902 JSON patches with a target (applied with the `jsonpatch` package, as kustomize applies
them), and `images` (newName / newTag for a container image by name).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonpatch
import yaml

REPO = Path(__file__).resolve().parents[2]
MANIFESTS = REPO / "deploy" / "kubernetes"
PROFILES = {"default": MANIFESTS, "small-compute": MANIFESTS / "small-compute"}
UNDERSTOOD = {"apiVersion", "kind", "resources", "patches", "images"}
TARGET_KEYS = {"group", "version", "kind", "name"}


def kustomization(folder: Path) -> dict[str, Any]:
    spec = yaml.safe_load((folder / "kustomization.yaml").read_text())
    assert isinstance(spec, dict) and spec.get("kind") == "Kustomization", folder
    unknown = set(spec) - UNDERSTOOD
    assert not unknown, f"{folder}: this check does not understand {sorted(unknown)}; extend tests/unit/manifests.py"
    return spec


def _matches(doc: dict[str, Any], target: dict[str, str]) -> bool:
    assert set(target) <= TARGET_KEYS, target
    group, _, version = doc["apiVersion"].rpartition("/")
    actual = {"group": group, "version": version, "kind": doc["kind"], "name": doc["metadata"]["name"]}
    return all(actual[key] == value for key, value in target.items())


def _set_images(doc: dict[str, Any], images: list[dict[str, str]]) -> None:
    pod = doc.get("spec", {}).get("template", {}).get("spec", {})
    for container in pod.get("containers", []):
        name, _, tag = container["image"].partition(":")
        for image in images:
            if image["name"] == name:
                container["image"] = f"{image.get('newName', name)}:{image.get('newTag', tag or 'latest')}"


def build(folder: Path) -> list[dict[str, Any]]:
    """The objects `kubectl apply -k folder` would send, in order."""
    spec = kustomization(folder)
    docs: list[dict[str, Any]] = []
    for resource in spec.get("resources", []):
        path = (folder / resource).resolve()
        if path.is_dir():
            docs.extend(build(path))
        else:
            docs.extend(doc for doc in yaml.safe_load_all(path.read_text()) if doc)
    for patch in spec.get("patches", []):
        operations = yaml.safe_load(patch["patch"])
        assert isinstance(operations, list), f"{folder}: only RFC 6902 patches are understood here"
        targets = [i for i, doc in enumerate(docs) if _matches(doc, patch["target"])]
        assert len(targets) == 1, f"{folder}: patch target {patch['target']} matches {len(targets)} objects"
        docs[targets[0]] = jsonpatch.apply_patch(docs[targets[0]], operations)
    for doc in docs:
        _set_images(doc, spec.get("images", []))
    return docs


def profile(name: str) -> list[dict[str, Any]]:
    return build(PROFILES[name])


def one(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    [doc] = [doc for doc in docs if doc["kind"] == kind]
    return doc
