"""What `make run` prints: one line per status change and per draft, and each result as its owner would read it."""

from __future__ import annotations

import datetime as dt
import os
import sys
import textwrap
from contextlib import suppress
from typing import Any

from devkit.clients.output import describe_event, format_result, parse_event
from worker.events import RecommendationStreamed

TITLE_WIDTH = 60


def say(message: str = "") -> None:
    try:
        print(message, flush=True)
    except BrokenPipeError:
        # The reader went away (`make run | head`): go on silently, so the clean-up still runs.
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115  (lives until the process exits)


def clock(at: object = None) -> str:
    """Local wall-clock time of `at` (a datetime or ISO text from an event), or of now."""
    when = dt.datetime.now().astimezone()
    if isinstance(at, dt.datetime):
        when = at
    elif isinstance(at, str):
        with suppress(ValueError):
            when = dt.datetime.fromisoformat(at)
    return when.astimezone().strftime("%H:%M:%S.%f")[:-3]


def wrap(text: str, width: int = 100) -> str:
    """Wrap long lines at `width`, continuing each under its own indentation (numbered items: their text)."""
    lines = []
    for line in text.splitlines():
        body = line.lstrip(" ")
        indent = " " * (len(line) - len(body))
        number = body.split(" ", 1)[0]
        hanging = indent + " " * (len(number) + 1) if number.endswith(".") and number[:-1].isdigit() else indent
        lines.append(textwrap.fill(body, width, initial_indent=indent, subsequent_indent=hanging,
                                   break_long_words=False, break_on_hyphens=False) if body else "")
    return "\n".join(lines)


def status_line(name: str, kind: str, payload: object) -> tuple[str, str | None, str | None]:
    """One line per status change; returns (text, status, assessment id) (None, None when malformed)."""
    event = describe_event(payload)
    if event.status is None or event.assessment_id is None or not isinstance(payload, dict):
        return f"{clock()}  {name:<6} {event.text}", None, None
    text = (f"{clock(payload['occurred_at'])}  {name:<6} {kind:<10} {event.assessment_id[:8]}  "
            f"{event.status:<10}  attempt {payload['attempts']}")
    if event.status == "completed":
        text += f"  source {payload.get('source') or 'unknown'}"
    return text, event.status, event.assessment_id


def draft_line(name: str, kind: str, payload: object) -> str:
    """One line per recommendation_streamed draft (its number is its 1-based place in the model's answer)."""
    draft = parse_event(payload, RecommendationStreamed)
    if isinstance(draft, str):
        return f"{clock()}  {name:<6} malformed draft ({draft})"
    recommendation = draft.recommendation
    title = textwrap.shorten(recommendation.title, TITLE_WIDTH, placeholder=" …")
    return (f"{clock(draft.occurred_at)}  {name:<6} {kind:<10} {str(draft.assessment_id)[:8]}  "
            f"{f'draft {draft.index + 1}':<10}  priority {recommendation.priority}  {title}")


def result_block(email: str, kind: str, assessment_id: str, result: dict[str, Any] | None) -> str:
    title = f"{email} · {kind or 'assessment'} {assessment_id[:8]}"
    rule = "─" * max(0, 78 - len(title) - 4)
    body = format_result(result) if result else "completed, but no result is visible to this user"
    return f"\n── {title} {rule}\n{wrap(textwrap.indent(body, '  '))}\n"
