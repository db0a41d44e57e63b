"""A demo user's view of the product: submit as the user, follow the private topic user:<uid> (status
changes) and the topic assessment:<id> of each assessment it is waiting for (drafts).

Every read here runs as the user (devkit.postgrest.acting_as), so RLS decides what is seen, exactly as
for a supabase-js client; reading the topic's rows of realtime.messages with realtime.topic set is what
Realtime checks when the user joins the private channel. One query per topic.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from devkit.clients.output import format_api_error, load_assessment
from devkit.postgrest import acting_as, api_error

# Messages are read from a little before the newest one seen: a transaction that committed late may
# carry an older inserted_at (it is the transaction's start time). Ids already printed are skipped.
OVERLAP = dt.timedelta(seconds=30)


class Refused(Exception):
    """The database refused the user's request, as PostgREST would report it (code, message, details, hint)."""


@dataclass
class Topic:
    """A private topic being followed: `cursor` is the newest realtime.messages.inserted_at seen on it."""

    name: str
    cursor: dt.datetime | None = None
    seen: set[str] = field(default_factory=set)


@dataclass
class User:
    name: str
    email: str
    id: uuid.UUID
    conn: psycopg.Connection[Any]  # logged in as authenticator, as PostgREST is
    inbox: Topic = field(init=False)  # user:<uid>: the status changes of all the user's assessments
    drafts: dict[str, Topic] = field(default_factory=dict)  # assessment id -> assessment:<id>, while followed

    def __post_init__(self) -> None:
        self.inbox = Topic(f"user:{self.id}")

    @property
    def topic(self) -> str:
        return self.inbox.name

    def skip_history(self) -> None:
        """Follow from now on: messages of earlier runs (also inside the overlap window) are history."""
        with acting_as(self.conn, self.id, topic=self.topic) as cur:
            cur.execute("select max(inserted_at) as newest from realtime.messages where topic = %s", (self.topic,))
            row = cur.fetchone()
        self.inbox.cursor = row["newest"] if row else None
        self.new_messages()

    def new_messages(self) -> list[dict[str, Any]]:
        """New messages on user:<uid> (the status events)."""
        return self._read(self.inbox)

    def follow_drafts(self, assessment_id: str) -> None:
        """Also read assessment:<id> (a new assessment: no history to skip) until `unfollow_drafts`."""
        self.drafts.setdefault(assessment_id, Topic(f"assessment:{assessment_id}"))

    def unfollow_drafts(self, assessment_id: str) -> None:
        self.drafts.pop(assessment_id, None)

    def new_drafts(self) -> list[dict[str, Any]]:
        """New recommendation_streamed messages on the followed assessment:<id> topics. The status events
        there are the ones user:<uid> carries too, so they are left out."""
        return [row for topic in list(self.drafts.values()) for row in self._read(topic, "recommendation_streamed")]

    def _read(self, topic: Topic, event: str | None = None) -> list[dict[str, Any]]:
        since = (topic.cursor - OVERLAP) if topic.cursor else dt.datetime.min
        with acting_as(self.conn, self.id, topic=topic.name) as cur:
            cur.execute(
                "select id, inserted_at, event, payload from realtime.messages "
                "where topic = %s and extension = 'broadcast' and inserted_at > %s "
                "and (%s::text is null or event = %s) order by inserted_at, id",
                (topic.name, since, event, event),
            )
            rows = [row for row in cur.fetchall() if str(row["id"]) not in topic.seen]
        for row in rows:
            topic.seen.add(str(row["id"]))
            topic.cursor = max(topic.cursor or row["inserted_at"], row["inserted_at"])
        return rows

    def submit(self, path: Path) -> tuple[uuid.UUID, str, dt.datetime]:
        """Insert the assessment in `path` as the user, with a fresh client_request_id; Refused if refused."""
        body = load_assessment(path.read_text(), str(path))
        context = body.get("context")
        with acting_as(self.conn, self.id, commit=True) as cur:
            try:
                cur.execute(
                    "insert into public.test_assessment (assessment_type, answers, context, client_request_id) "
                    "values (%s, %s, %s, %s) returning id, assessment_type, created_at",
                    (body.get("assessment_type"), Jsonb(body.get("answers")),
                     None if context is None else Jsonb(context), uuid.uuid4()),
                )
            except psycopg.Error as exc:
                # Read the error's fields now: closing the cursor releases the result that holds them.
                raise Refused(format_api_error(api_error(exc))) from exc
            row = cur.fetchone()
        assert row is not None
        return row["id"], row["assessment_type"], row["created_at"]

    def read(self, query: str, assessment_id: str) -> dict[str, Any] | None:
        with acting_as(self.conn, self.id) as cur:
            cur.execute(query, (assessment_id,))
            return cur.fetchone()

    def result(self, assessment_id: str) -> dict[str, Any] | None:
        return self.read("select * from public.result_test where assessment_id = %s", assessment_id)

    def last_error(self, assessment_id: str) -> str:
        row = self.read("select last_error from public.test_assessment where id = %s", assessment_id)
        return str((row or {}).get("last_error") or "no reason recorded")

    def assessment_type(self, assessment_id: str) -> str:
        row = self.read("select assessment_type from public.test_assessment where id::text = %s", assessment_id)
        return str(row["assessment_type"]) if row else ""
