"""The submission guard under concurrency: two retries of one request racing each other get the guard's
error about client_request_id, never PostgreSQL's unique-index error that names a constraint."""

from __future__ import annotations

import json
import threading
import uuid
from typing import Any

import psycopg
import pytest

from devkit import localdb
from devkit.postgrest import acting_as, api_error

BODY = [{"question_id": "q1", "question": "How are you?", "answer": "Fine"}]
INSERT = "insert into public.test_assessment (assessment_type, answers, client_request_id) values ('career', %s, %s)"


def test_racing_retries_with_one_client_request_id_get_the_fields_error(user_id: uuid.UUID) -> None:
    key = uuid.uuid4()
    outcome: dict[str, Any] = {}
    api = localdb.url("authenticator")
    with psycopg.connect(api) as first, psycopg.connect(api) as second:
        with acting_as(first, user_id, commit=True) as cur:
            cur.execute(INSERT, (json.dumps(BODY), key))

            def retry() -> None:  # the second request arrives while the first has not committed yet
                try:
                    with acting_as(second, user_id, commit=True) as other:
                        other.execute(INSERT, (json.dumps(BODY), key))
                except psycopg.Error as exc:
                    outcome["error"] = api_error(exc)

            racer = threading.Thread(target=retry)
            racer.start()
            racer.join(timeout=1.0)
            assert racer.is_alive(), "the retry should wait for the first request's transaction"
        racer.join(timeout=10)  # the first request committed when its block ended
    error = outcome["error"]
    assert error["code"] == "23505"
    assert error["message"] == f"client_request_id: {key} was already submitted"
    assert "constraint" not in json.dumps(error)


@pytest.mark.parametrize("claims", [{}, {"role": "service_role"}, {"role": "anon"}])
def test_the_guard_ignores_the_jwt_role_claim(
    admin: psycopg.Connection[Any], user_id: uuid.UUID, other_user_id: uuid.UUID, claims: dict[str, str]
) -> None:
    """As the database role authenticated, another user's id is RLS's to refuse, whatever the claims say."""
    key = uuid.uuid4()
    with acting_as(admin, other_user_id, commit=True) as cur:
        cur.execute(INSERT, (json.dumps(BODY), key))
    before = admin.execute("select tokens, refilled_at from private.submission_quota where user_id = %s",
                           (other_user_id,)).fetchone()
    with admin.transaction(force_rollback=True), admin.cursor() as cur:
        cur.execute("set local role authenticated")
        cur.execute("select set_config('request.jwt.claims', %s, true)", (json.dumps({"sub": str(user_id)} | claims),))
        with pytest.raises(psycopg.Error) as refused:
            cur.execute("insert into public.test_assessment (user_id, assessment_type, answers, client_request_id) "
                        "values (%s, 'career', %s, %s)", (other_user_id, json.dumps(BODY), key))
    error = api_error(refused.value)
    assert error["code"] == "42501" and str(other_user_id) not in json.dumps(error)
    after = admin.execute("select tokens, refilled_at from private.submission_quota where user_id = %s",
                          (other_user_id,)).fetchone()
    assert after == before


@pytest.mark.usefixtures("no_submission_limits")
def test_a_bulk_insert_takes_one_advisory_lock_not_one_per_row(
    admin: psycopg.Connection[Any], user_id: uuid.UUID
) -> None:
    """With the rate limit off, one request of many rows with distinct client_request_ids must not fill the
    lock table that every session shares (a slot per row held until commit)."""
    rows = 500
    with psycopg.connect(localdb.url("authenticator")) as api, acting_as(api, user_id) as cur:
        cur.execute(
            "insert into public.test_assessment (assessment_type, answers, client_request_id) "
            "select 'career', %s, gen_random_uuid() from generate_series(1, %s)", (json.dumps(BODY), rows))
        assert cur.rowcount == rows
        cur.execute("select count(*) as n from pg_locks where locktype = 'advisory' and pid = pg_backend_pid()")
        assert cur.fetchone() == {"n": 1}
