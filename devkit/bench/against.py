"""--against DIR: the drain and latency sections with this tree's worker and with the worker in DIR, side by
side, alternating, so a change's cost is a ratio measured in one run on the same machine.

DIR is a source tree of another commit, e.g. `git archive <commit> | tar -x -C DIR`; its `worker` package
runs (python -m worker run from DIR) against this tree's database, which has every migration: a worker of
an older commit must run against a newer schema, which additive migrations allow.
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from devkit import REPO
from devkit.bench import sections
from devkit.bench.run import Bench, note
from devkit.processes import FakeAiProcess

ROUNDS = 3
DRAIN_FIGURES = ("jobs_per_second", "cpu_ms_per_job", "database_cpu_ms_per_job", "fake_ai_cpu_ms_per_job")
LATENCY_FIGURES = ("p50_ms", "p99_ms")


def compare(bench: Bench, other: Path) -> dict[str, Any]:
    if not (other / "worker" / "__main__.py").exists():
        raise SystemExit(f"bench: --against {other}: no worker/__main__.py there. Extract a commit into it first: "
                         f"git archive <commit> | tar -x -C {other}")
    rounds = 1 if bench.plan.quick else ROUNDS
    note(f"against {other}: {rounds} alternating round(s) of drain (1 worker) and latency, each tree's worker")
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {"this": {"drain": [], "latency": []},
                                                         "other": {"drain": [], "latency": []}}
    ai = FakeAiProcess(latency=0.0)
    try:
        for _ in range(rounds):
            for name, source in (("other", other), ("this", REPO)):
                runs[name]["drain"].append(sections.drain(bench, 1, ai, None, source))
    finally:
        ai.stop()
    for _ in range(rounds):
        for name, source in (("other", other), ("this", REPO)):
            runs[name]["latency"].append(sections.latency(bench, source))

    def medians(name: str) -> dict[str, float]:
        drains, latencies = runs[name]["drain"], runs[name]["latency"]
        return ({key: statistics.median(run[key] for run in drains) for key in DRAIN_FIGURES}
                | {key: statistics.median(run[key] for run in latencies) for key in LATENCY_FIGURES})

    return {
        "method": f"{rounds} round(s), each: drain of {bench.plan.drain_jobs} jobs by 1 worker (the drain section) "
        "with DIR's worker, then this tree's, against one instant fake AI; then the latency section the same way; "
        "medians over the rounds",
        "source": str(other), "rounds": rounds, "this": medians("this"), "other": medians("other"), "runs": runs,
    }
