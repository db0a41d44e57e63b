"""The alert rules against a real Prometheus scraping a real worker: faults are caused for real (the AI
stops answering; the worker stops) and the alerts must fire through Prometheus' HTTP API, then resolve
when the fault ends. monitoring/alerts.yml is loaded with its durations compressed from minutes to
seconds (every `for:` and range selector; thresholds unchanged), and Prometheus scrapes and evaluates
every second."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml

from devkit import localdb
from devkit.processes import FakeAiProcess, PrometheusProcess, WorkerProcess, free_port, wait_until
from devkit.samples import answers, submit
from devkit.users import create_user
from tests.worker_support import worker_process

REPO = Path(__file__).resolve().parents[2]
PER_USER = 5  # submissions per fresh user, under the per-user rate limit


def compressed_rules(text: str) -> str:
    """alerts.yml with each minute made a second: `for: 10m` -> `for: 10s`, `[10m]` -> `[10s]`."""
    rules = yaml.safe_load(text)
    for group in rules["groups"]:
        for rule in group["rules"]:
            if "for" in rule:
                rule["for"] = re.sub(r"^(\d+)m$", r"\1s", rule["for"])
            rule["expr"] = re.sub(r"\[(\d+)m\]", r"[\1s]", rule["expr"])
    return yaml.safe_dump(rules)


def test_compressing_keeps_every_rule_and_shortens_every_duration() -> None:
    original = (REPO / "monitoring" / "alerts.yml").read_text()
    compressed = compressed_rules(original)
    assert not re.search(r"\d+m\b", compressed.replace("humanize", "")), "a duration in minutes is left"
    assert compressed.count("alert:") == original.count("- alert:")


class Submitter:
    """Submits an assessment every `interval` seconds from a thread until stopped, as fresh users."""

    def __init__(self, database_url: str, interval: float = 0.25) -> None:
        self.database_url = database_url
        self.interval = interval
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            n = 0
            while not self.stopped.wait(self.interval):
                if n % PER_USER == 0:
                    user = create_user(conn)
                submit(conn, user, [{"assessment_type": "career", "answers": answers(n)}])
                n += 1

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join(timeout=10)


def firing(prometheus: PrometheusProcess, name: str) -> list[dict[str, Any]]:
    return [alert for alert in prometheus.api("alerts")["alerts"]
            if alert["labels"]["alertname"] == name and alert["state"] == "firing"]


@pytest.fixture
def submitter(database_url: str) -> Iterator[Submitter]:
    running = Submitter(database_url)
    yield running
    running.stop()


# Prometheus sees only the worker's /metrics, the same on both database profiles: run it once per CI run.
@pytest.mark.skipif(localdb.profile().major != 17, reason="the alerts do not depend on the database version")
def test_alerts_fire_on_real_faults_and_resolve_when_they_end(
    database_url: str, tmp_path: Path, submitter: Submitter
) -> None:
    ai_port = free_port()
    ai = FakeAiProcess(port=ai_port)
    ops_port = free_port()
    settings = {"WORKER_OPS_PORT": str(ops_port), "AI_DEADLINE_SECONDS": "1", "WORKER_LEASE_SECONDS": "5"}
    worker: WorkerProcess = worker_process(database_url, ai.url, tmp_path, settings)
    prometheus = None
    try:
        worker.wait_ready()
        (tmp_path / "prometheus").mkdir()
        (tmp_path / "prometheus" / "alerts.yml").write_text(
            compressed_rules((REPO / "monitoring" / "alerts.yml").read_text()))
        prometheus = PrometheusProcess(f"""
global: {{scrape_interval: 1s, evaluation_interval: 1s}}
rule_files: [alerts.yml]
scrape_configs:
  - job_name: assessment-worker
    static_configs: [{{targets: ["127.0.0.1:{ops_port}"]}}]
""", tmp_path / "prometheus")

        def up() -> bool:
            return [sample["value"][1] for sample in prometheus.api("query?query=up")["result"]] == ["1"]

        assert wait_until(up, timeout=20), f"Prometheus never scraped the worker; see {prometheus.log_path}"
        def jobs_seen() -> bool:
            result = prometheus.api("query?query=sum(assessment_jobs_total)")["result"]
            return bool(result) and float(result[0]["value"][1]) > 0

        assert wait_until(jobs_seen, timeout=20), "no job completed while healthy"
        assert firing(prometheus, "AssessmentFallbackRateHigh") == []

        # The AI stops answering: jobs complete with connection_error fallbacks.
        ai.stop()
        assert wait_until(lambda: bool(firing(prometheus, "AssessmentFallbackRateHigh")), timeout=60,
                          interval=0.5), f"no fallback alert; worker log:\n{worker.log_tail()}"
        [alert] = firing(prometheus, "AssessmentFallbackRateHigh")
        assert alert["labels"]["reason"] == "connection_error"
        assert alert["annotations"]["runbook_url"] == "docs/operations.md#alert-assessmentfallbackratehigh"

        # The AI is back on the same address: the alert resolves.
        ai = FakeAiProcess(port=ai_port)
        assert wait_until(lambda: not firing(prometheus, "AssessmentFallbackRateHigh"), timeout=60, interval=0.5)

        # The only worker stops: both the per-worker and the no-worker alert fire.
        worker.terminate()
        assert wait_until(lambda: bool(firing(prometheus, "AssessmentWorkerDown"))
                          and bool(firing(prometheus, "AssessmentNoWorkerRunning")), timeout=30, interval=0.5)
        assert firing(prometheus, "AssessmentNoWorkerRunning")[0]["labels"]["severity"] == "page"

        # A worker is back on the same port: both resolve.
        worker.close()
        worker = worker_process(database_url, ai.url, tmp_path, settings)
        worker.wait_ready()
        assert wait_until(lambda: not firing(prometheus, "AssessmentWorkerDown")
                          and not firing(prometheus, "AssessmentNoWorkerRunning"), timeout=30, interval=0.5)
    finally:
        if prometheus is not None:
            prometheus.stop()
        worker.terminate()
        worker.close()
        ai.stop()
