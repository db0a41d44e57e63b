"""A hostile or broken AI, performed with a real HTTP server: whatever it sends, the Recommender returns
storable recommendations or a classified AiUnavailable, and the worker completes the job without asking
the AI twice or letting its text reach what users read."""

from __future__ import annotations

import gzip
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import psycopg
import pytest

from devkit.fake_openai import FakeOpenAI, completion, ok, raw
from devkit.samples import answers, submit
from devkit.users import create_user
from tests.factories import assessment
from tests.worker_support import fetch, recommender_for, running_worker, settings_for, wait_for_status
from worker import ai_answer
from worker.ai import Recommender
from worker.ai_answer import MAX_MODEL_CHARS
from worker.ai_stream import MAX_RESPONSE_BYTES
from worker.exceptions import AiUnavailable
from worker.metrics import REGISTRY
from worker.prompt import build_prompt

PROMPT = build_prompt(assessment())


def recommendations(**changes: Any) -> dict[str, Any]:
    item = {"title": "Plan one step", "description": "Choose one small action each week.", "category": "Planning",
            "priority": 1, "rationale": "You said you want to change something."}
    return {"summary": "A short summary of the answers given.", "recommendations": [item | changes]}


@pytest.fixture
async def recommender(fake: FakeOpenAI) -> AsyncIterator[Recommender]:
    made = Recommender(api_key="k", base_url=fake.base_url, model="fake-model", deadline_seconds=5)
    yield made
    await made.aclose()


async def test_nul_and_unpaired_surrogates_in_the_content_are_made_storable(
    fake: FakeOpenAI, recommender: Recommender
) -> None:
    content = json.dumps(recommendations(title="Plan\u0000 one \ud800step\u001b[31m"))
    fake.script(completion(content))
    result = await recommender.recommend(PROMPT)
    title = result.recommendations.recommendations[0].title
    assert title == "Plan one \ufffdstep[31m"
    title.encode("utf-8")  # storable: no unpaired surrogate left
    assert len(fake.requests) == 1


async def test_a_hostile_model_name_is_cleaned_and_bounded(fake: FakeOpenAI, recommender: Recommender) -> None:
    fake.script(completion(model="gpt\u0000-evil" + "x" * 5000))
    result = await recommender.recommend(PROMPT)
    assert "\u0000" not in result.model and len(result.model) <= MAX_MODEL_CHARS
    fake.script(completion(model=["not", "text"]))
    assert (await recommender.recommend(PROMPT)).model == "fake-model"  # the configured one instead


@pytest.mark.parametrize("usage", [
    {"prompt_tokens": 2**40, "completion_tokens": -5},
    {"prompt_tokens": "12", "completion_tokens": True},
    {"prompt_tokens": 1.5, "completion_tokens": None},
    "lots",
])
async def test_usage_outside_the_columns_range_is_dropped_not_raised(
    fake: FakeOpenAI, recommender: Recommender, usage: Any
) -> None:
    labels = {"model": "fake-model", "kind": "completion"}
    before = REGISTRY.get_sample_value("assessment_ai_tokens_total", labels) or 0.0
    fake.script(completion(usage=usage))
    result = await recommender.recommend(PROMPT)
    assert (result.prompt_tokens, result.completion_tokens) == (None, None)
    assert (REGISTRY.get_sample_value("assessment_ai_tokens_total", labels) or 0.0) == before


@pytest.mark.parametrize(("answer", "reason"), [
    (raw(b"<html>502 Bad Gateway</html>"), "invalid_output"),
    (raw(b"[1, 2, 3]"), "invalid_output"),
    (raw(b'{"choices": "none"}'), "invalid_output"),
    (raw(b'{"choices": [{"message": "hi"}]}'), "invalid_output"),
    (raw(b"x" * (MAX_RESPONSE_BYTES + 1)), "invalid_output"),
    (completion(json.dumps(recommendations(title="x" * 5000))), "invalid_output"),
    (completion(json.dumps(recommendations(priority=2**40))), "invalid_output"),
    (completion(json.dumps(recommendations(html="<script>alert(1)</script>"))), "invalid_output"),
    (completion("\u0000"), "invalid_json"),
    (raw(b"[" * 5000), "invalid_output"),  # nested deeper than json can follow
    (completion('{"summary": ' + "[" * 3000 + "]" * 3000 + "}"), "invalid_json"),
    (raw(gzip.compress(b"{}" * 100_000), Content_Encoding="gzip"), "invalid_output"),  # refused, not inflated
])
async def test_answers_that_are_not_recommendations_are_classified(
    fake: FakeOpenAI, recommender: Recommender, answer: Any, reason: str
) -> None:
    fake.default = answer
    with pytest.raises(AiUnavailable) as failure:
        await recommender.recommend(PROMPT)
    assert failure.value.reason == reason
    assert len(fake.requests) == 2  # output problems get exactly one more try


