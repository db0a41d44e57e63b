"""The worker's wheel: it carries the worker's SQL and translations, and runs from outside the repository."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from devkit import REPO


def test_wheel_contains_the_sql_and_translations_and_runs_outside_the_repository(tmp_path: Path) -> None:
    # Built from what the Dockerfile's build stage copies (.dockerignore allows nothing else), so the
    # build neither sees the rest of the repository nor leaves build/ in it.
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    shutil.copytree(REPO / "worker", source / "worker", ignore=shutil.ignore_patterns("__pycache__"))
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
                            "-w", str(tmp_path / "dist"), str(source)], capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr
    [wheel] = (tmp_path / "dist").glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "worker/sql/queries.sql" in names
    assert {f"worker/translations/{language}.toml" for language in ("en", "pt", "es", "fr", "de")} <= set(names)
    assert not [name for name in names if name.startswith(("devkit/", "tests/"))], "the wheel is the worker alone"

    # Install it alone into a target folder; the dependencies come from this interpreter's site-packages,
    # the worker from the wheel (checked below), never from the repository.
    target = tmp_path / "site"
    installed = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target),
                                str(wheel)], capture_output=True, text=True, timeout=300)
    assert installed.returncode == 0, installed.stderr
    env = {"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"}
    probe = ("import worker.db, worker.locales; print(worker.db.__file__, len(worker.db.QUERIES), "
             "worker.locales.load('pt').language_name)")
    where = subprocess.run([sys.executable, "-c", probe], cwd="/", env=env, capture_output=True, text=True, timeout=60)
    assert where.returncode == 0, where.stderr
    module_file, queries, portuguese = where.stdout.split()
    assert module_file.startswith(str(target)) and int(queries) > 5 and portuguese == "Portuguese"
    helped = subprocess.run([sys.executable, "-m", "worker", "--help"], cwd="/", env=env,
                            capture_output=True, text=True, timeout=60)
    assert helped.returncode == 0, helped.stderr
    assert "run" in helped.stdout and "dlq" in helped.stdout
