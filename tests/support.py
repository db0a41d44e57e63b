"""Test helpers: the local database, users, and acting as a user exactly as PostgREST does."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from psycopg.rows import dict_row

REPO = Path(__file__).resolve().parent.parent
LOCALDB = REPO / "scripts" / "localdb"


def local_database_url() -> str:
    """Start (or reuse) the local database, apply new migrations, return its URL (the last line)."""
    result = subprocess.run([str(LOCALDB), "up"], capture_output=True, text=True, cwd=REPO)
    if result.returncode != 0:
        raise RuntimeError(f"scripts/localdb up failed:\n{result.stderr}")
    return result.stdout.strip().splitlines()[-1]


def create_user(conn: psycopg.Connection, email: str | None = None) -> uuid.UUID:
    """Insert a user into auth.users (as Supabase Auth would on sign-up) and return its id."""
    user_id = uuid.uuid4()
    conn.execute(
        "insert into auth.users (id, email, role, aud) values (%s, %s, 'authenticated', 'authenticated')",
        (user_id, email or f"{user_id}@example.test"),
    )
    return user_id


@contextmanager
def acting_as(
    conn: psycopg.Connection, user_id: uuid.UUID | None, role: str = "authenticated", commit: bool = False
) -> Iterator[psycopg.Cursor[dict[str, object]]]:
    """What PostgREST does per request: a transaction, `set local role`, and the JWT claims.

    `user_id=None` with role `anon` is a request without a user. The transaction rolls back unless
    `commit=True`; an error inside leaves it rolled back.
    """
    claims: dict[str, object] = {"role": role}
    if user_id is not None:
        claims |= {"sub": str(user_id), "aud": "authenticated"}
    with conn.transaction(force_rollback=not commit), conn.cursor(row_factory=dict_row) as cur:
        cur.execute(f"set local role {role}")  # role names are fixed identifiers, never user input
        cur.execute("select set_config('request.jwt.claims', %s, true)", (json.dumps(claims),))
        yield cur


def load_json(path: Path) -> dict[str, object]:
    return json.loads(path.read_text())  # type: ignore[no-any-return]
