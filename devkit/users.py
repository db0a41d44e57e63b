"""Users as Supabase Auth (GoTrue) creates them on sign-up: a row in auth.users."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg


def create_user(conn: psycopg.Connection[Any], email: str | None = None) -> uuid.UUID:
    """Sign up a new user and return its id (`email` defaults to <id>@example.test)."""
    user_id = uuid.uuid4()
    conn.execute(
        "insert into auth.users (id, email, role, aud, email_confirmed_at) "
        "values (%s, %s, 'authenticated', 'authenticated', now())",
        (user_id, email or f"{user_id}@example.test"),
    )
    return user_id


def ensure_user(conn: psycopg.Connection[Any], email: str) -> uuid.UUID:
    """The id of the user with `email`, signing one up first if there is none."""
    row = conn.execute("select id from auth.users where email = %s order by created_at limit 1", (email,)).fetchone()
    return uuid.UUID(str(row[0])) if row else create_user(conn, email)
