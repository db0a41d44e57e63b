"""pgbench as the load generator: write a script, run it, read its summary and per-transaction log.

pgbench is C and ships with PostgreSQL, so the client is never what a figure measures; Python only
writes the scripts, starts pgbench and reads what it reports.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from devkit import localdb

# What every submission inserts: four answers that differ with :n (so the AI cache never hits) and a
# context, built from the same SQL expression in every script so that compared scripts do equal work.
ANSWERS_SQL = (
    "jsonb_build_array("
    "jsonb_build_object('question_id', 'energy', 'question', 'How energised do you feel at work (1-5)?',"
    " 'answer', :n % 5 + 1),"
    " jsonb_build_object('question_id', 'mentor', 'question', 'Do you have a mentor?', 'answer', :n % 2 = 0),"
    " jsonb_build_object('question_id', 'skills', 'question', 'Which skills do you want to grow?',"
    " 'answer', jsonb_build_array('SQL', 'skill ' || :n)),"
    " jsonb_build_object('question_id', 'blocker', 'question', 'What blocks you most?',"
    " 'answer', 'Meetings, case ' || :n))"
)
CONTEXT_SQL = "'{\"goals\": [\"Lead a team\"], \"locale\": \"en\"}'::jsonb"

# The request PostgREST makes for supabase.from('test_assessment').insert(body).select('id'): a
# transaction, the user's role and claims, the insert, the commit. :u picks one of the run users.
USER_INSERT = f"""\\set u random(0, :users - 1)
\\set n random(1, 1000000000)
begin;
set local role authenticated;
select set_config('request.jwt.claims', json_build_object('sub', md5('bench-run-user-' || :u)::uuid,
  'role', 'authenticated', 'aud', 'authenticated')::text, true);
insert into public.test_assessment (assessment_type, answers, context)
  values ('career', {ANSWERS_SQL}, {CONTEXT_SQL}) returning id;
commit;
"""

# The request alone: USER_INSERT's transaction, role and claims, but into the trigger-free copy (user_id
# from its default, auth.uid()). What separates it from USER_INSERT is the product's own work: RLS, the
# triggers, the foreign key; what separates it from PLAIN_INSERT is the shape of an API request.
ENVELOPE_INSERT = USER_INSERT.replace("insert into public.test_assessment", "insert into bench_plain")

# The baseline: the same row into a trigger-free copy of the table, one autocommit statement.
PLAIN_INSERT = f"""\\set u random(0, :users - 1)
\\set n random(1, 1000000000)
insert into bench_plain (user_id, assessment_type, answers, context)
  values (md5('bench-run-user-' || :u)::uuid, 'career', {ANSWERS_SQL}, {CONTEXT_SQL});
"""


class PgbenchError(Exception):
    """pgbench failed or reported failed transactions; the message carries its output."""


@dataclass(frozen=True)
class Result:
    transactions: int
    failed: int
    seconds: float  # pgbench's own measuring period (excludes connection set-up)
    tps: float
    latencies_ms: list[float]  # per transaction, when a log was asked for
    ends: list[float]  # per transaction: when it completed (Unix time, seconds), when a log was asked for


def binary() -> Path:
    """pgbench of the system's PostgreSQL client tools (the embedded servers ship none; 15's works with 17)."""
    found = localdb.client_binary("pgbench")
    if found is None:
        raise PgbenchError("pgbench is missing. Install PostgreSQL's client tools (apt-get install postgresql-15).")
    return found


def run(url: str, script: str, *, clients: int, seconds: float | None = None, transactions: int | None = None,
        rate: float | None = None, variables: dict[str, str] | None = None, log: bool = False) -> Result:
    """Run `script` with `clients` connections for `seconds` (or `transactions` per client)."""
    with tempfile.TemporaryDirectory(prefix="pgbench-") as tmp:
        folder = Path(tmp)
        (folder / "script.sql").write_text(script)
        command = [str(binary()), "--no-vacuum", "--protocol=prepared", f"--client={clients}",
                   f"--jobs={min(clients, 2)}", f"--file={folder / 'script.sql'}"]
        command += [f"--time={max(1, round(seconds))}"] if seconds is not None else [f"--transactions={transactions}"]
        if rate is not None:
            command.append(f"--rate={rate:g}")
        if log:
            command += ["--log", f"--log-prefix={folder / 'log'}"]
        for name, value in (variables or {}).items():
            command.append(f"--define={name}={value}")
        result = subprocess.run([*command, url.split("?")[0]], capture_output=True, text=True, cwd=folder)
        output = result.stdout + result.stderr
        if result.returncode != 0:
            raise PgbenchError(f"pgbench failed ({result.returncode}):\n{output[-3000:]}")
        latencies, ends = _read_logs(folder) if log else ([], [])
    processed = _number(output, r"number of transactions actually processed: (\d+)")
    failed = _number(output, r"number of failed transactions: (\d+)", default=0)
    if failed:
        raise PgbenchError(f"pgbench reported {failed} failed transactions:\n{output[-3000:]}")
    tps = float(_number(output, r"tps = ([\d.]+) \(without initial connection time\)"))
    return Result(int(processed), int(failed), processed / tps if tps else 0.0, tps, latencies, ends)


def _number(output: str, pattern: str, default: float | None = None) -> float:
    match = re.search(pattern, output)
    if match:
        return float(match.group(1))
    if default is None:
        raise PgbenchError(f"pgbench output has no {pattern!r}:\n{output[-3000:]}")
    return default


def _read_logs(folder: Path) -> tuple[list[float], list[float]]:
    """Per-transaction lines `client tx latency_us script epoch_s epoch_us [lag_us]`, in completion order."""
    rows = []
    for path in folder.glob("log.*"):
        for line in path.read_text().splitlines():
            fields = line.split()
            rows.append((int(fields[4]) + int(fields[5]) / 1e6, int(fields[2]) / 1000))
    rows.sort()
    return [latency for _, latency in rows], [end for end, _ in rows]
