"""scripts/submit and scripts/watch as a user runs them, without a Supabase project to talk to."""

from __future__ import annotations

import subprocess

import pytest

from devkit import REPO
from devkit.clients.output import EXIT_USAGE

ENV = {
    "SUPABASE_URL": "https://abc.supabase.co/",
    "SUPABASE_ANON_KEY": "anon-key",
    "SUPABASE_EMAIL": "env@example.test",
    "SUPABASE_PASSWORD": "env-password",
}


def run_script(name: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(REPO / "scripts" / name), *args], capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", **(env or {})}, cwd="/", timeout=60)


@pytest.mark.parametrize("script", ["submit", "watch"])
def test_script_without_settings_exits_with_usage_error(script: str) -> None:
    result = run_script(script, *(["a.json"] if script == "submit" else []))

    assert result.returncode == EXIT_USAGE
    assert "Missing settings: SUPABASE_URL" in result.stderr


@pytest.mark.parametrize("script", ["submit", "watch"])
def test_script_help_names_its_environment_variables(script: str) -> None:
    result = run_script(script, "--help")

    assert result.returncode == 0, result.stderr
    for variable in ("SUPABASE_URL", "SUPABASE_ANON_KEY", "SUPABASE_EMAIL", "SUPABASE_PASSWORD"):
        assert variable in result.stdout


def test_submit_with_unreadable_file_says_so() -> None:
    result = run_script("submit", "/nonexistent/a.json", env=ENV)

    assert result.returncode == EXIT_USAGE
    assert "cannot read the assessment file '/nonexistent/a.json'" in result.stderr
