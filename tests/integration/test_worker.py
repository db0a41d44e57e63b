"""The worker in this process against the real local database and a real OpenAI-compatible server."""

from __future__ import annotations

import asyncio
import uuid

import psycopg
import pytest

from devkit import fake_openai
from devkit.fake_openai import FakeOpenAI
from devkit.localdb import worker_url
from devkit.samples import answers, submit, submit_many
from devkit.users import create_user
from tests.worker_support import (
    eventually,
    fetch,
    recommender_for,
    running_worker,
    settings_for,
    wait_for_status,
)
from worker.db import Database
from worker.failures import GAVE_UP
from worker.intake import Intake
from worker.metrics import REGISTRY

pytestmark = pytest.mark.usefixtures("empty_queues")


async def test_worker_completes_100_assessments_with_ai_results(
    admin: psycopg.Connection, database_url: str, fake: FakeOpenAI
) -> None:
    ids = submit_many(admin, 100, seed=1000)
    settings = settings_for(database_url, cache_ttl_seconds=0)
    async with running_worker(settings, recommender_for(settings, fake.base_url)):
        rows = await wait_for_status(database_url, ids, timeout=30)
    assert {row["source"] for row in rows} == {"ai"}
    assert all(row["results"] == 1 for row in rows)
    assert all((row["completed_at"] - row["created_at"]).total_seconds() < 30 for row in rows)
    assert len(fake.requests) == 100
    request = fake.requests[0].body
    assert request["response_format"]["type"] == "json_schema"
    assert request["response_format"]["json_schema"]["strict"] is True
    queue = await fetch(database_url, "select count(*) as n from pgmq.q_assessment_submitted")
    assert queue[0]["n"] == 0  # every message archived with its result


async def test_worker_falls_back_for_every_assessment_when_the_ai_is_down(
    admin: psycopg.Connection, database_url: str
) -> None:
    ids = submit_many(admin, 100, seed=2000)
    settings = settings_for(database_url)
    async with running_worker(settings, recommender_for(settings, "http://127.0.0.1:9/v1")):
        rows = await wait_for_status(database_url, ids, timeout=30)
    assert {(row["source"], row["fallback_reason"]) for row in rows} == {("fallback", "connection_error")}
    assert all(row["results"] == 1 for row in rows)
    assert all((row["completed_at"] - row["created_at"]).total_seconds() < 30 for row in rows)


@pytest.mark.parametrize(
    ("behaviour", "reason"),
    [
        (fake_openai.hang(), "timeout"),
        (fake_openai.status(429, retry_after=60), "rate_limited"),
        (fake_openai.status(500), "server_error"),
        (fake_openai.refusal(), "refusal"),
        (fake_openai.invalid_json(), "invalid_json"),
        (fake_openai.invalid_output(), "invalid_output"),
        (fake_openai.length(), "length"),
        (fake_openai.status(401), "client_error"),
    ],
)
async def test_worker_ai_failure_ends_completed_with_fallback(
    admin: psycopg.Connection, database_url: str, behaviour: fake_openai.Behaviour, reason: str
) -> None:
    [assessment_id] = submit(admin, create_user(admin), [{"assessment_type": "career", "answers": answers(7)}])
    async with FakeOpenAI(default=behaviour) as server:
        settings = settings_for(database_url, ai_deadline_seconds=2, cache_ttl_seconds=0)
        async with running_worker(settings, recommender_for(settings, server.base_url)):
            [row] = await wait_for_status(database_url, [assessment_id], timeout=30)
    assert (row["source"], row["fallback_reason"], row["results"]) == ("fallback", reason, 1)


async def test_worker_without_api_key_uses_fallback_without_calling_the_ai(
    admin: psycopg.Connection, database_url: str, fake: FakeOpenAI
) -> None:
    [assessment_id] = submit(admin, create_user(admin), [{"assessment_type": "career", "answers": answers(8)}])
    settings = settings_for(database_url)
    async with running_worker(settings, recommender_for(settings, fake.base_url, api_key=None)):
        [row] = await wait_for_status(database_url, [assessment_id])
    assert (row["source"], row["fallback_reason"]) == ("fallback", "not_configured")
    assert fake.requests == []


