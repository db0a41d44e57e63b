"""Acting as a user exactly as PostgREST does per request (and as Realtime does when a client joins a topic).

PostgREST logs in as `authenticator` and, for every request, opens a transaction, switches to the role
in the JWT (`set local role`), applies that role's own settings (`alter role ... set`: `set local role`
alone does not; PostgREST 11.1 and later does, so `authenticated`'s statement_timeout bounds every
request) and publishes the claims in `request.jwt.claims`; RLS and `auth.uid()` then see the user.
Realtime authorises a private channel join the same way, with `realtime.topic` set to
the topic being joined, and lets the join through if the user can read its rows of realtime.messages.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg.rows import dict_row

API_ROLES = ("anon", "authenticated", "service_role")


def claims(user_id: uuid.UUID | None, role: str = "authenticated") -> str:
    """The JWT claims PostgREST publishes for a request: a signed-in user's, or anon's (no `sub`)."""
    payload: dict[str, object] = {"role": role}
    if user_id is not None:
        payload |= {"sub": str(user_id), "aud": "authenticated"}
    return json.dumps(payload)


@contextmanager
def acting_as(
    conn: psycopg.Connection[Any],
    user_id: uuid.UUID | None,
    role: str = "authenticated",
    *,
    commit: bool = False,
    topic: str | None = None,
) -> Iterator[psycopg.Cursor[dict[str, Any]]]:
    """One request as `user_id` (None: a request without a user, e.g. role anon) in its own transaction.

    The transaction rolls back unless `commit=True`; an error inside leaves it rolled back. `topic` sets
    `realtime.topic` as Realtime does when it checks a channel join.
    """
    if role not in API_ROLES:
        raise ValueError(f"role must be one of {API_ROLES}, got {role!r}")
    with conn.transaction(force_rollback=not commit), conn.cursor(row_factory=dict_row) as cur:
        for name, value in role_settings(cur, role):
            cur.execute("select set_config(%s, %s, true)", (name, value))
        cur.execute(f"set local role {role}")  # one of API_ROLES, never user input
        cur.execute("select set_config('request.jwt.claims', %s, true)", (claims(user_id, role),))
        if topic is not None:
            cur.execute("select set_config('realtime.topic', %s, true)", (topic,))
        yield cur


def role_settings(cur: psycopg.Cursor[dict[str, Any]], role: str) -> list[tuple[str, str]]:
    """`role`'s settings as PostgREST applies them: for every database, then this one's on top."""
    rows = cur.execute(
        "select d.setdatabase <> 0 as this_database, unnest(d.setconfig) as setting from pg_db_role_setting d"
        " where d.setrole = %s::regrole and d.setdatabase in"
        " (0, (select oid from pg_database where datname = current_database()))"
        " order by this_database", (role,)).fetchall()
    return [(name, value) for name, _, value in (row["setting"].partition("=") for row in rows)]


def api_error(exc: psycopg.Error) -> dict[str, str | None]:
    """A database error as PostgREST hands it to the client: {code, message, details, hint}."""
    diag = exc.diag
    return {"code": diag.sqlstate, "message": diag.message_primary or str(exc),
            "details": diag.message_detail, "hint": diag.message_hint}
