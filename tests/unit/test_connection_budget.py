"""One connection budget, stated everywhere: what a worker opens (worker/db.py's pools plus its LISTEN
connection), and what each Kubernetes profile can hold at its peak (replicas, KEDA's fallback and a
rollout's extra pod), as docs/deployment.md's table says."""

from __future__ import annotations

import re

import pytest

from tests.unit.manifests import PROFILES, REPO, one, profile
from worker import db

# The main pool, the progress pool, and the dedicated LISTEN connection (worker/db.py).
BUDGET = db.POOL_SIZE + db.PROGRESS_POOL_SIZE + 1
DEPLOYMENT_DOC = REPO / "docs" / "deployment.md"
# Where the budget is stated: a number of connections per replica, held, or multiplied by replicas.
STATEMENTS = (
    re.compile(r"(\d+) (?:database )?connections per (?:replica|worker|pod)\b"),
    re.compile(r"\b(?:holds?|opens?) (?:up to |at most )?(\d+) (?:database )?connections\b"),
    re.compile(r"[\u00d7x] (\d+)`?(?: = \d+)? (?:database )?connections\b"),
)
MUST_STATE_IT = ("docs/deployment.md", "docs/operations.md", "deploy/kubernetes/keda.yaml", "README.md")


def texts() -> dict[str, str]:
    paths = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md")),
             *sorted((REPO / "deploy").rglob("*.yaml"))]
    return {str(path.relative_to(REPO)): path.read_text() for path in paths}


def stated(text: str) -> list[int]:
    flat = re.sub(r"\s+", " ", text.replace("#", " "))  # statements wrap across lines and YAML comments
    return [int(match) for pattern in STATEMENTS for match in pattern.findall(flat)]


def test_every_statement_of_the_budget_is_the_same_number() -> None:
    found = {name: stated(text) for name, text in texts().items()}
    for name in MUST_STATE_IT:
        assert found[name], f"{name} no longer states the connections per replica"
    wrong = {name: numbers for name, numbers in found.items() if set(numbers) - {BUDGET}}
    assert not wrong, f"connections per replica is {BUDGET} (worker/db.py), but: {wrong}"


def test_the_budget_check_finds_a_wrong_number() -> None:
    assert stated("each replica holds up to 16 connections") == [16]
    text = "`maxReplicaCount \u00d7 8` connections, 8 connections per\n  replica; (10 + 1) x 8 = 88 connections"
    assert sorted(stated(text)) == [8, 8, 8]


def peak(name: str) -> tuple[int, int, int, int]:
    """(maxReplicaCount, fallback replicas, maxSurge, pods at most) of a profile."""
    docs = profile(name)
    scaled = one(docs, "ScaledObject")["spec"]
    surge = one(docs, "Deployment")["spec"]["strategy"]["rollingUpdate"]["maxSurge"]
    assert isinstance(surge, int), "a percentage surge would need its own arithmetic here"
    most = max(scaled["maxReplicaCount"], scaled["fallback"]["replicas"])
    return scaled["maxReplicaCount"], scaled["fallback"]["replicas"], surge, most + surge


def documented_profiles() -> dict[str, list[str]]:
    rows = {}
    for line in DEPLOYMENT_DOC.read_text().splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        match = re.fullmatch(r"`(deploy/kubernetes/(?:small-compute/)?)`.*", cells[0]) if line.startswith("|") else None
        if match:
            rows[match[1]] = cells[1:]
    return rows


@pytest.mark.parametrize("name", PROFILES)
def test_the_deployment_guides_table_matches_each_profile(name: str) -> None:
    folder = str(PROFILES[name].relative_to(REPO)) + "/"
    row = documented_profiles()[folder]
    replicas, fallback, surge, pods = peak(name)
    assert [int(cell) for cell in row[:5]] == [replicas, fallback, surge, pods, pods * BUDGET], row


def test_the_small_compute_profile_fits_the_smallest_session_pool() -> None:
    pool = re.search(r"default Pool Size \((\d+)\)", DEPLOYMENT_DOC.read_text())
    assert pool, "docs/deployment.md names the session pooler's default Pool Size"
    assert peak("small-compute")[3] * BUDGET <= int(pool[1])
    assert peak("default")[3] * BUDGET > int(pool[1]), "else the default profile needs no small variant"
