"""worker.drafts.DraftSender's own rules, with a stand-in for the database call it makes (the SQL function
itself is tested against the real database: supabase/tests/database/610-drafts.test.sql,
tests/integration/test_streaming.py): what it sends, when, and that nothing goes out after close()."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any, cast

import psycopg
import pytest

from worker import drafts
from worker.db import Database, Message
from worker.drafts import DraftSender
from worker.metrics import REGISTRY

MESSAGE = Message(msg_id=1, read_ct=1, enqueued_at=datetime.now(UTC), body={})
REC = {"title": "Plan one step", "description": "Choose one small action a week.", "category": "Planning",
       "priority": 1, "rationale": "It rests on your first answer.", "based_on": ["q1", "elsewhere"]}


class Broadcasts:
    """Records each batch; `delay` makes a statement slow, `error` makes it fail."""

    def __init__(self, delay: float = 0.0, error: BaseException | None = None) -> None:
        self.batches: list[list[dict[str, Any]]] = []
        self.delay = delay
        self.error = error
        self.closed = False

    async def broadcast_drafts(self, message: Message, batch: list[dict[str, Any]]) -> int:
        assert not self.closed, "a draft was sent after close() returned"
        await asyncio.sleep(self.delay)
        if self.error:
            raise self.error
        self.batches.append(batch)
        return len(batch)


def sender(db: Broadcasts, timeout: float = 1.0) -> DraftSender:
    return DraftSender(cast(Database, db), MESSAGE, ("q1", "q2"), timeout=timeout)


def answer(count: int) -> list[str]:
    """An answer's text cut so that each recommendation is finished by its own piece."""
    text = json.dumps({"summary": "A summary of it all.", "recommendations": [REC | {"priority": 1 + i % 5}
                                                                                for i in range(count)]})
    cuts = [text.index("}", text.index('"based_on"', start)) + 1 for start in
            [m for m in range(len(text)) if text.startswith('{"title"', m)]]
    return [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]


def counted(outcome: str) -> float:
    return REGISTRY.get_sample_value("assessment_drafts_total", {"outcome": outcome}) or 0.0


async def test_drafts_go_out_checked_and_grounded_once_each_and_the_rest_at_close() -> None:
    db = Broadcasts()
    drafts_sender = sender(db)
    pieces = answer(3)
    for piece in pieces[:-2]:
        drafts_sender.feed(piece)
        await asyncio.sleep(drafts.SEND_DELAY_SECONDS * 2)  # a paced stream: each one goes out on its own
    drafts_sender.feed(pieces[-2])  # the last recommendation, then at once the end of the answer
    drafts_sender.feed(pieces[-1])
    await drafts_sender.close()
    db.closed = True
    sent = [draft for batch in db.batches for draft in batch]
    assert [d["index"] for d in sent] == [0, 1, 2]  # the last one too: the owner is watching them arrive
    assert sent[0]["recommendation"] == REC | {"based_on": ["q1"]}  # an id the assessment lacks: dropped
    assert drafts_sender.fed


async def test_an_answer_that_arrives_all_at_once_sends_nothing_and_close_does_not_wait() -> None:
    db = Broadcasts()
    drafts_sender = sender(db)
    superseded = counted("superseded")
    drafts_sender.feed("".join(answer(4)))
    started = asyncio.get_running_loop().time()
    await drafts_sender.close()
    db.closed = True
    assert asyncio.get_running_loop().time() - started < drafts.SEND_DELAY_SECONDS / 2
    await asyncio.sleep(drafts.SEND_DELAY_SECONDS * 2)
    assert db.batches == [] and counted("superseded") == superseded + 4


async def test_a_recommendation_that_breaks_the_rules_or_is_the_eleventh_is_not_sent() -> None:
    db = Broadcasts()
    drafts_sender = sender(db)
    invalid = counted("invalid")
    text = json.dumps({"summary": "s", "recommendations": [REC | {"priority": 9}] + [REC] * 11})
    drafts_sender.feed(text[:-2])
    await asyncio.sleep(drafts.SEND_DELAY_SECONDS * 2)
    await drafts_sender.close()
    assert [d["index"] for batch in db.batches for d in batch] == list(range(1, 10))
    assert counted("invalid") == invalid + 3  # priority 9, and the 11th and 12th


async def test_a_slow_database_holds_close_for_the_timeout_at_most_and_nothing_follows() -> None:
    db = Broadcasts(delay=5.0)
    drafts_sender = sender(db, timeout=0.2)
    failed = counted("failed")
    drafts_sender.feed(answer(2)[0] + answer(2)[1])
    await asyncio.sleep(drafts.SEND_DELAY_SECONDS * 2)  # the first batch is under way
    drafts_sender.feed(answer(2)[2])
    started = asyncio.get_running_loop().time()
    await drafts_sender.close()
    db.closed = True
    assert asyncio.get_running_loop().time() - started < 0.5
    assert counted("failed") >= failed + 1


async def test_close_cancelled_stops_the_sender_too() -> None:
    db = Broadcasts(delay=5.0)
    drafts_sender = sender(db, timeout=30)
    drafts_sender.feed("".join(answer(2)[:2]))
    await asyncio.sleep(drafts.SEND_DELAY_SECONDS * 2)
    closing = asyncio.create_task(drafts_sender.close())
    await asyncio.sleep(0.05)
    closing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await closing
    db.closed = True
    # No task of the sender is left to send later (its statement would take 5 s).
    assert not [task for task in asyncio.all_tasks() if "_send_all" in repr(task.get_coro())]


@pytest.mark.parametrize(("error", "kind"), [
    (psycopg.errors.InsufficientPrivilege("permission denied for function broadcast_recommendation_drafts"),
     "permanent"),
    (psycopg.errors.DeadlockDetected("deadlock"), "transient"),
])
async def test_a_database_error_drops_the_batch_counts_it_and_the_job_goes_on(
    error: BaseException, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    db = Broadcasts(error=error)
    drafts_sender = sender(db)
    before = REGISTRY.get_sample_value("assessment_database_errors_total", {"operation": "drafts", "kind": kind}) or 0
    drafts_sender.feed("".join(answer(2)[:2]))
    await asyncio.sleep(drafts.SEND_DELAY_SECONDS * 3)
    await drafts_sender.close()
    after = REGISTRY.get_sample_value("assessment_database_errors_total", {"operation": "drafts", "kind": kind})
    assert after == before + 1
    # A missing grant turns every draft off: it is logged; a transient error only counted.
    assert any("could not send drafts" in r.getMessage() for r in caplog.records if r.levelname != "DEBUG") == (
        kind == "permanent")
