"""Two worker processes share one provider account (decision 0013): a burst paced to the provider's limit
completes through the AI, a 429 stops every replica, budgets hold when both race for them, a killed
worker's reservation lapses with its lease, and bad limits are refused at start."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import psycopg
import pytest

from devkit import REPO
from devkit.fake_openai import delay
from devkit.localdb import worker_url
from devkit.processes import FakeAiProcess, WorkerProcess, wait_until
from devkit.samples import answers, submit
from devkit.users import create_user
from tests.reliability.threaded_ai import threaded_fake_ai
from tests.worker_support import fetch, wait_for_status, worker_process
from worker.ai import Caller, Recommender
from worker.models import Assessment
from worker.prompt import build_prompt

pytestmark = pytest.mark.usefixtures("empty_queues")


@pytest.fixture
def fresh_project_day(admin: psycopg.Connection) -> None:
    """The project's budget counts the whole UTC day; other tests' calls today must not count here."""
    admin.execute("delete from private.ai_project_usage where day = (now() at time zone 'UTC')::date")


def start(workers: list[WorkerProcess], count: int, database_url: str, ai_url: str, log_dir: Path,
          env: dict[str, str]) -> None:
    workers += [worker_process(database_url, ai_url, log_dir, env) for _ in range(count)]
    for worker in workers[-count:]:
        worker.wait_ready()


def careers(seed: int, count: int) -> list[dict[str, object]]:
    return [{"assessment_type": "career", "answers": answers(seed + i)} for i in range(count)]


def worst_case_tokens(seed: int, max_completion_tokens: int = 500) -> int:
    """What the worker reserves for one of careers(seed, 1) (its request's bytes plus the completion cap),
    asked of the worker's own code, so the budgets below stay in proportion when the prompt changes."""
    recommender = Recommender(api_key="k", base_url=None, model="gpt-4o-mini",
                              max_completion_tokens=max_completion_tokens)
    assessment = Assessment.model_validate({
        "id": uuid.uuid4(), "user_id": uuid.uuid4(), "assessment_type": "career", "answers": answers(seed),
        "status": "processing", "attempts": 1, "created_at": "2026-12-08T00:00:00+00:00"})
    body = recommender.request_body(build_prompt(assessment), Caller(assessment.user_id))
    return recommender.estimate(body).tokens


def burst(admin: psycopg.Connection, users: int, per_user: int, seed: int) -> list[uuid.UUID]:
    ids: list[uuid.UUID] = []
    for _ in range(users):
        ids += submit(admin, create_user(admin), careers(seed + len(ids), per_user))
    return ids


async def test_a_burst_paced_to_the_providers_limit_completes_through_the_ai(
    admin: psycopg.Connection, database_url: str, workers: list[WorkerProcess], tmp_path: Path
) -> None:
    """Ten times the per-second limit at once: without a shared limit the 32 calls in flight would
    meet 429s and fall back (docs/performance.md, provider_limit); paced, every one gets the AI."""
    ai = FakeAiProcess(latency=0.05, requests_per_minute=600)  # 10 a second, 429 beyond
    try:
        start(workers, 2, database_url, ai.url, tmp_path, {"AI_REQUESTS_PER_MINUTE": "600"})
        ids = burst(admin, users=50, per_user=2, seed=70_000)
        rows = await wait_for_status(database_url, ids, timeout=60)
        stats = ai.stats()
    finally:
        ai.stop()
    assert Counter((row["source"], row["fallback_reason"]) for row in rows) == {("ai", None): 100}
    assert stats["completed"] == 100 and stats["rate_limited"] <= 2  # at most 2% refused
    seconds = stats["last_completed_at"] - stats["first_completed_at"]
    assert seconds >= 99 / 10 * 0.9  # paced at the limit, not faster
    assert all("job completed" in worker.log() for worker in workers)  # both replicas shared the work


async def test_a_429_stops_every_replica_for_the_time_it_names(
    admin: psycopg.Connection, database_url: str, workers: list[WorkerProcess], tmp_path: Path
) -> None:
    with threaded_fake_ai(latency=0.2) as ai:  # 8 calls in flight at 0.2 s: 100 jobs last over 2 s
        start(workers, 2, database_url, ai.base_url, tmp_path, {"WORKER_CONCURRENCY": "4"})
        ids = burst(admin, users=50, per_user=2, seed=71_000)
        assert wait_until(lambda: ai.served() >= 8, timeout=30)
        limited = ai.burst_429(1, retry_after=2).first
        rows = await wait_for_status(database_url, ids, timeout=60)
        arrivals = [request.at for request in ai.server.requests]
    assert all(row["source"] == "ai" for row in rows)  # retried after the pause, within the deadline
    paused_at = arrivals[limited]
    # Calls admitted before the pause was recorded may still land in the first moments; then nothing,
    # from either worker, until the provider's 2 seconds are over.
    during = [at - paused_at for at in arrivals if paused_at + 0.25 < at < paused_at + 1.9]
    assert during == [], f"requests during the provider's pause, seconds after the 429: {during}"
    assert sum(1 for at in arrivals if at >= paused_at + 1.9) >= 50  # most of the work came after it


async def test_two_workers_racing_one_users_budget_never_spend_more_than_it(
    admin: psycopg.Connection, database_url: str, workers: list[WorkerProcess], tmp_path: Path
) -> None:
    """Each call reserves its worst case (its request's bytes plus 500 completion tokens) and uses about a
    quarter of it: two never fit in flight at once, and the budget runs out after a few calls."""
    budget = 2 * worst_case_tokens(72_000) - 1
    with threaded_fake_ai(latency=0.3) as ai:
        start(workers, 2, database_url, ai.base_url, tmp_path, {
            "WORKER_CONCURRENCY": "2", "AI_MAX_COMPLETION_TOKENS": "500", "AI_USER_DAILY_TOKENS": str(budget)})
        spender, bystander = create_user(admin), create_user(admin)
        spent = submit(admin, spender, careers(72_000, 8))
        spared = submit(admin, bystander, careers(72_100, 2))
        rows = {row["id"]: row for row in await wait_for_status(database_url, spent + spared, timeout=60)}
    [usage] = await fetch(database_url, "select tokens, token_limit from public.ai_usage where user_id = %s "
                          "and day = (now() at time zone 'UTC')::date", (spender,))
    reasons = Counter(rows[i]["fallback_reason"] for i in spent)
    assert usage["token_limit"] == budget and usage["tokens"] <= budget
    assert reasons[None] >= 3 and reasons["user_budget_exhausted"] >= 1 and set(reasons) <= {
        None, "user_budget_exhausted"}, reasons
    assert all(rows[i]["source"] == "ai" for i in spared)  # another user is not affected
    assert all("job completed" in worker.log() for worker in workers)


@pytest.mark.usefixtures("fresh_project_day")
async def test_two_workers_racing_the_projects_budget_never_spend_more_than_it(
    admin: psycopg.Connection, database_url: str, workers: list[WorkerProcess], tmp_path: Path
) -> None:
    """Priced at $1 per 1,000 tokens, a call reserves its worst case in dollars and costs about a quarter."""
    budget = round(2 * worst_case_tokens(73_000) / 1000 - 0.001, 3)
    with threaded_fake_ai(latency=0.3) as ai:
        start(workers, 2, database_url, ai.base_url, tmp_path, {
            "WORKER_CONCURRENCY": "3", "AI_MAX_COMPLETION_TOKENS": "500", "AI_DAILY_BUDGET_USD": str(budget),
            "AI_PRICE_PROMPT_PER_1K_TOKENS_USD": "1", "AI_PRICE_COMPLETION_PER_1K_TOKENS_USD": "1"})
        ids = burst(admin, users=10, per_user=1, seed=73_000)
        rows = await wait_for_status(database_url, ids, timeout=60)
    [spend] = await fetch(database_url, "select cost_usd, budget_usd from private.ai_project_usage "
                          "where day = (now() at time zone 'UTC')::date")
    reasons = Counter(row["fallback_reason"] for row in rows)
    assert float(spend["budget_usd"]) == budget and float(spend["cost_usd"]) <= budget
    assert reasons[None] >= 3 and reasons["daily_budget_exhausted"] >= 1 and set(reasons) <= {
        None, "daily_budget_exhausted"}, reasons


async def test_a_killed_workers_reservation_lapses_within_a_lease(
    admin: psycopg.Connection, database_url: str, workers: list[WorkerProcess], tmp_path: Path
) -> None:
    """The user's budget fits one call in flight. The first worker dies mid-call; the second's call for
    the same user is held by that reservation only until the dead worker's lease (3 s) runs out."""
    budget = worst_case_tokens(74_000) * 3 // 2  # one call in flight at a time, and room for both to finish
    env = {"WORKER_CONCURRENCY": "1", "AI_MAX_COMPLETION_TOKENS": "500", "AI_USER_DAILY_TOKENS": str(budget)}
    user = create_user(admin)
    with threaded_fake_ai() as ai:
        ai.script(delay(60))  # the first call hangs
        start(workers, 1, database_url, ai.base_url, tmp_path, env)
        [first] = submit(admin, user, [{"assessment_type": "career", "answers": answers(74_000)}])
        assert wait_until(lambda: ai.served() == 1, timeout=20)
        workers[0].kill()
        killed_at = time.monotonic()
        [second] = submit(admin, user, [{"assessment_type": "career", "answers": answers(74_001)}])
        start(workers, 1, database_url, ai.base_url, tmp_path, env)
        assert wait_until(lambda: ai.served() >= 2, timeout=20)
        held = ai.server.requests[1].at - killed_at
        rows = await wait_for_status(database_url, [first, second], timeout=30)
    assert 1.0 <= held <= 3 + 2.0, f"the second call started {held:.1f}s after the kill"
    assert all(row["source"] == "ai" and row["results"] == 1 for row in rows)


@pytest.mark.parametrize(("variable", "value"), [("AI_REQUESTS_PER_MINUTE", "0"), ("AI_DAILY_BUDGET_USD", "-1"),
                                                 ("AI_USER_DAILY_TOKENS", "lots")])
def test_a_limit_that_is_not_a_positive_number_stops_the_worker_at_start(
    database_url: str, variable: str, value: str
) -> None:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "DATABASE_URL": worker_url(database_url), variable: value}
    result = subprocess.run([sys.executable, "-m", "worker", "run"], cwd=REPO, env=env, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 2
    assert f"{variable}={value!r} is invalid" in result.stderr
