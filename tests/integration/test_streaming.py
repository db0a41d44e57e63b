"""The owner's drafts, end to end: the worker in this process, the real local database (realtime.send into
realtime.messages, RLS on the topic) and a streaming OpenAI-compatible server (devkit.fake_openai)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import psycopg
import pytest

from devkit.fake_openai import FakeOpenAI, broken_stream
from devkit.postgrest import acting_as
from devkit.samples import answers, submit
from devkit.users import create_user
from tests.worker_support import fetch, recommender_for, running_worker, settings_for, wait_for_status
from worker.events import AssessmentStatusChanged, RecommendationStreamed
from worker.metrics import REGISTRY

pytestmark = pytest.mark.usefixtures("empty_queues")


@pytest.fixture
async def streaming() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI(recommendations=5, chars_per_second=3000) as server:
        yield server


async def topic_messages(database_url: str, assessment_id: uuid.UUID) -> list[dict[str, Any]]:
    """assessment:<id>'s broadcasts in the order they were sent (each draft batch and the commit are
    transactions of their own; inserted_at is their time)."""
    return await fetch(database_url, "select event, payload - 'id' as payload from realtime.messages "
                       "where topic = %s order by inserted_at, payload ->> 'index'", (f"assessment:{assessment_id}",))


def drafts_of(messages: list[dict[str, Any]]) -> list[RecommendationStreamed]:
    return [RecommendationStreamed.model_validate(m["payload"]) for m in messages
            if m["event"] == "recommendation_streamed"]


async def run_one(admin: psycopg.Connection, database_url: str, server: FakeOpenAI | None, seed: int,
                  **settings: Any) -> tuple[uuid.UUID, dict[str, Any], list[dict[str, Any]]]:
    [assessment_id] = submit(admin, create_user(admin), [{"assessment_type": "career", "answers": answers(seed)}])
    worker = settings_for(database_url, **({"cache_ttl_seconds": 0} | settings))
    async with running_worker(worker, recommender_for(worker, server.base_url if server else None,
                                                      api_key="sk-test" if server else None)):
        [row] = await wait_for_status(database_url, [assessment_id])
    return assessment_id, row, await topic_messages(database_url, assessment_id)


async def test_drafts_arrive_before_the_completion_and_equal_the_committed_recommendations(
    admin: psycopg.Connection, database_url: str, streaming: FakeOpenAI
) -> None:
    assessment_id, row, messages = await run_one(admin, database_url, streaming, 1901)
    assert row["source"] == "ai"
    events = [m["event"] for m in messages]
    assert events[0] == "assessment_processing" and events[-1] == "recommendation_completed"
    drafts = drafts_of(messages)
    assert len(drafts) == 5 == events.count("recommendation_streamed")  # one message per recommendation
    assert [d.index for d in drafts] == [0, 1, 2, 3, 4] and {d.attempt for d in drafts} == {1}
    assert {(d.assessment_id, d.user_id) for d in drafts} == {(assessment_id, drafts[0].user_id)}
    [result] = await fetch(database_url, "select recommendations from public.result_test where assessment_id = %s",
                           (assessment_id,))
    streamed = [d.recommendation.model_dump(mode="json") for d in sorted(drafts, key=lambda d: d.index)]
    assert sorted(streamed, key=lambda r: r["priority"]) == result["recommendations"]
    completed = AssessmentStatusChanged.model_validate(messages[-1]["payload"])
    assert max(d.occurred_at for d in drafts) <= completed.occurred_at
    user_topic = await fetch(database_url, "select count(*) as n from realtime.messages where topic = %s "
                             "and event = 'recommendation_streamed'", (f"user:{drafts[0].user_id}",))
    assert user_topic[0]["n"] == 0  # a list page gets no drafts


async def test_only_the_owner_can_receive_the_drafts(
    admin: psycopg.Connection, database_url: str, streaming: FakeOpenAI
) -> None:
    assessment_id, _, messages = await run_one(admin, database_url, streaming, 1902)
    owner = drafts_of(messages)[0].user_id
    topic = f"assessment:{assessment_id}"
    query = "select count(*) as n from realtime.messages where topic = %s and event = 'recommendation_streamed'"
    seen = {}
    for name, user, role in (("owner", owner, "authenticated"), ("other", create_user(admin), "authenticated"),
                             ("anon", None, "anon")):
        with acting_as(admin, user, role=role, topic=topic) as cur:
            cur.execute(query, (topic,))
            seen[name] = cur.fetchone()["n"]  # type: ignore[index]
    assert seen == {"owner": 5, "other": 0, "anon": 0}


async def test_a_stream_broken_half_way_is_retried_and_the_completion_supersedes_its_drafts(
    admin: psycopg.Connection, database_url: str, streaming: FakeOpenAI
) -> None:
    streaming.script(broken_stream(0.5))
    _, row, messages = await run_one(admin, database_url, streaming, 1903)
    assert row["source"] == "ai" and len(streaming.requests) == 2
    drafts = drafts_of(messages)
    assert 1 <= len(drafts) < 5 and len({d.index for d in drafts}) == len(drafts)  # the retry sent none again
    assert messages[-1]["event"] == "recommendation_completed"


async def test_a_stream_that_never_finishes_ends_in_fallback_recommendations_that_supersede_the_drafts(
    admin: psycopg.Connection, database_url: str, streaming: FakeOpenAI
) -> None:
    streaming.default = broken_stream(0.5)
    _, row, messages = await run_one(admin, database_url, streaming, 1904)
    assert (row["source"], row["fallback_reason"]) == ("fallback", "connection_error")
    assert drafts_of(messages)  # sent, then superseded:
    completed = AssessmentStatusChanged.model_validate(messages[-1]["payload"])
    assert (completed.type, completed.source) == ("recommendation_completed", "fallback")


@pytest.mark.parametrize("how", ["AI_STREAM=false", "server refuses stream", "server ignores stream"])
async def test_without_streaming_the_ai_still_completes_and_no_drafts_are_sent(
    admin: psycopg.Connection, database_url: str, how: str
) -> None:
    mode = {"server refuses stream": "reject", "server ignores stream": "ignore"}.get(how, "sse")
    async with FakeOpenAI(recommendations=5, stream_mode=mode) as server:
        _, row, messages = await run_one(admin, database_url, server, 1905, ai_stream=how != "AI_STREAM=false")
    assert row["source"] == "ai" and drafts_of(messages) == []
    assert "stream" not in server.requests[-1].body or mode == "ignore"


async def test_fallbacks_and_cache_hits_send_no_drafts(
    admin: psycopg.Connection, database_url: str, streaming: FakeOpenAI
) -> None:
    _, row, messages = await run_one(admin, database_url, None, 1906)  # no API key: fallback
    assert row["source"] == "fallback" and drafts_of(messages) == []
    user = create_user(admin)
    body = {"assessment_type": "career", "answers": answers(1907)}
    worker = settings_for(database_url)  # the cache on
    async with running_worker(worker, recommender_for(worker, streaming.base_url)):
        [first] = submit(admin, user, [body])
        await wait_for_status(database_url, [first])
        [second] = submit(admin, user, [body])
        [row] = await wait_for_status(database_url, [second])
    assert row["source"] == "cache" and drafts_of(await topic_messages(database_url, second)) == []
    assert drafts_of(await topic_messages(database_url, first))


def drafts_counted(outcome: str) -> float:
    return REGISTRY.get_sample_value("assessment_drafts_total", {"outcome": outcome}) or 0.0


async def test_a_worker_whose_message_was_delivered_again_sends_no_more_drafts_and_the_retry_streams_anew(
    admin: psycopg.Connection, database_url: str
) -> None:
    """Fencing: once another delivery holds the message, this job's drafts change nothing; the new delivery
    (attempt 2) streams its own, and a client keeps only those of the newest attempt."""
    [assessment_id] = submit(admin, create_user(admin), [{"assessment_type": "career", "answers": answers(1908)}])
    fenced_before = drafts_counted("not_processing")
    async with FakeOpenAI(recommendations=6, chars_per_second=700) as slow:
        worker = settings_for(database_url, cache_ttl_seconds=0, lease_seconds=3)
        async with running_worker(worker, recommender_for(worker, slow.base_url)):
            async def first_draft() -> bool:
                return bool(drafts_of(await topic_messages(database_url, assessment_id)))

            for _ in range(200):  # the first draft is about 0.6 s away
                if await first_draft():
                    break
                await asyncio.sleep(0.05)
            else:
                raise AssertionError("no draft within 10 s")
            # Another worker's read, as take_jobs makes it: a new delivery (read_ct) and a new attempt.
            admin.execute("update pgmq.q_assessment_submitted set read_ct = read_ct + 1, vt = now() "
                          "where message ->> 'assessment_id' = %s", (str(assessment_id),))
            admin.execute("update public.test_assessment set attempts = attempts + 1 where id = %s", (assessment_id,))
            [row] = await wait_for_status(database_url, [assessment_id], timeout=20)
    drafts = drafts_of(await topic_messages(database_url, assessment_id))
    first, retry = [d for d in drafts if d.attempt == 1], [d for d in drafts if d.attempt > 1]
    assert row["source"] == "ai" and first and retry
    assert len(first) < 6  # the first delivery's later drafts were fenced off
    assert drafts_counted("not_processing") > fenced_before
    assert sorted(d.index for d in retry if d.attempt == max(r.attempt for r in retry)) == list(range(6))
