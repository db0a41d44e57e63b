"""What one signed-in user can do to others with the rights they legitimately have, performed as the
attacks: a DELETE that holds a processing row while a slow filter runs, a CPU-burning filter, and a
delete of an assessment in the middle of its processing. Each request runs as PostgREST runs it
(devkit.postgrest.acting_as: the role's own settings, among them its statement timeout)."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

import psycopg
import pytest

from devkit.fake_openai import FakeOpenAI, delay
from devkit.localdb import worker_url
from devkit.postgrest import acting_as, role_settings
from devkit.samples import answers, submit
from devkit.users import create_user
from tests.worker_support import eventually, fetch, recommender_for, running_worker, settings_for, wait_for_status
from worker.db import Database
from worker.exceptions import DatabaseUnavailable
from worker.metrics import REGISTRY

pytestmark = pytest.mark.usefixtures("empty_queues")

# A backtracking pattern (back-references) that never finishes on a long answer that does not match it.
SLOW_PATTERN = r"^(.*)(.*)(.*)(.*)(.*)\5\4\3\2\1$"
LONGEST_TEXT_ANSWER = "abcdefghij" * 200  # the 2,000 characters the validation allows


def role_timeout_seconds(admin: psycopg.Connection[Any]) -> float:
    with admin.cursor(row_factory=psycopg.rows.dict_row) as cur:
        value = dict(role_settings(cur, "authenticated"))["statement_timeout"]
    assert value.endswith("s") and value[:-1].isdigit(), value
    return float(value[:-1])


def test_a_user_statement_ends_at_the_api_roles_statement_timeout(
    admin: psycopg.Connection[Any], database_url: str, user_id: uuid.UUID
) -> None:
    """PostgREST applies authenticated's own statement_timeout (3 s, set by this project's migrations):
    a backtracking `match` filter over the longest free text costs at most that much, then ends 57014."""
    submit(admin, user_id, [{"assessment_type": "career",
                             "answers": [{"question_id": "q", "question": "Tell us", "answer": LONGEST_TEXT_ANSWER}]}])
    timeout = role_timeout_seconds(admin)
    assert timeout == 3
    with psycopg.connect(database_url) as conn:
        started = time.monotonic()
        with pytest.raises(psycopg.errors.QueryCanceled) as refused, acting_as(conn, user_id) as cur:
            cur.execute("select id from public.test_assessment where answers -> 0 ->> 'answer' ~ %s", (SLOW_PATTERN,))
        elapsed = time.monotonic() - started
    assert refused.value.sqlstate == "57014"
    assert timeout <= elapsed < timeout + 1.5


async def test_a_users_slow_delete_does_not_hold_up_another_users_result(
    admin: psycopg.Connection[Any], database_url: str
) -> None:
    """The attack: the attacker deletes their own processing assessment in a statement that then spends
    the statement timeout on a slow filter over another of their rows. The victim's result, committed in
    the same moments, must not wait for it; the attacker's own job completes once the statement is over."""
    attacker, victim = create_user(admin), create_user(admin)
    long_answer = [{"question_id": "q", "question": "Tell us", "answer": LONGEST_TEXT_ANSWER}]
    pair = submit(admin, attacker, [{"assessment_type": "career", "answers": long_answer},
                                    {"assessment_type": "wellbeing", "answers": long_answer}])
    ai_seconds = 1.0
    async with FakeOpenAI(default=delay(ai_seconds)) as ai:
        settings = settings_for(database_url, cache_ttl_seconds=0)
        async with running_worker(settings, recommender_for(settings, ai.base_url)):
            assert await eventually(lambda: len(ai.requests) == 2, timeout=10)
            # The statement scans the table in physical order (as the worker's start left the rows): the
            # row it reaches first is the one it locks (first disjunct) before the slow filter on the other.
            order = admin.execute("select id from public.test_assessment where id = any(%s) order by ctid",
                                  (pair,)).fetchall()
            held, slow = (row[0] for row in order)

            def attack() -> float:
                with psycopg.connect(database_url) as conn:
                    started = time.monotonic()
                    try:
                        with acting_as(conn, attacker, role="authenticated", commit=True) as cur:
                            cur.execute("delete from public.test_assessment where (status = 'processing' and id <> %s)"
                                        " or (answers -> 0 ->> 'answer') ~ %s", (slow, SLOW_PATTERN))
                    except psycopg.errors.QueryCanceled:
                        pass
                    return time.monotonic() - started

            busy_before = REGISTRY.get_sample_value("assessment_busy_commits_total") or 0.0
            attacking = asyncio.create_task(asyncio.to_thread(attack))
            await asyncio.sleep(0.3)  # the attacker's statement holds its processing row now
            # The victim submits; the attacker's job commits first (and, before the fix, waited for the
            # statement with the whole commit queue behind it).
            [victims] = submit(admin, victim, [{"assessment_type": "career", "answers": answers(1002)}])
            held_for = await attacking
            rows = await wait_for_status(database_url, [held, slow, victims], timeout=15)
    assert held_for >= 2.5  # the attacker's statement held its row for (nearly) the whole timeout
    # The attacker's job did meet its locked row (else this test proved nothing) and was committed after.
    assert (REGISTRY.get_sample_value("assessment_busy_commits_total") or 0.0) > busy_before
    by_id = {row["id"]: row for row in rows}
    victim_row = by_id[victims]
    victim_seconds = (victim_row["completed_at"] - victim_row["created_at"]).total_seconds()  # as the victim sees it
    # Before the fix the victim's commit queued behind the attacker's job until the statement ended:
    # about 2.6 s here; its own work takes the AI's 1 s.
    assert victim_seconds < ai_seconds + 0.8, f"the victim waited {victim_seconds:.1f}s for another user's statement"
    assert all(row["results"] == 1 and row["attempts"] == 1 for row in rows)  # the held job finished afterwards
    assert len(ai.requests) == 3


