"""`scripts/run-local --once` (what `make run ARGS=--once` runs): the whole product on the local database."""

from __future__ import annotations

import os
import re
import subprocess

from devkit import REPO
from devkit.processes import fake_ai_process, free_port

RUN_LOCAL = REPO / "scripts" / "run-local"


def run_local(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    # LOCALDB_PORT comes from the environment, as for the rest of the suite; the database is already up
    # (the database_url fixture), so run-local must leave it running.
    # No cache: an AI result that an earlier run left for the same answers would be reused (source cache).
    environment = os.environ | {"WORKER_OPS_PORT": str(free_port()), "OPENAI_API_KEY": "",
                                "OPENAI_BASE_URL": "", "CACHE_TTL_SECONDS": "0"} | env
    return subprocess.run([str(RUN_LOCAL), "--once", "--timeout", "30", *args], cwd=REPO, env=environment,
                          capture_output=True, text=True, timeout=60)


def assert_both_users_got_recommendations(output: str, source: str) -> None:
    for email, kind in (("ada@example.test", "career"), ("grace@example.test", "wellbeing")):
        block = re.search(rf"── {re.escape(email)} · {kind} [0-9a-f]{{8}} ─+\n(.*?)\n\n", output, re.DOTALL)
        assert block, f"no result block for {email} in:\n{output}"
        assert f"Source: {source}" in block.group(1)
        assert re.search(r"^    1\. .+\[priority [1-5]\] \(.+\)$", block.group(1), re.MULTILINE), block.group(1)
    for name in ("ada", "grace"):
        assert re.search(rf"^\S+  {name} +\w+ +[0-9a-f]{{8}}  queued", output, re.MULTILINE)
        assert re.search(rf"^\S+  {name} +\w+ +[0-9a-f]{{8}}  processing", output, re.MULTILINE)
        assert re.search(rf"^\S+  {name} +\w+ +[0-9a-f]{{8}}  completed .*source", output, re.MULTILINE)


def test_run_local_once_without_a_key_streams_drafts_from_the_fake_ai_before_each_result(database_url: str) -> None:
    result = run_local()

    output = result.stdout
    assert result.returncode == 0, output + result.stderr
    assert "AI: the devkit's fake OpenAI at http://127.0.0.1:" in output
    assert_both_users_got_recommendations(output, "ai (fake-model)")
    lines = output.splitlines()
    for name in ("ada", "grace"):
        prefix = rf"\S+  {name} +\w+ +[0-9a-f]{{8}}  "
        [completed] = [i for i, line in enumerate(lines) if re.match(prefix + "completed", line)]
        drafts = {int(match[1]): i for i, line in enumerate(lines)
                  if (match := re.match(prefix + r"draft (\d+) +priority [1-5]  \S", line))}
        assert sorted(drafts) == [1, 2, 3, 4, 5, 6], output  # the fake's six recommendations, each once
        assert max(drafts.values()) < completed, output
        assert "source ai" in lines[completed]
    assert output.index("Worker stopped (exit status 0).") < output.index("Fake AI stopped.")
    assert "Local database stopped." not in output  # it was running before, so it stays up


def test_run_local_once_with_ai_fallback_completes_both_samples_with_fallback(database_url: str) -> None:
    result = run_local("--ai", "fallback")

    assert result.returncode == 0, result.stdout + result.stderr
    assert "AI: fallback recommendations" in result.stdout
    assert_both_users_got_recommendations(result.stdout, "fallback (not_configured)")
    assert " draft " not in result.stdout
    assert "Fake AI" not in result.stdout
    assert "Worker stopped (exit status 0)." in result.stdout
    assert "Local database stopped." not in result.stdout  # it was running before, so it stays up


def test_run_local_once_uses_an_openai_compatible_server_from_openai_base_url(database_url: str) -> None:
    with fake_ai_process() as ai_url:
        result = run_local(OPENAI_API_KEY="sk-test", OPENAI_BASE_URL=ai_url, OPENAI_MODEL="fake-model")

    assert result.returncode == 0, result.stdout + result.stderr
    assert f"AI: fake-model at {ai_url}" in result.stdout
    assert_both_users_got_recommendations(result.stdout, "ai (fake-model)")
