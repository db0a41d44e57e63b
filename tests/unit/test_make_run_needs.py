"""`make run` needs only Python, Node and npm: PostgreSQL 17 comes from npm for each supported platform,
and what only the tests need (Debian's packages) is installed by `make test` alone. The run itself,
without Debian's PostgreSQL, psql or apt, is proved by scripts/make-run-bare in CI."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from devkit import localdb

REPO = Path(__file__).resolve().parents[2]
PACKAGE = json.loads((REPO / "package.json").read_text())
LOCK = json.loads((REPO / "package-lock.json").read_text())
EMBEDDED = "@embedded-postgres/"


def embedded_dependencies() -> dict[str, str]:
    return {name: version for name, version in PACKAGE.get("optionalDependencies", {}).items()
            if name.startswith(EMBEDDED)}


def test_postgresql_17_is_pinned_once_for_each_supported_platform() -> None:
    pinned = embedded_dependencies()
    assert set(pinned) == {EMBEDDED + name for name in localdb.EMBEDDED_PLATFORMS.values()}
    assert set(pinned) == {EMBEDDED + p for p in ("linux-x64", "linux-arm64", "darwin-x64", "darwin-arm64")}
    [version] = set(pinned.values())
    assert re.fullmatch(r"17\.\d+\.\d+(-[\w.]+)?", version), f"{version!r} is not an exact 17.x version"
    assert not any(name.startswith(EMBEDDED) for name in PACKAGE.get("devDependencies", {})), \
        "a platform package among devDependencies would be installed (and fail) on every other platform"


def test_the_lock_file_lets_npm_install_only_the_matching_platform_package() -> None:
    for name, version in embedded_dependencies().items():
        entry = LOCK["packages"][f"node_modules/{name}"]
        system, cpu = name.removeprefix(EMBEDDED).split("-")
        assert entry["version"] == version
        assert entry["optional"] is True, name
        assert (entry["os"], entry["cpu"]) == ([system], [cpu]), name


@pytest.mark.parametrize(("system", "machine", "package"), [
    ("linux", "x86_64", "linux-x64"), ("linux", "amd64", "linux-x64"), ("linux", "aarch64", "linux-arm64"),
    ("linux", "arm64", "linux-arm64"), ("darwin", "x86_64", "darwin-x64"), ("darwin", "arm64", "darwin-arm64"),
])
def test_localdb_picks_the_package_npm_installed_for_the_machine(system: str, machine: str, package: str) -> None:
    assert localdb.embedded_package(system, machine) == package


def test_localdb_says_which_platforms_have_postgresql_17_when_this_one_has_none() -> None:
    with pytest.raises(localdb.LocalDbError, match=r"No PostgreSQL 17 package for win32 on 'x86_64'.*darwin-arm64"):
        localdb.embedded_package("win32", "x86_64")


def test_postgresql_17_uses_its_own_locale_so_initdb_works_where_libc_has_no_c_utf8() -> None:
    # macOS has no C.UTF-8 libc locale; PostgreSQL 17's builtin provider is the same on every platform.
    options = localdb.PROFILES[17].locale_options()
    assert "--locale-provider=builtin" in options and "--builtin-locale=C.UTF-8" in options
    assert "--locale=C.UTF-8" not in options


def make_dry_run(target: str) -> str:
    result = subprocess.run(["make", "--dry-run", "--always-make", "--no-print-directory", target], cwd=REPO,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_make_run_installs_nothing_from_debian_and_make_test_does() -> None:
    assert "install-system-packages" not in make_dry_run("run")
    assert "install-system-packages" not in make_dry_run("setup")
    for target in ("test", "test-unit", "test-reliability"):
        assert "scripts/install-system-packages" in make_dry_run(target), target


def test_ci_runs_make_run_where_debian_is_hidden() -> None:
    ci = (REPO / ".ci" / "run").read_text()
    assert re.search(r"^make test-make-run-bare$", ci, re.M)
    assert "scripts/make-run-bare" in make_dry_run("test-make-run-bare")
    bare = (REPO / "scripts" / "make-run-bare").read_text()
    assert 'run ARGS="--once"' in bare
    for hidden in ("/usr/lib/postgresql", "/usr/share/postgresql", "psql", "pg_isready", "apt-get", "dpkg"):
        assert hidden in bare, hidden


def test_the_readme_names_what_each_command_needs_on_each_platform() -> None:
    readme = (REPO / "README.md").read_text()
    section = readme.split("## What each command needs", 1)[1].split("\n## ", 1)[0]
    for package in embedded_dependencies():
        assert package.removeprefix(EMBEDDED) in section, package
    for needed in ("Python 3.11", "Node 20", "npm", "make run", "make test", "apt"):
        assert needed in section, needed