async def test_a_response_is_not_read_past_the_bound(fake: FakeOpenAI, recommender: Recommender) -> None:
    """A 20 MB body ends the attempt once the bound is passed (the fake's body is sent in full)."""
    fake.script(raw(b" " * (20 * 1024 * 1024)), ok())
    result = await recommender.recommend(PROMPT)
    assert result.tries == 2


# ----------------------------------------------------------------------------- the worker


pytestmark_worker = pytest.mark.usefixtures("empty_queues")


@pytestmark_worker
async def test_worker_stores_hostile_but_valid_ai_output_after_one_call(
    admin: psycopg.Connection, database_url: str, fake: FakeOpenAI
) -> None:
    fake.default = completion(json.dumps(recommendations(title="Plan\u0000 one step")),
                              model="m\u0000" + "x" * 500, usage={"prompt_tokens": 2**40, "completion_tokens": -1})
    [assessment_id] = submit(admin, create_user(admin), [{"assessment_type": "career", "answers": answers(801)}])
    settings = settings_for(database_url, cache_ttl_seconds=0)
    async with running_worker(settings, recommender_for(settings, fake.base_url)):
        [row] = await wait_for_status(database_url, [assessment_id])
    assert (row["source"], row["attempts"], row["last_error"]) == ("ai", 1, None)
    [result] = await fetch(database_url, "select recommendations, model, prompt_tokens from public.result_test "
                           "where assessment_id = %s", (assessment_id,))
    assert result["recommendations"][0]["title"] == "Plan one step"
    assert len(result["model"]) <= MAX_MODEL_CHARS and result["prompt_tokens"] is None
    assert len(fake.requests) == 1


@pytestmark_worker
async def test_worker_falls_back_in_the_same_attempt_when_the_database_refuses_ai_output(
    admin: psycopg.Connection, database_url: str, fake: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Defence in depth: were the cleaning ever to miss something, the AI is not called again and the
    owner still gets recommendations now."""
    monkeypatch.setattr(ai_answer, "storable", lambda value: value)  # as if the cleaning had a bug
    fake.default = completion(json.dumps(recommendations(title="Plan\u0000 one step")))
    [assessment_id] = submit(admin, create_user(admin), [{"assessment_type": "career", "answers": answers(802)}])
    settings = settings_for(database_url, cache_ttl_seconds=0)
    async with running_worker(settings, recommender_for(settings, fake.base_url)):
        [row] = await wait_for_status(database_url, [assessment_id])
    assert (row["source"], row["fallback_reason"], row["attempts"], row["last_error"]) == (
        "fallback", "unstorable_output", 1, None)
    assert len(fake.requests) == 1


@pytestmark_worker
async def test_worker_broadcasts_and_last_error_carry_no_ai_or_internal_text(
    admin: psycopg.Connection, database_url: str, fake: FakeOpenAI
) -> None:
    secret = f"internal {uuid.uuid4()}"
    answer = recommendations(title=secret)
    answer["recommendations"].append(answer["recommendations"][0] | {"title": "Review every month"})
    fake.default = completion(json.dumps(answer))
    fake.chars_per_second = 1000  # a paced stream, so drafts go out (an answer all at once sends none)
    user = create_user(admin)
    [assessment_id] = submit(admin, user, [{"assessment_type": "career", "answers": answers(803)}])
    settings = settings_for(database_url, cache_ttl_seconds=0)
    async with running_worker(settings, recommender_for(settings, fake.base_url)):
        await wait_for_status(database_url, [assessment_id])
    payloads = await fetch(database_url, "select event, payload::text as text, (payload - 'recommendation')::text "
                           "as envelope from realtime.messages where topic = %s", (f"assessment:{assessment_id}",))
    statuses = [p for p in payloads if p["event"] != "recommendation_streamed"]
    assert statuses and not [p for p in statuses if secret in p["text"]]
    # A draft carries the AI's text only as the recommendation itself, the one the owner reads in the result.
    drafts = [p for p in payloads if p["event"] == "recommendation_streamed"]
    assert drafts and not [p for p in drafts if secret in p["envelope"]]
