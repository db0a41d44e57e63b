"""Versioned events: what the database puts on the queue and what it broadcasts to the owner.

`assessment_submitted` is sent by the enqueue trigger to pgmq queue `assessment_submitted`.
The status events are broadcast by the database (Realtime Broadcast) to the private topics
`assessment:<id>` and `user:<user_id>`; the Broadcast event name is the `type`.
Their JSON Schemas are in docs/events.md (a test keeps them equal).
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict


class AssessmentSubmitted(BaseModel):
    """A job: the assessment was inserted and committed. Sent once per insert, in its transaction."""

    model_config = ConfigDict(frozen=True, extra="forbid", title="assessment_submitted")

    type: Literal["assessment_submitted"]
    version: Literal[1]
    assessment_id: UUID
    user_id: UUID
    submitted_at: datetime


class AssessmentStatusChanged(BaseModel):
    """The owner's view of a status transition; `recommendation_completed` carries the result id."""

    model_config = ConfigDict(frozen=True, extra="forbid", title="assessment_status_changed")

    type: Literal["assessment_processing", "recommendation_completed", "assessment_failed"]
    version: Literal[1]
    assessment_id: UUID
    user_id: UUID
    status: Literal["processing", "completed", "failed"]
    attempts: int
    source: Literal["ai", "fallback", "cache"] | None
    result_id: UUID | None
    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    occurred_at: datetime
