"""supabase/migrations apply from scratch with the real Supabase CLI, as `supabase db push` would."""

from __future__ import annotations

import shutil
import subprocess
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit

import psycopg
import pytest
from psycopg import sql

from devkit import REPO, localdb

MIGRATIONS = sorted((REPO / "supabase" / "migrations").glob("*.sql"))
BOOTSTRAP = sorted(localdb.BOOTSTRAP_DIR.glob("*.sql"))
SUPABASE_CLI = REPO / "node_modules" / ".bin" / "supabase"


@pytest.fixture
def scratch_url(admin: psycopg.Connection, database_url: str) -> Iterator[str]:
    """An empty database in the local cluster with the Supabase-compatible bootstrap, dropped afterwards."""
    name = f"scratch_{uuid.uuid4().hex[:12]}"
    server = urlsplit(database_url)
    url = f"postgresql://postgres@127.0.0.1:{server.port}/{name}?sslmode=disable"
    admin.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    try:
        psql = shutil.which("psql")
        assert psql, "psql is not on PATH. Install the PostgreSQL client (make setup)."
        for path in BOOTSTRAP:  # roles are cluster-wide and created idempotently; the rest is per database
            result = subprocess.run(
                [psql, url, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-f", str(path)],
                capture_output=True, text=True,
            )
            assert result.returncode == 0, f"bootstrap {path.name} failed:\n{result.stderr}"
        yield url
    finally:
        admin.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))


def db_push(url: str) -> str:
    result = subprocess.run(
        [str(SUPABASE_CLI), "db", "push", "--db-url", url, "--yes"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"supabase db push failed:\n{output}"
    return output


def applied_versions(url: str) -> list[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "select version from supabase_migrations.schema_migrations order by version"
        ).fetchall()
    return [version for (version,) in rows]


def test_migrations_apply_from_scratch_with_the_supabase_cli(scratch_url: str) -> None:
    assert MIGRATIONS, "no migrations found in supabase/migrations"
    expected = [path.name.split("_", 1)[0] for path in MIGRATIONS]

    output = db_push(scratch_url)

    for path in MIGRATIONS:
        assert f"Applying migration {path.name}" in output
    assert applied_versions(scratch_url) == expected


def test_migrations_push_again_is_a_no_op(scratch_url: str) -> None:
    db_push(scratch_url)
    before = applied_versions(scratch_url)

    output = db_push(scratch_url)

    assert "Remote database is up to date." in output
    assert "Applying migration" not in output
    assert applied_versions(scratch_url) == before
