"""Which `.env` the worker reads, and in what order: the environment, then the working directory's `.env`,
then the repository root's in a checkout (never the folder an installed wheel sits in)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from unittest import mock

import pytest

from worker.__main__ import env_files, load_env_files, main


@pytest.fixture(autouse=True)
def own_environment() -> Iterator[None]:
    """load_dotenv writes os.environ: give every test a copy that is thrown away afterwards."""
    with mock.patch.dict(os.environ, clear=False):
        for name in ("ENV_FILES_CWD", "ENV_FILES_ROOT", "ENV_FILES_BOTH", "ENV_FILES_SET"):
            os.environ.pop(name, None)
        yield


def checkout(tmp_path: Path) -> tuple[Path, Path]:
    """A repository checkout (pyproject.toml, worker/, .env) and a working directory elsewhere."""
    root = tmp_path / "repo"
    (root / "worker").mkdir(parents=True)
    (root / "pyproject.toml").write_text("[project]\n")
    (root / ".env").write_text("ENV_FILES_ROOT=root\nENV_FILES_BOTH=root\nENV_FILES_SET=root\n")
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    (cwd / ".env").write_text("ENV_FILES_CWD=cwd\nENV_FILES_BOTH=cwd\nENV_FILES_SET=cwd\n")
    return root, cwd


def test_the_environment_wins_then_the_working_directory_then_the_repository_root(tmp_path: Path) -> None:
    root, cwd = checkout(tmp_path)
    os.environ["ENV_FILES_SET"] = "environment"

    loaded = load_env_files(cwd=cwd, package_dir=root / "worker")

    assert loaded == [cwd / ".env", root / ".env"]
    assert os.environ["ENV_FILES_SET"] == "environment"
    assert os.environ["ENV_FILES_BOTH"] == "cwd"
    assert os.environ["ENV_FILES_CWD"] == "cwd"
    assert os.environ["ENV_FILES_ROOT"] == "root"


def test_an_installed_worker_reads_only_the_working_directorys_env(tmp_path: Path) -> None:
    site_packages = tmp_path / "site-packages"
    (site_packages / "worker").mkdir(parents=True)
    (site_packages / ".env").write_text("ENV_FILES_ROOT=site-packages\n")
    cwd = tmp_path / "app"
    cwd.mkdir()
    (cwd / ".env").write_text("ENV_FILES_CWD=cwd\n")

    assert env_files(cwd=cwd, package_dir=site_packages / "worker") == [cwd / ".env"]


def test_started_in_the_repository_root_the_env_is_read_once(tmp_path: Path) -> None:
    root, _ = checkout(tmp_path)
    assert env_files(cwd=root, package_dir=root / "worker") == [root / ".env"]


def test_no_env_anywhere_reads_nothing(tmp_path: Path) -> None:
    assert env_files(cwd=tmp_path, package_dir=tmp_path / "site-packages" / "worker") == []


def test_the_worker_command_reads_the_env_of_the_directory_it_is_started_in(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    # An invalid value from that .env stops the start before any connection, naming the variable.
    (tmp_path / ".env").write_text("DATABASE_URL=postgresql://assessment_worker@db/postgres\n"
                                   "WORKER_CONCURRENCY=0\n")
    monkeypatch.chdir(tmp_path)
    os.environ.pop("WORKER_CONCURRENCY", None)

    assert main(["stats"]) == 2
    assert "WORKER_CONCURRENCY='0' is invalid" in capsys.readouterr().err