async def test_worker_reuses_an_ai_result_only_for_the_same_users_identical_answers(
    admin: psycopg.Connection, database_url: str, fake: FakeOpenAI
) -> None:
    body = {"assessment_type": "career", "answers": answers(int(uuid.uuid4().int % 10**9))}
    owner, stranger = create_user(admin), create_user(admin)
    settings = settings_for(database_url, cache_ttl_seconds=3600)
    async with running_worker(settings, recommender_for(settings, fake.base_url)):
        [first] = submit(admin, owner, [body])
        await wait_for_status(database_url, [first])
        [again] = submit(admin, owner, [body])
        [mine] = await wait_for_status(database_url, [again])
        # Another user guessing the owner's answers: no cache hit, nothing that tells them it exists.
        [guess] = submit(admin, stranger, [body])
        [theirs] = await wait_for_status(database_url, [guess])
    assert mine["source"] == "cache"
    assert theirs["source"] == "ai"
    assert len(fake.requests) == 2
    results = await fetch(database_url, "select assessment_id, recommendations, cache_key from public.result_test "
                          "where assessment_id = any(%s)", ([first, again, guess],))
    keys = {row["assessment_id"]: row["cache_key"] for row in results}
    assert keys[first] == keys[again] != keys[guess]


async def test_worker_acknowledges_a_redelivered_completed_job_without_a_second_result(
    admin: psycopg.Connection, database_url: str, fake: FakeOpenAI
) -> None:
    [assessment_id] = submit(admin, create_user(admin), [{"assessment_type": "career", "answers": answers(9)}])
    settings = settings_for(database_url, cache_ttl_seconds=0)
    async with running_worker(settings, recommender_for(settings, fake.base_url)):
        await wait_for_status(database_url, [assessment_id])
        event = (await fetch(database_url, "select message from pgmq.a_assessment_submitted "
                             "where message ->> 'assessment_id' = %s", (str(assessment_id),)))[0]["message"]
        admin.execute("select pgmq.send('assessment_submitted', %s)", (psycopg.types.json.Jsonb(event),))
        await _wait_for_empty_queue(database_url)
    [row] = await wait_for_status(database_url, [assessment_id])
    assert row["results"] == 1
    assert len(fake.requests) == 1


async def test_worker_acknowledges_a_job_whose_assessment_was_deleted(
    admin: psycopg.Connection, database_url: str, fake: FakeOpenAI
) -> None:
    [assessment_id] = submit(admin, create_user(admin), [{"assessment_type": "career", "answers": answers(10)}])
    admin.execute("delete from public.test_assessment where id = %s", (assessment_id,))
    settings = settings_for(database_url)
    async with running_worker(settings, recommender_for(settings, fake.base_url)):
        await _wait_for_empty_queue(database_url)
    assert fake.requests == []
    dlq = await fetch(database_url, "select count(*) as n from pgmq.q_assessment_submitted_dlq")
    assert dlq[0]["n"] == 0


async def test_intake_starts_a_message_committed_while_its_statement_waited(
    admin: psycopg.Connection, database_url: str
) -> None:
    """A message and its assessment commit together, so take_jobs must see both or neither. (pgmq.read
    runs its own query with a newer snapshot: it leased such a message while the statement could not see
    the assessment, and the job was acknowledged as deleted, i.e. lost.)"""
    settings = settings_for(database_url)
    db = await Database.open(settings.database_url, size=1)
    user = create_user(admin)
    try:
        intake = Intake(settings, db, settings.openai_model)
        with psycopg.connect(database_url, autocommit=True) as producer, producer.transaction():
            # Hold the queue table so the statement waits, then commit a submission while it does.
            producer.execute("lock table pgmq.q_assessment_submitted in exclusive mode")
            take = asyncio.create_task(intake.take(10, {}))
            assert await eventually(lambda: _waiting_for_a_lock(admin), timeout=5)
            [assessment_id] = submit(producer, user, [{"assessment_type": "career", "answers": answers(12)}])
        read, jobs = await take
        assert read == 1
        assert [job.assessment.id for job in jobs] == [assessment_id]
        assert jobs[0].message.read_ct == 1
    finally:
        await db.close()


