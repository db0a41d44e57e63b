"""Versioned events: what the database puts on the queue and what it broadcasts to the owner.

The one source of the event contract. `assessment_submitted` is sent by the enqueue trigger to pgmq
queue `assessment_submitted`. The status events are broadcast by the database (Realtime Broadcast) to
the private topics `assessment:<id>` and `user:<user_id>`; the Broadcast event name is the `type`.
`recommendation_streamed` (a draft: one recommendation the model has finished writing, before the commit)
goes to `assessment:<id>` only, through private.broadcast_recommendation_drafts (worker/drafts.py).
`scripts/gen-contract` writes their JSON Schemas into docs/events.md and their TypeScript types into
docs/frontend.md (tests/unit/test_contract.py fails when those drift); tests/integration/test_events.py
checks that the SQL that produces them produces exactly this.

SQL checks the form of `assessment_submitted` once more where it reads the queue (worker/sql/queries.sql:
take_jobs, by regex: the type, version, canonical ids, an ISO 8601 time, five keys) so that nothing but an
event can start an assessment in that statement; it is a guard, not a second contract. The worker
validates every message against the model below, and one that passes the guard but not the model is
dead-lettered.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal, get_args
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from worker.models import Recommendation

StatusEventType = Literal["assessment_processing", "recommendation_completed", "assessment_failed"]
STATUS_EVENT_TYPES: tuple[str, ...] = get_args(StatusEventType)


class AssessmentSubmitted(BaseModel):
    """A job: the assessment was inserted and committed. Sent once per insert, in its transaction."""

    model_config = ConfigDict(frozen=True, extra="forbid", title="assessment_submitted")

    type: Literal["assessment_submitted"]
    version: Literal[1] = Field(description="Contract version; a consumer rejects versions it does not know.")
    assessment_id: UUID = Field(description="public.test_assessment.id")
    user_id: UUID = Field(description="The owner (auth.users.id).")
    submitted_at: datetime = Field(description="test_assessment.created_at.")


class AssessmentStatusChanged(BaseModel):
    """The owner's view of a status transition; `recommendation_completed` carries the result id."""

    model_config = ConfigDict(frozen=True, extra="forbid", title="assessment_status_changed")

    type: StatusEventType = Field(description="Also the Broadcast event name.")
    version: Literal[1] = Field(description="Contract version; a consumer rejects versions it does not know.")
    assessment_id: UUID = Field(description="public.test_assessment.id")
    user_id: UUID = Field(description="The owner (auth.users.id).")
    status: Literal["processing", "completed", "failed"] = Field(description="The status the assessment moved to.")
    attempts: int = Field(description="How many times the worker has started on it (a retry sends processing again).")
    source: Literal["ai", "fallback", "cache"] | None = Field(
        description="Where the recommendations came from; set on recommendation_completed.")
    result_id: UUID | None = Field(description="public.result_test.id; set on recommendation_completed.")
    created_at: datetime = Field(description="When the assessment was submitted.")
    started_at: datetime | None = Field(description="When the worker last started on it.")
    completed_at: datetime | None = Field(description="When it reached completed or failed.")
    occurred_at: datetime = Field(description="When the transition happened (the time of its transaction).")


class RecommendationStreamed(BaseModel):
    """A draft: one recommendation the model has finished writing and that passed its schema, sent before the
    result is committed. The committed row stays the one truth: `recommendation_completed` supersedes every
    draft of the assessment, and a draft of an older `attempt` is stale."""

    model_config = ConfigDict(frozen=True, extra="forbid", title="recommendation_streamed")

    type: Literal["recommendation_streamed"] = Field(description="Also the Broadcast event name.")
    version: Literal[1] = Field(description="Contract version; a consumer rejects versions it does not know.")
    assessment_id: UUID = Field(description="public.test_assessment.id")
    user_id: UUID = Field(description="The owner (auth.users.id).")
    attempt: int = Field(description="The assessment's attempt (test_assessment.attempts) this draft belongs to; "
                                     "drop drafts of a lower attempt.")
    index: int = Field(description="0-based position of the recommendation in the model's answer (the stored "
                                   "result is sorted by priority, so its order may differ).")
    recommendation: Recommendation = Field(description="The same shape as an element of "
                                                       "result_test.recommendations.")
    occurred_at: datetime = Field(description="When it was sent (the time of its transaction).")
