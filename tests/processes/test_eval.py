"""`scripts/eval` as a user runs it: the fallback by default, and --ai against an OpenAI-compatible server
(devkit's fake here), whose figures docs/quality.md must show as measured."""

from __future__ import annotations

import json
import os
import re
import subprocess

from devkit import REPO
from devkit.processes import fake_ai_process

EVAL = REPO / "scripts" / "eval"
QUALITY_DOC = REPO / "docs" / "quality.md"


def run_eval(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = os.environ | {"OPENAI_API_KEY": "", "OPENAI_BASE_URL": "", "OPENAI_MODEL": ""} | env
    return subprocess.run([str(EVAL), *args], cwd=REPO, env=environment, capture_output=True, text=True, timeout=120)


def documented(recommender: str) -> dict[str, object]:
    """The `{"<recommender>": ...}` line docs/quality.md shows as the output of scripts/eval --json."""
    [line] = re.findall(rf'^\{{"{recommender}": .*\}}$', QUALITY_DOC.read_text(), flags=re.M)
    return json.loads(line)  # type: ignore[no-any-return]


def test_eval_scores_the_fallback_as_documented() -> None:
    result = run_eval("--json", "--fail-under", "1.0")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == documented("fallback")


def test_eval_ai_against_the_fake_server_gives_the_documented_figures() -> None:
    with fake_ai_process() as url:
        result = run_eval("--ai", "--json", OPENAI_API_KEY="sk-fake", OPENAI_BASE_URL=url, OPENAI_MODEL="fake-model")
        shown = run_eval("--ai", "--show", OPENAI_API_KEY="sk-fake", OPENAI_BASE_URL=url)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == documented("ai")
    # The human report says where the model goes wrong, and shows those results.
    assert "where it goes wrong:" in shown.stdout and "expected pt, the text reads as en" in shown.stdout
    assert "Plan one small weekly step" in shown.stdout


def test_eval_ai_without_a_key_says_what_to_set() -> None:
    result = run_eval("--ai")
    assert result.returncode == 2
    assert "OPENAI_API_KEY is not set" in result.stderr


def test_eval_ai_whose_server_is_down_fails_every_rule_with_the_reason() -> None:
    result = run_eval("--ai", "--json", OPENAI_API_KEY="sk-x", OPENAI_BASE_URL="http://127.0.0.1:9/v1",
                      AI_DEADLINE_SECONDS="0.5")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["ai"]["overall"] == 0.0