async def test_intake_leaves_a_message_whose_assessment_is_being_committed(
    admin: psycopg.Connection, database_url: str
) -> None:
    """A commit locks the assessment, then archives its message. If that message's lease ran out and another
    worker takes it meanwhile, take_jobs must not wait for the assessment while it holds the message (the
    two would deadlock): it leaves the message leased, and neither acknowledges nor restarts it."""
    settings = settings_for(database_url)
    db = await Database.open(settings.database_url, size=1)
    [assessment_id] = submit(admin, create_user(admin), [{"assessment_type": "career", "answers": answers(18)}])
    try:
        intake = Intake(settings, db, settings.openai_model)
        with psycopg.connect(database_url, autocommit=True) as committer, committer.transaction():
            committer.execute("select from public.test_assessment where id = %s for update", (assessment_id,))
            read, jobs = await asyncio.wait_for(intake.take(10, {}), timeout=5)  # without waiting
            assert (read, jobs) == (1, [])
            # Left leased, not acknowledged: a record_failure holding the lock still needs the message.
            leased = await fetch(database_url, "select vt > now() as leased, read_ct from pgmq.q_assessment_submitted")
            assert leased == [{"leased": True, "read_ct": 1}]
            committer.execute("select pgmq.archive('assessment_submitted', msg_id) "
                              "from pgmq.q_assessment_submitted")  # would deadlock if take still held it
        [row] = await fetch(database_url, "select status::text, attempts from public.test_assessment "
                                          "where id = %(id)s", {"id": assessment_id})
        assert (row["status"], row["attempts"]) == ("queued", 0)
        archived = await fetch(database_url, "select read_ct from pgmq.a_assessment_submitted "
                                             "where message ->> 'assessment_id' = %(id)s", {"id": str(assessment_id)})
        assert [a["read_ct"] for a in archived] == [1]  # leased once, archived by the committer alone
    finally:
        await db.close()


def _waiting_for_a_lock(conn: psycopg.Connection) -> bool:
    row = conn.execute("select count(*) from pg_locks where not granted and relation = "
                       "'pgmq.q_assessment_submitted'::regclass").fetchone()
    return row is not None and row[0] > 0


async def test_worker_dead_letters_an_invalid_event_without_failing_the_assessment_it_names(
    admin: psycopg.Connection, database_url: str, fake: FakeOpenAI
) -> None:
    """A forged or broken message naming a live assessment must not fail it: its real job is still queued."""
    [assessment_id] = submit(admin, create_user(admin), [{"assessment_type": "career", "answers": answers(11)}])
    admin.execute("select pgmq.send('assessment_submitted', %s)", (psycopg.types.json.Jsonb(
        {"type": "assessment_submitted", "version": 99, "assessment_id": str(assessment_id)}),))
    admin.execute("select pgmq.send('assessment_submitted', '\"not an object\"')")
    admin.execute("select pgmq.send('assessment_submitted', %s)", (psycopg.types.json.Jsonb({
        "type": "assessment_submitted", "version": 1, "assessment_id": str(assessment_id),
        "user_id": str(uuid.uuid4()), "submitted_at": "yesterday"}),))
    settings = settings_for(database_url, cache_ttl_seconds=0)
    async with running_worker(settings, recommender_for(settings, fake.base_url)):
        [row] = await wait_for_status(database_url, [assessment_id])
        await _wait_for_empty_queue(database_url)
    assert (row["status"], row["source"], row["last_error"], row["results"]) == ("completed", "ai", None, 1)
    dead = await fetch(database_url, "select message from pgmq.q_assessment_submitted_dlq order by msg_id")
    assert [d["message"]["reason"].split(":")[0] for d in dead] == ["invalid event"] * 3
    assert dead[0]["message"]["event"]["version"] == 99


async def test_worker_fails_the_assessment_an_invalid_event_started(
    admin: psycopg.Connection, database_url: str, fake: FakeOpenAI
) -> None:
    """A submitted_at of the right form passes take_jobs' check and starts the assessment; a date that does
    not exist fails the contract.
    With no other message to finish it (here: a dead letter requeued by an operator), it must not stay
    processing: it fails, and the owner reads the short message."""
    user = create_user(admin)
    with admin.transaction():
        admin.execute("set local session_replication_role = replica")  # no job of its own
        inserted = admin.execute(
            "insert into public.test_assessment (user_id, assessment_type, answers) values (%s, 'career', %s) "
            "returning id", (user, psycopg.types.json.Jsonb(answers(17)))).fetchone()
    assert inserted is not None
    [assessment_id] = inserted
    admin.execute("select pgmq.send('assessment_submitted', %s)", (psycopg.types.json.Jsonb({
        "type": "assessment_submitted", "version": 1, "assessment_id": str(assessment_id),
        "user_id": str(user), "submitted_at": "2026-02-30T10:00:00+00:00"}),))
    settings = settings_for(database_url)
    async with running_worker(settings, recommender_for(settings, fake.base_url)):
        [row] = await wait_for_status(database_url, [assessment_id], statuses=("failed",))
    assert (row["last_error"], row["attempts"], row["results"]) == (GAVE_UP, 1, 0)
    assert fake.requests == []
    [dead] = await fetch(database_url, "select message from pgmq.q_assessment_submitted_dlq")
    assert dead["message"]["reason"].startswith("invalid event: submitted_at")


