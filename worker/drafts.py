"""The owner's drafts: each recommendation of a streamed answer, sent the moment the model has finished
writing it and it passed its rules, before the result is committed (issue 19, decision 0015).

Contract: a `DraftSender` serves one job attempt. The AI client feeds it the answer's content as it streams
in (`feed`, never blocking, never raising); it finds each finished element of `recommendations`
(worker/stream_parse.py), checks it exactly as the final answer's elements are checked (storable text,
worker.models.Recommendation, based_on grounded in the assessment), and a background task sends what has
accumulated, SEND_DELAY_SECONDS after the first of it, through the database
(private.broadcast_recommendation_drafts: recommendation_streamed on assessment:<id>, fenced by the job's
lease), one short statement per batch. `close()` comes once the answer is complete, before the commit: if
drafts have been sent, the rest go out too (the owner is watching them arrive, the last one included);
if none has, the answer came all at once and they are dropped (the result that supersedes them is
milliseconds away: they would cost a statement and a Realtime message each for nothing). What is being
sent gets up to `timeout` seconds, and nothing is sent after `close()` returns.

Drafts are hints: one that the database does not take in time is dropped (counted, logged at debug), never
retried, and never holds up the job. Each index is sent at most once.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Collection
from typing import Any

from pydantic import ValidationError

from worker.answer_schema import ground_recommendation
from worker.db import Database, Message
from worker.db_errors import classify, report
from worker.metrics import DATABASE_ERRORS, DRAFTS
from worker.models import MAX_RECOMMENDATIONS, Recommendation
from worker.sanitize import storable
from worker.stream_parse import RecommendationScanner

log = logging.getLogger(__name__)

# What a batch under way when the answer is complete may take before the commit goes ahead without it.
CLOSE_TIMEOUT_SECONDS = 1.0
# A draft waits this long before it is sent, with whatever else the model finishes meanwhile: far below what
# a reader notices, and an answer that arrives all at once (a fast provider) is complete before any draft
# goes out, so it costs no statement and no Realtime message.
SEND_DELAY_SECONDS = 0.05


def checked_draft(element: str, citable: Collection[str]) -> dict[str, Any] | None:
    """`element` (one recommendation's JSON) as the final answer would store it, or None if it breaks the rules."""
    try:
        recommendation = Recommendation.model_validate(storable(json.loads(element)))
    except (ValueError, RecursionError, ValidationError):  # ValidationError is a ValueError; named for the reader
        return None
    return ground_recommendation(recommendation, citable).model_dump(mode="json")


class DraftSender:
    """Finds, checks and sends one job attempt's drafts (module docstring)."""

    def __init__(self, db: Database, message: Message, citable: Collection[str],
                 timeout: float = CLOSE_TIMEOUT_SECONDS) -> None:
        self._db = db
        self._message = message
        self._citable = citable
        self._timeout = timeout
        self._scanner = RecommendationScanner()
        self._next_index = 0
        self._unsent: list[dict[str, Any]] = []
        self._ready = asyncio.Event()
        self._sender: asyncio.Task[None] | None = None
        self._closed = False
        self._sent_any = False
        self.fed = False  # a later try of the same call must not feed it again (worker/ai.py)

    def feed(self, content: str) -> None:
        """The next piece of the streamed answer's content."""
        self.fed = True
        if self._closed:
            return
        for element in self._scanner.feed(content):
            index, self._next_index = self._next_index, self._next_index + 1
            # An answer holds at most MAX_RECOMMENDATIONS: one beyond that breaks the rules whatever it says.
            draft = checked_draft(element, self._citable) if index < MAX_RECOMMENDATIONS else None
            if draft is None:
                DRAFTS.labels("invalid").inc()
                continue
            self._unsent.append({"index": index, "recommendation": draft})
            if self._sender is None:
                self._sender = asyncio.create_task(self._send_all())
            self._ready.set()

    async def close(self) -> None:
        """Send the rest (or drop it if nothing was sent yet) within the timeout, then stop; nothing is sent
        after this returns, also when it is cancelled (a shutdown drops what is left)."""
        self._closed = True
        sender = self._sender
        if sender is None:
            return
        try:
            if not self._sent_any:  # the sender has only waited so far: nothing to wait for
                self._drop("superseded")
            else:
                self._ready.set()
                await asyncio.wait([sender], timeout=self._timeout)
        finally:
            if not sender.done():
                sender.cancel()
                await asyncio.gather(sender, return_exceptions=True)

    def _drop(self, outcome: str) -> None:
        DRAFTS.labels(outcome).inc(len(self._unsent))
        self._unsent = []

    async def _send_all(self) -> None:
        while True:
            await self._ready.wait()
            if not self._closed:
                await asyncio.sleep(SEND_DELAY_SECONDS)
            self._ready.clear()
            batch, self._unsent = self._unsent, []
            if batch:
                self._sent_any = True
                await self._send(batch)
            if self._closed and not self._unsent:
                return

    async def _send(self, batch: list[dict[str, Any]]) -> None:
        try:
            sent = await self._db.broadcast_drafts(self._message, batch)
        except asyncio.CancelledError:
            DRAFTS.labels("failed").inc(len(batch))  # not taken within the timeout
            self._drop("failed")
            raise
        except Exception as exc:  # a draft is a hint: the job goes on, the committed row tells the owner
            DRAFTS.labels("failed").inc(len(batch))
            consequence = "could not send drafts; the committed result will tell the owner"
            if classify(exc) == "transient":  # counted; one per job at most, so not worth a warning each
                DATABASE_ERRORS.labels("drafts", "transient").inc()
                log.debug(consequence, extra={"error": type(exc).__name__})
            else:  # a missing grant or migration turns every draft off: say so
                report("drafts", exc, consequence)
            return
        DRAFTS.labels("sent").inc(sent)
        DRAFTS.labels("not_processing").inc(len(batch) - sent)
