"""scripts/bench: run the sections and print the table (or --json). See devkit/bench/__init__.py."""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from devkit import localdb
from devkit.bench import __doc__ as USAGE
from devkit.bench import against, ai_client, filter_cost, provider_limit, sections, status_check, streaming
from devkit.bench.report import TARGETS, table
from devkit.bench.run import CLIENTS, FULL, QUICK, Bench

SECTIONS = ("submit", "drain", "latency", "slow_ai", "status_check", "ai_client", "provider_limit", "filter_cost",
            "streaming")


def worker_counts(raw: str) -> list[int]:
    try:
        counts = [int(part) for part in raw.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{raw!r} is not a list of numbers such as 1,2") from None
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError(f"{raw!r}: every worker count must be at least 1")
    return counts


def machine(bench: Bench) -> dict[str, Any]:
    def setting(name: str) -> str:
        return str(bench.scalar("select current_setting(%s)", (name,)))

    return {"cpus": os.cpu_count(), "python": platform.python_version(),
            "postgres": setting("server_version").split()[0], "fsync": setting("fsync"),
            "synchronous_commit": setting("synchronous_commit"), "shared_buffers": setting("shared_buffers")}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="scripts/bench", description=USAGE,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small runs (about two minutes)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of the table")
    parser.add_argument("--workers", type=worker_counts, default=[1, 2], metavar="N[,M...]",
                        help="worker process counts for the drain section (default 1,2)")
    parser.add_argument("--only", choices=SECTIONS, action="append", help="run only these sections (repeatable)")
    parser.add_argument("--against", metavar="DIR", type=Path,
                        help="also run drain and latency with the worker of another source tree, alternating "
                        "(git archive <commit> | tar -x -C DIR), and report both")
    parser.add_argument("--py-spy", metavar="FILE", help="record the first drain's worker with py-spy "
                        "(FILE.json: speedscope, FILE.txt: collapsed stacks, else a flame graph SVG)")
    args = parser.parse_args(argv)
    wanted = set(args.only or SECTIONS)
    started = time.perf_counter()
    url = localdb.up()
    # Kept when a section fails: its error names the worker and AI logs in it.
    tmp = Path(tempfile.mkdtemp(prefix="bench-"))
    bench = Bench(url, tmp, QUICK if args.quick else FULL)
    if bench.scalar("select current_setting('track_commit_timestamp')") != "on":
        raise SystemExit("bench: track_commit_timestamp is off; 'scripts/localdb reset' creates a cluster with "
                         "it on (the latency and drain figures read commit times).")
    report: dict[str, Any] = {"quick": args.quick, "clients": CLIENTS, "targets": TARGETS,
                              "machine": machine(bench)}
    limit = bench.prepare()
    try:
        if "submit" in wanted:
            report["submit"] = sections.submit(bench)
        if "drain" in wanted:
            drained = sections.scale_out(bench, args.workers, args.py_spy)
            report["scale_out"] = drained["runs"]
            report["scale_out_method"] = drained["method"]
            one = next((run for run in drained["runs"] if run["workers"] == 1), drained["runs"][0])
            report["end_to_end"] = {"workers": one["workers"], "jobs_per_second": one["jobs_per_second"],
                                    "worker_cpu_ms_per_job": one["cpu_ms_per_job"]}
        if "latency" in wanted:
            report["latency"] = sections.latency(bench)
        if "slow_ai" in wanted:
            report["slow_ai"] = sections.slow_ai(bench)
        if "status_check" in wanted:
            report["status_check"] = status_check.status_check(bench)
        if "filter_cost" in wanted:
            report["filter_cost"] = filter_cost.filter_cost(bench)
        if "ai_client" in wanted:
            report["ai_client"] = ai_client.compare(calls=1000 if args.quick else 3000)
        if "streaming" in wanted:
            report["streaming"] = streaming.streaming(bench)
        if "provider_limit" in wanted:
            report["provider_limit"] = provider_limit.provider_limit(bench)
        if args.against is not None:
            report["against"] = against.compare(bench, args.against.resolve())
    finally:
        bench.cleanup(limit)
    shutil.rmtree(tmp)
    report["elapsed_seconds"] = time.perf_counter() - started
    print(json.dumps(report, indent=2, default=str) if args.json else table(report))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