async def test_worker_dead_letters_after_max_attempts(
    admin: psycopg.Connection, database_url: str, fake: FakeOpenAI
) -> None:
    [assessment_id] = submit(admin, create_user(admin), [{"assessment_type": "career", "answers": answers(12)}])
    # Three attempts that never finished (e.g. workers killed mid-job): processing, attempts = 3.
    admin.execute("update public.test_assessment set status = 'processing', attempts = 3 where id = %s",
                  (assessment_id,))
    settings = settings_for(database_url, max_attempts=3)
    async with running_worker(settings, recommender_for(settings, fake.base_url)):
        [row] = await wait_for_status(database_url, [assessment_id], statuses=("failed",))
    assert row["last_error"] == GAVE_UP and row["results"] == 0
    assert row["attempts"] == 3  # dead-lettered without a fourth, phantom start
    assert fake.requests == []
    [dead] = await fetch(database_url, "select message from pgmq.q_assessment_submitted_dlq")
    assert dead["message"]["reason"] == "attempts exhausted: 3 of 3"
    # The owner saw processing (the unfinished attempts) and then failed, nothing in between.
    events = await fetch(database_url, "select event from realtime.messages where topic = %s "
                         "order by inserted_at, id", (f"assessment:{assessment_id}",))
    assert [e["event"] for e in events] == ["assessment_processing", "assessment_failed"]


async def test_worker_dead_letters_a_message_that_never_starts(
    admin: psycopg.Connection, database_url: str, fake: FakeOpenAI
) -> None:
    [assessment_id] = submit(admin, create_user(admin), [{"assessment_type": "career", "answers": answers(16)}])
    for _ in range(6):  # six deliveries that never reached processing
        admin.execute("select pgmq.read('assessment_submitted', 0, 1)")
    settings = settings_for(database_url, max_attempts=2)  # 2 attempts x 3 deliveries each
    async with running_worker(settings, recommender_for(settings, fake.base_url)):
        [row] = await wait_for_status(database_url, [assessment_id], statuses=("failed",))
    assert row["last_error"] == GAVE_UP and row["attempts"] == 0
    assert fake.requests == []
    [dead] = await fetch(database_url, "select message from pgmq.q_assessment_submitted_dlq")
    assert dead["message"]["reason"] == "never started after 6 deliveries"


async def test_worker_retries_a_failed_attempt_then_dead_letters_it(
    admin: psycopg.Connection, database_url: str, fake: FakeOpenAI
) -> None:
    """A job whose result cannot be written at all (here: every result is rejected) fails its attempts; the
    owner reads a short message, the operator the reason."""
    [assessment_id] = submit(admin, create_user(admin), [{"assessment_type": "career", "answers": answers(13)}])
    admin.execute("alter table public.result_test add constraint test_reject_all check (latency_ms < 0) not valid")
    try:
        settings = settings_for(database_url, max_attempts=2, cache_ttl_seconds=0)
        async with running_worker(settings, recommender_for(settings, fake.base_url)):
            [row] = await wait_for_status(database_url, [assessment_id], statuses=("failed",), timeout=30)
    finally:
        admin.execute("alter table public.result_test drop constraint test_reject_all")
    assert row["attempts"] == 2
    assert row["last_error"] == GAVE_UP
    dead = await fetch(database_url, "select message from pgmq.q_assessment_submitted_dlq")
    assert len(dead) == 1 and dead[0]["message"]["reason"].startswith("attempt 2 of 2 failed")
    assert "test_reject_all" in dead[0]["message"]["reason"]
    assert len(fake.requests) == 2  # one AI call per attempt; each attempt then tried fallback, not the AI again


async def test_worker_listen_reconnects_after_its_connection_is_terminated(
    admin: psycopg.Connection, database_url: str, fake: FakeOpenAI
) -> None:
    settings = settings_for(database_url, poll_interval_seconds=30)  # only NOTIFY can wake it in time
    async with running_worker(settings, recommender_for(settings, fake.base_url)) as consumer:
        def gauge() -> float | None:
            return REGISTRY.get_sample_value("assessment_worker_listen_connected")

        assert await eventually(lambda: consumer.listening and gauge() == 1, timeout=5)
        admin.execute("select pg_terminate_backend(pid) from pg_stat_activity "
                      "where usename = 'assessment_worker' and query ilike 'listen%%'")
        assert await eventually(lambda: not consumer.listening and gauge() == 0, timeout=5)
        assert await eventually(lambda: consumer.listening and gauge() == 1, timeout=10)
        ids = submit(admin, create_user(admin), [{"assessment_type": "career", "answers": answers(14)}])
        await wait_for_status(database_url, ids, timeout=5)


