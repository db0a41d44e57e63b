"""queue_observer, the role an autoscaler (KEDA) logs in as: it sees the queue's depth and nothing else.
Each refusal below is the attack performed as that role."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml

from devkit import localdb
from devkit.samples import answers, submit

REPO = Path(__file__).resolve().parents[2]
# The query deploy/kubernetes/keda.yaml gives KEDA's PostgreSQL scaler (one numeric column, never NULL).
KEDA_QUERY = "select private.assessment_queue_length()"

pytestmark = pytest.mark.usefixtures("empty_queues")


@pytest.fixture
def observer(database_url: str) -> Any:
    with psycopg.connect(localdb.url("queue_observer"), autocommit=True) as conn:
        yield conn


def _keda_manifest_query() -> str:
    scaled = next(doc for doc in yaml.safe_load_all((REPO / "deploy" / "kubernetes" / "keda.yaml").read_text())
                  if doc["kind"] == "ScaledObject")
    [trigger] = scaled["spec"]["triggers"]
    return str(trigger["metadata"]["query"])


def test_the_autoscalers_query_counts_waiting_and_leased_jobs(
    admin: psycopg.Connection[Any], observer: psycopg.Connection[Any], user_id: uuid.UUID
) -> None:
    assert _keda_manifest_query() == KEDA_QUERY
    assert observer.execute(KEDA_QUERY).fetchone() == (0,)
    submit(admin, user_id, [{"assessment_type": "career", "answers": answers(i)} for i in range(3)])
    admin.execute("select pgmq.read('assessment_submitted', 30, 1)")  # one leased, two waiting
    assert observer.execute(KEDA_QUERY).fetchone() == (3,)


@pytest.mark.parametrize("attack", [
    "select * from public.test_assessment",
    "select * from public.result_test",
    "select * from pgmq.read('assessment_submitted', 30, 1)",
    "select pgmq.send('assessment_submitted', '{}')",
    "select pgmq.archive('assessment_submitted', 1::bigint)",
    "select pgmq.purge_queue('assessment_submitted')",
    "delete from pgmq.q_assessment_submitted",
    "update pgmq.q_assessment_submitted set vt = now()",
    "select * from pgmq.a_assessment_submitted",
    "select * from private.settings",
    "select message from pgmq.q_assessment_submitted",
    "select message from pgmq.q_assessment_submitted_dlq",
    "select * from pgmq.metrics('assessment_submitted')",
    "select private.recommendations_are_valid('[]')",
])
def test_queue_observer_can_do_nothing_else(observer: psycopg.Connection[Any], attack: str) -> None:
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        observer.execute(attack)