async def test_deleting_an_assessment_while_it_is_processing_ends_cleanly(
    admin: psycopg.Connection[Any], database_url: str, user_id: uuid.UUID
) -> None:
    [assessment_id] = submit(admin, user_id, [{"assessment_type": "career", "answers": answers(1003)}])
    async with FakeOpenAI(default=delay(1.0)) as ai:
        settings = settings_for(database_url, cache_ttl_seconds=0)
        async with running_worker(settings, recommender_for(settings, ai.base_url)) as consumer:
            assert await eventually(lambda: len(ai.requests) == 1, timeout=10)
            with acting_as(admin, user_id, commit=True) as cur:
                cur.execute("delete from public.test_assessment where id = %s", (assessment_id,))
                assert cur.rowcount == 1
            assert await eventually(lambda: not consumer.in_flight, timeout=10)
    assert await fetch(database_url, "select 1 from public.result_test where assessment_id = %s",
                       (assessment_id,)) == []
    assert await fetch(database_url, "select 1 from pgmq.q_assessment_submitted") == []  # acknowledged
    assert await fetch(database_url, "select 1 from pgmq.q_assessment_submitted_dlq") == []  # no error loop
    assert len(ai.requests) == 1


def test_the_daily_cap_refuses_through_the_api_and_stores_nothing(
    admin: psycopg.Connection[Any], database_url: str, user_id: uuid.UUID
) -> None:
    admin.execute("update private.settings set submissions_per_day = 2")
    try:
        submit(admin, user_id, [{"assessment_type": "career", "answers": answers(1004 + i)} for i in range(2)])
        with pytest.raises(psycopg.Error) as refused, acting_as(admin, user_id, commit=True) as cur:
            cur.execute("insert into public.test_assessment (assessment_type, answers) values ('career', %s)",
                        (json.dumps(answers(1010)),))
    finally:
        admin.execute("update private.settings set submissions_per_day = 50")
    assert refused.value.sqlstate == "PT429"
    assert refused.value.diag.message_primary == "daily limit: at most 2 assessments per day"
    assert (refused.value.diag.message_hint or "").startswith("Submit again after ")
    stored = admin.execute("select count(*) from public.test_assessment where user_id = %s", (user_id,)).fetchone()
    assert stored == (2,)


async def test_the_workers_other_writes_never_wait_for_a_row_a_user_holds(
    admin: psycopg.Connection[Any], database_url: str, user_id: uuid.UUID
) -> None:
    """A failed attempt and a dead letter, while the owner's statement holds the assessment: neither waits.
    The failure keeps its retry backoff (only the owner's last_error waits for the next one); the dead
    letter changes nothing and says busy: the message comes back when its lease ends."""
    [assessment_id] = submit(admin, user_id, [{"assessment_type": "career", "answers": answers(1005)}])
    db = await Database.open(worker_url(database_url), size=1)
    try:
        [leased] = await db.take_jobs(10, 30, max_reads=15, max_attempts=5, in_flight=[])
        with psycopg.connect(database_url) as holder:
            holder.execute("select 1 from public.test_assessment where id = %s for update", (assessment_id,))
            started = time.monotonic()
            held = await db.record_failure(leased.message, assessment_id, "Processing failed.", 2)
            outcome = await db.dead_letter(leased.message, assessment_id, "attempts exhausted: 5 of 5", "Gave up.")
            waited = time.monotonic() - started
            holder.rollback()
    finally:
        await db.close()
    assert (held, outcome) == (True, "busy") and waited < 1.0
    [row] = await fetch(database_url, "select status::text, last_error from public.test_assessment where id = %s",
                        (assessment_id,))
    assert row == {"status": "processing", "last_error": None}
    [queued] = await fetch(database_url, "select vt - clock_timestamp() as left from pgmq.q_assessment_submitted "
                           "where msg_id = %s", (leased.message.msg_id,))
    assert 0 < queued["left"].total_seconds() <= 2  # the retry backoff, not the 30 s lease
    assert await fetch(database_url, "select 1 from pgmq.q_assessment_submitted_dlq") == []


async def test_a_wait_for_another_worker_lasts_at_most_the_workers_lock_timeout(
    admin: psycopg.Connection[Any], database_url: str, user_id: uuid.UUID
) -> None:
    """The worker's only waits are for queue rows another worker holds; assessment_worker's lock_timeout
    (2 s) bounds them too, as a transient error."""
    [assessment_id] = submit(admin, user_id, [{"assessment_type": "career", "answers": answers(1006)}])
    db = await Database.open(worker_url(database_url), size=1)
    try:
        [leased] = await db.take_jobs(10, 30, max_reads=15, max_attempts=5, in_flight=[])
        with psycopg.connect(database_url) as holder:
            holder.execute("select 1 from pgmq.q_assessment_submitted where msg_id = %s for update",
                           (leased.message.msg_id,))
            started = time.monotonic()
            with pytest.raises(DatabaseUnavailable, match=r"LockNotAvailable"):
                # Bounded here too: without the role's lock_timeout the statement would wait for ever.
                await asyncio.wait_for(db.record_failure(leased.message, assessment_id, "Processing failed.", 2), 10)
            waited = time.monotonic() - started
            holder.rollback()
    finally:
        await db.close()
    assert 1.5 < waited < 3.0