async def _wait_for_empty_queue(database_url: str, timeout: float = 15) -> None:
    async def empty() -> bool:
        rows = await fetch(database_url, "select count(*) as n from pgmq.q_assessment_submitted")
        return bool(rows[0]["n"] == 0)
    deadline = asyncio.get_running_loop().time() + timeout
    while not await empty():
        assert asyncio.get_running_loop().time() < deadline, "queue did not empty"
        await asyncio.sleep(0.1)


def test_worker_url_uses_the_least_privilege_role(database_url: str) -> None:
    assert worker_url(database_url).startswith("postgresql://assessment_worker@")


async def test_worker_dead_letters_an_assessment_that_breaks_the_answer_rules(
    admin: psycopg.Connection, database_url: str, fake: FakeOpenAI
) -> None:
    """Rows written with triggers off (session_replication_role, which postgres may set) are re-checked by the
    worker, not trusted."""
    user = create_user(admin)
    with admin.transaction():
        admin.execute("set local session_replication_role = replica")  # skips validation and enqueue
        inserted = admin.execute(
            "insert into public.test_assessment (user_id, assessment_type, answers) "
            "values (%s, 'career', '[{\"question_id\": \"bad id!\", \"question\": \"Q?\", \"answer\": 1}]') "
            "returning id, created_at", (user,)).fetchone()
    assert inserted is not None
    assessment_id, created_at = inserted
    admin.execute("select pgmq.send('assessment_submitted', %s)", (psycopg.types.json.Jsonb({
        "type": "assessment_submitted", "version": 1, "assessment_id": str(assessment_id),
        "user_id": str(user), "submitted_at": created_at.isoformat()}),))
    settings = settings_for(database_url)
    async with running_worker(settings, recommender_for(settings, fake.base_url)):
        [row] = await wait_for_status(database_url, [assessment_id], statuses=("failed",))
    assert row["last_error"] == GAVE_UP
    assert fake.requests == []
    [dead] = await fetch(database_url, "select message from pgmq.q_assessment_submitted_dlq")
    assert dead["message"]["reason"].startswith("invalid assessment: answers.0.question_id")


async def test_worker_extends_the_lease_of_a_job_slower_than_its_lease(
    admin: psycopg.Connection, database_url: str
) -> None:
    [assessment_id] = submit(admin, create_user(admin), [{"assessment_type": "career", "answers": answers(15)}])
    async with FakeOpenAI(default=fake_openai.delay(4.5)) as slow_ai:
        settings = settings_for(database_url, lease_seconds=3, cache_ttl_seconds=0)
        # A second worker polls the same queue: it would take the job if its lease ran out.
        async with running_worker(settings, recommender_for(settings, slow_ai.base_url)), \
                running_worker(settings, recommender_for(settings, slow_ai.base_url)):
            [row] = await wait_for_status(database_url, [assessment_id], timeout=20)
    assert (row["source"], row["attempts"]) == ("ai", 1)  # never handed out a second time
    assert len(slow_ai.requests) == 1


async def test_worker_completion_broadcasts_once_per_topic_per_transition(
    admin: psycopg.Connection, database_url: str, fake: FakeOpenAI
) -> None:
    user = create_user(admin)
    [assessment_id] = submit(admin, user, [{"assessment_type": "career", "answers": answers(17)}])
    settings = settings_for(database_url, cache_ttl_seconds=0)
    async with running_worker(settings, recommender_for(settings, fake.base_url)):
        [row] = await wait_for_status(database_url, [assessment_id])
    messages = await fetch(database_url, "select topic, event, payload from realtime.messages "
                           "where topic in (%s, %s) order by inserted_at, id",
                           (f"assessment:{assessment_id}", f"user:{user}"))
    seen = sorted((m["topic"].split(":")[0], m["event"]) for m in messages)
    assert seen == [("assessment", "assessment_processing"), ("assessment", "recommendation_completed"),
                    ("user", "assessment_processing"), ("user", "recommendation_completed")]
    completed = next(m["payload"] for m in messages if m["event"] == "recommendation_completed")
    assert (completed["source"], completed["result_id"]) == ("ai", str(row["result_id"]))
    assert "answers" not in completed
