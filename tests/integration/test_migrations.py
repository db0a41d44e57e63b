"""supabase/migrations on fresh databases, pushed as the non-superuser postgres with the real Supabase CLI,
in both ways a project meets them first, and the pgTAP suite passes after each:

(a) a fresh project: the migrations bring pgmq in. The local stand-in creates pgmq the way Supabase's
    supautils does for a privileged extension (as the superuser, then Supabase's after-create grants), so
    a schema pgmq that does not exist yet ends up owned by supabase_admin;
(b) Queues enabled from the Dashboard first: schema pgmq created by postgres, then the extension.
"""

from __future__ import annotations

import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from devkit import REPO, localdb

MIGRATIONS = sorted((REPO / "supabase" / "migrations").glob("*.sql"))
PGMQ_SCHEMA_MIGRATION = "20261125175900_create_pgmq_schema.sql"


@pytest.fixture
def fresh_database(admin: psycopg.Connection[Any]) -> Iterator[str]:
    """A new database (created by postgres, which owns it, as on Supabase) with the Supabase stand-in."""
    name = f"fresh_{uuid.uuid4().hex[:12]}"
    admin.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    try:
        localdb.bootstrap(name)
        yield name
    finally:
        admin.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))


def applied_versions(database: str) -> list[str]:
    with psycopg.connect(localdb.url("postgres", database)) as conn:
        rows = conn.execute("select version from supabase_migrations.schema_migrations order by version").fetchall()
    return [version for (version,) in rows]


def owners(database: str) -> dict[str, str]:
    with psycopg.connect(localdb.url("postgres", database)) as conn:
        row = conn.execute("""
            select (select nspowner::regrole::text from pg_namespace where nspname = 'pgmq'),
                   (select extowner::regrole::text from pg_extension where extname = 'pgmq'),
                   (select relowner::regrole::text from pg_class where oid = 'pgmq.q_assessment_submitted'::regclass),
                   (select relowner::regrole::text from pg_class where oid = 'realtime.messages'::regclass)
        """).fetchone()
    assert row is not None
    return dict(zip(("pgmq schema", "pgmq extension", "job queue", "realtime.messages"), row, strict=True))


def pgtap_passes(database: str) -> None:
    """What `supabase test db` does: pgTAP as postgres, every file of supabase/tests/database."""
    localdb.run_sql(localdb.url("postgres", database), "create extension if not exists pgtap with schema extensions")
    pg_prove = localdb.client_binary("pg_prove") or shutil.which("pg_prove")
    assert pg_prove, "pg_prove is missing: scripts/install-system-packages installs it"
    dbname = localdb.url("postgres", database).split("?")[0]
    tests = REPO / "supabase" / "tests" / "database"
    result = subprocess.run([str(pg_prove), "--dbname", dbname, "--ext", ".sql", "--recurse", str(tests)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


def assert_pushed(output: str, database: str) -> None:
    for path in MIGRATIONS:
        assert f"Applying migration {path.name}" in output
    assert applied_versions(database) == [path.name.split("_", 1)[0] for path in MIGRATIONS]
    # postgres owns what it works with; Realtime's table stays Realtime's (policies came via policy_grants).
    assert owners(database) == {"pgmq schema": "postgres", "pgmq extension": "postgres", "job queue": "postgres",
                                "realtime.messages": "supabase_realtime_admin"}


def test_first_push_on_a_fresh_project_brings_pgmq_in_and_the_suite_passes(fresh_database: str) -> None:
    output = localdb.push_migrations(fresh_database)

    assert_pushed(output, fresh_database)
    pgtap_passes(fresh_database)


def test_first_push_after_queues_were_enabled_from_the_dashboard_and_the_suite_passes(fresh_database: str) -> None:
    localdb.enable_queues_from_dashboard(fresh_database)

    output = localdb.push_migrations(fresh_database)

    assert_pushed(output, fresh_database)
    pgtap_passes(fresh_database)


def test_push_again_is_a_no_op(fresh_database: str) -> None:
    localdb.push_migrations(fresh_database)
    before = applied_versions(fresh_database)

    output = localdb.push_migrations(fresh_database)

    assert "Remote database is up to date." in output
    assert "Applying migration" not in output
    assert applied_versions(fresh_database) == before


def test_without_the_pgmq_schema_migration_a_fresh_project_fails_as_on_supabase(
    fresh_database: str, tmp_path: Path
) -> None:
    """The stand-in is as strict as Supabase's privileged-extension path: the released migrations alone stop
    at pgmq.create() (the finding that 20261125175900 answers)."""
    project = tmp_path / "supabase"
    (project / "migrations").mkdir(parents=True)
    shutil.copy(REPO / "supabase" / "config.toml", project / "config.toml")
    for path in MIGRATIONS:
        if path.name != PGMQ_SCHEMA_MIGRATION:
            shutil.copy(path, project / "migrations" / path.name)

    with pytest.raises(localdb.LocalDbError) as failure:
        localdb.push_migrations(fresh_database, migrations_dir=project / "migrations")

    assert "permission denied for schema pgmq" in str(failure.value)
