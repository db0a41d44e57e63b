"""The benchmark's table: every figure beside its baseline, the ratio, the target and PASS or MISS."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

TARGETS = {
    "submit_ratio": 0.6,
    "worker_cpu_ms_per_job": 1.0,
    "scale_out_efficiency": 0.85,
    "latency_p99_ms": 10.0,
    "slow_ai_in_flight": 100,
    "slow_ai_per_second": 45.0,
    "slow_ai_rss_mb": 200.0,
    "status_p99_ms": 5.0,
    "provider_goodput_ratio": 0.9,
    "provider_rejected_share": 0.02,
    "provider_fallback_share": 0.0,
    "streaming_first_ratio": 0.25,
    "streaming_extra_cpu_ms_per_job": 0.3,
}


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def scale_out_target_workers() -> int:
    """The issue's N for the efficiency target: half the cores this process may run on, at least one."""
    return max(1, len(os.sched_getaffinity(0)) // 2)


def rows(report: dict[str, Any]) -> list[tuple[str, ...]]:
    t = TARGETS
    out: list[tuple[str, ...]] = []
    if s := report.get("submit"):
        out.append(("submit, inserts/s", f"{s['plain_per_second']:.0f} plain", f"{s['user_per_second']:.0f} as users",
                    f"{s['ratio']:.2f}", f">= {t['submit_ratio']} x plain", verdict(s["ratio"] >= t["submit_ratio"])))
        out.append(("submit, request envelope alone", f"{s['plain_per_second']:.0f} plain",
                    f"{s['envelope_per_second']:.0f}", f"{s['envelope_ratio']:.2f}", "", ""))
    target_n = scale_out_target_workers()
    for run in report.get("scale_out", []):
        n = run["workers"]
        efficiency = run.get("efficiency")
        judged = n == target_n and efficiency is not None
        out.append((f"drain, {n} worker(s): jobs/s", "", f"{run['jobs_per_second']:.0f}",
                    f"{efficiency:.2f}" if efficiency is not None else "",
                    f">= {t['scale_out_efficiency']} (N = cores/2 = {target_n})" if judged else "",
                    verdict(efficiency >= t["scale_out_efficiency"]) if judged else ""))
        cpu_target = t["worker_cpu_ms_per_job"]
        out.append((f"drain, {n} worker(s): CPU ms/job", f"{run['fake_ai_cpu_ms_per_job']:.2f} fake AI",
                    f"{run['cpu_ms_per_job']:.2f} worker", "", f"<= {cpu_target:g} ms" if n == 1 else "",
                    verdict(run["cpu_ms_per_job"] <= cpu_target) if n == 1 else ""))
        out.append((f"drain, {n} worker(s): database CPU ms/job", "", f"{run['database_cpu_ms_per_job']:.2f}",
                    "", "", ""))
    if lat := report.get("latency"):
        out.append(("latency p50 @100/s, ms", f"{lat['insert_p50_ms']:.1f} insert", f"{lat['p50_ms']:.1f} to result",
                    "", "", ""))
        out.append(("latency p99 @100/s, ms", f"{lat['insert_p99_ms']:.1f} insert", f"{lat['p99_ms']:.1f} to result",
                    "", f"<= {t['latency_p99_ms']:g} ms", verdict(lat["p99_ms"] <= t["latency_p99_ms"])))
    if slow := report.get("slow_ai"):
        out.append(("slow AI (2 s): peak in flight", f"{slow['concurrency']} concurrency",
                    f"{slow['peak_in_flight']:.0f}", f"{slow['peak_in_flight'] / slow['concurrency']:.2f}",
                    f">= {t['slow_ai_in_flight']}", verdict(slow["peak_in_flight"] >= t["slow_ai_in_flight"])))
        out.append(("slow AI (2 s): jobs/s", f"{slow['ideal_per_second']:.0f} ideal", f"{slow['per_second']:.1f}",
                    f"{slow['per_second'] / slow['ideal_per_second']:.2f}", f">= {t['slow_ai_per_second']:g}/s",
                    verdict(slow["per_second"] >= t["slow_ai_per_second"])))
        out.append(("slow AI (2 s): worker RSS, MB", f"{slow['idle_rss_mb']:.0f} idle",
                    f"{slow['peak_rss_mb']:.0f} peak",
                    f"{slow['peak_rss_mb'] / slow['idle_rss_mb']:.2f}", f"<= {t['slow_ai_rss_mb']:g} MB",
                    verdict(slow["peak_rss_mb"] <= t["slow_ai_rss_mb"])))
    if st := report.get("status_check"):
        size = f"{st['assessments'] // 1000}k rows"
        out.append((f"status check p50 ({size}), ms", f"{st['baseline_p50_ms']:.2f} no RLS",
                    f"{st['p50_ms']:.2f} as owner", f"{st['p50_ms'] / st['baseline_p50_ms']:.1f}", "", ""))
        out.append((f"status check p99 ({size}), ms", f"{st['baseline_p99_ms']:.2f} no RLS",
                    f"{st['p99_ms']:.2f} as owner", f"{st['p99_ms'] / st['baseline_p99_ms']:.1f}",
                    f"<= {t['status_p99_ms']:g} ms", verdict(st["p99_ms"] <= t["status_p99_ms"])))
    if limited := report.get("provider_limit"):
        other = limited["unconfigured"]
        out.append((f"provider limit {limited['limit_per_minute']}/min: goodput / limit",
                    f"{other['goodput_ratio']:.2f} unconfigured", f"{limited['goodput_ratio']:.2f}", "",
                    f">= {t['provider_goodput_ratio']}",
                    verdict(limited["goodput_ratio"] >= t["provider_goodput_ratio"])))
        out.append(("provider limit: 429s / calls", f"{other['rejected_share']:.3f} unconfigured",
                    f"{limited['rejected_share']:.3f}", "", f"<= {t['provider_rejected_share']}",
                    verdict(limited["rejected_share"] <= t["provider_rejected_share"])))
        out.append(("provider limit: fallbacks / jobs", f"{other['fallback_share']:.2f} unconfigured",
                    f"{limited['fallback_share']:.2f}", "", f"<= {t['provider_fallback_share']:g}",
                    verdict(limited["fallback_share"] <= t["provider_fallback_share"])))
        cost = limited["admission"]
        base = cost["baseline_database_cpu_ms"]
        for name, key in (("nothing set", "database_cpu_ms_per_call"),
                          ("all set", "everything_set_database_cpu_ms_per_call")):
            out.append((f"admit + settle, {name}: database CPU ms/call", f"{base:.3f} 2 x select 1",
                        f"{cost[key]:.3f}", f"{cost[key] / base:.1f}", "", ""))
    if streamed := report.get("streaming"):
        out.append(("streaming: first recommendation p50, ms", f"{streamed['completed_ms_p50']:.0f} completed",
                    f"{streamed['first_recommendation_ms_p50']:.0f}", f"{streamed['ratio']:.2f}",
                    f"<= {t['streaming_first_ratio']} x completed",
                    verdict(streamed["ratio"] <= t["streaming_first_ratio"])))
        cost = streamed["cpu"]
        out.append(("streaming: worker CPU ms/job", f"{cost['unstreamed_cpu_ms_per_job']:.2f} AI_STREAM=false",
                    f"{cost['streamed_cpu_ms_per_job']:.2f}",
                    f"{cost['streamed_cpu_ms_per_job'] / cost['unstreamed_cpu_ms_per_job']:.2f}",
                    f"<= +{t['streaming_extra_cpu_ms_per_job']} ms",
                    verdict(cost["extra_cpu_ms_per_job"] <= t["streaming_extra_cpu_ms_per_job"])))
    if compared := report.get("against"):
        this, other = compared["this"], compared["other"]
        for key, label in (("jobs_per_second", "drain, 1 worker: jobs/s"),
                           ("cpu_ms_per_job", "drain: worker CPU ms/job"),
                           ("database_cpu_ms_per_job", "drain: database CPU ms/job"),
                           ("p50_ms", "latency p50 @100/s, ms"), ("p99_ms", "latency p99 @100/s, ms")):
            out.append((f"against {Path(compared['source']).name}: {label}", f"{other[key]:.2f} that tree",
                        f"{this[key]:.2f} this tree", f"{this[key] / other[key]:.2f}", "", ""))
    if client := report.get("ai_client"):
        variants = client["variants"]
        base = variants["sdk_httpx2"]["cpu_ms_per_call"]
        for name, variant in variants.items():
            out.append((f"AI client CPU ms/call: {name}", f"{base:.2f} sdk_httpx2", f"{variant['cpu_ms_per_call']:.2f}",
                        f"{variant['cpu_ms_per_call'] / base:.2f}", "", ""))
    return out


def table(report: dict[str, Any]) -> str:
    header = ("figure", "baseline", "value", "ratio", "target", "")
    body = rows(report)
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
             for row in [header, *body]]
    lines.insert(1, "-" * len(lines[0]))
    m = report["machine"]
    notes = [f"Assessment pipeline benchmark{' (--quick)' if report['quick'] else ''}: {m['cpus']} CPUs, "
             f"PostgreSQL {m['postgres']}, fsync={m['fsync']}, synchronous_commit={m['synchronous_commit']}", ""]
    notes += lines
    if s := report.get("submit"):
        costs = ", ".join(f"{name} {ms:.3f}" for name, ms in s["trigger_ms"].items())
        notes.append(f"submit: one user's insert executes in {s['insert_execution_ms']:.3f} ms; triggers, ms: {costs}")
    for run in report.get("scale_out", []):
        per_job = run["cpu_ms_per_job"] + run["database_cpu_ms_per_job"] + run["fake_ai_cpu_ms_per_job"]
        notes.append(f"drain, {run['workers']} worker(s): {run['jobs']} jobs in {run['seconds']:.1f}s; machine busy "
                     f"{run['machine_busy_cores']:.2f} of {m['cpus']} cores; worker + database + fake AI = "
                     f"{per_job:.2f} ms of CPU per job, so {m['cpus']} cores allow at most "
                     f"{m['cpus'] * 1000 / per_job:.0f} jobs/s")
    if lat := report.get("latency"):
        parts = ", ".join(f"{name} p50 {part['p50']:.1f} / p99 {part['p99']:.1f}"
                          for name, part in lat["parts_ms"].items())
        notes.append(f"latency: {lat['samples']} samples, p95 {lat['p95_ms']:.1f} ms, max {lat['max_ms']:.1f} ms; "
                     f"in ms: {parts}")
    if limited := report.get("provider_limit"):
        for name, run in (("configured", limited), ("unconfigured", limited["unconfigured"])):
            notes.append(f"provider limit, {name}: {run['jobs']} jobs in {run['seconds']:.1f}s (at the limit: "
                         f"{run['ideal_seconds']:.1f}s); {run['requests']} requests, {run['rate_limited']} answered "
                         f"429, {run['completed']} completed")
        cost = limited["admission"]
        notes.append(f"admission, one client: {cost['per_second']:.0f} admit + settle pairs/s with nothing set, "
                     f"{cost['everything_set_per_second']:.0f} with everything set, against "
                     f"{cost['baseline_per_second']:.0f} pairs of select 1")
    if streamed := report.get("streaming"):
        cost = streamed["cpu"]
        notes.append(f"streaming: {streamed['assessments']} assessments, "
                     f"{streamed['drafts_per_assessment']:.1f} drafts each; drain jobs/s "
                     f"{cost['unstreamed_jobs_per_second']:.0f} AI_STREAM=false, "
                     f"{cost['streamed_jobs_per_second']:.0f} AI_STREAM=true")
    if fc := report.get("filter_cost"):
        slowest = sorted(fc["filters"].items(), key=lambda item: -item[1]["ms"])[:4]
        notes.append(f"filter_cost: statement_timeout {fc['statement_timeout']}, worst {fc['worst_ms']:.0f} ms per "
                     "request; slowest: " + ", ".join(f"{name} {cost['ms']:.0f} ms ({cost['ended_by']})"
                                                      for name, cost in slowest))
    notes.append(f"elapsed {report['elapsed_seconds']:.0f}s")
    return "\n".join(notes)
