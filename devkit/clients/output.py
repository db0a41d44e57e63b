"""Pure helpers of the client tools (scripts/submit, scripts/watch, and `make run`'s printing): read
their settings from arguments and environment, and turn status events, results and API errors into text.

Nothing here does I/O. Events are checked against the one event contract, worker/events.py (a pure
Pydantic module; the tools import nothing else of the worker). A malformed event or row is described,
never raised on: a client must survive what it receives.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from worker.events import AssessmentStatusChanged

Event = TypeVar("Event", bound=BaseModel)

FINAL_STATUSES = ("completed", "failed")
ALLOWED_FIELDS = ("assessment_type", "answers", "context", "client_request_id")

EXIT_OK = 0
EXIT_FAILED = 1  # the assessment failed, or the API refused a request
EXIT_USAGE = 2  # missing or invalid settings
EXIT_TIMEOUT = 3  # no final status within --timeout


class ConfigError(Exception):
    """A setting is missing or invalid; the message says what to set."""


@dataclass(frozen=True)
class Connection:
    url: str
    anon_key: str
    email: str
    password: str


@dataclass(frozen=True)
class SubmitConfig:
    connection: Connection
    assessment_file: str
    timeout: float


@dataclass(frozen=True)
class WatchConfig:
    connection: Connection
    timeout: float | None


@dataclass(frozen=True)
class EventLine:
    """One received status event: the text to print, and the status if the event was well formed."""

    text: str
    status: str | None
    assessment_id: str | None = None

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES


# ----------------------------------------------------------------------------- settings


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise ConfigError(f"{self.prog}: {message}")


def _positive_seconds(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{raw!r} is not a number of seconds") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{raw!r} must be more than 0 seconds")
    return value


ENVIRONMENT_HELP = """\
environment:
  SUPABASE_URL        the project URL, https://<ref>.supabase.co (required)
  SUPABASE_ANON_KEY   the project's anon (publishable) key (required)
  SUPABASE_EMAIL      the user's email, if --email is not given
  SUPABASE_PASSWORD   the user's password, if --password is not given"""


def _connection_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--email", help="user's email (default: $SUPABASE_EMAIL)")
    parser.add_argument("--password", help="user's password (default: $SUPABASE_PASSWORD)")


def _connection(args: argparse.Namespace, env: Mapping[str, str]) -> Connection:
    missing = []
    url = env.get("SUPABASE_URL", "").strip()
    anon_key = env.get("SUPABASE_ANON_KEY", "").strip()
    email = (args.email or env.get("SUPABASE_EMAIL", "")).strip()
    password = args.password or env.get("SUPABASE_PASSWORD", "")
    if not url:
        missing.append("SUPABASE_URL (the project URL, https://<ref>.supabase.co)")
    if not anon_key:
        missing.append("SUPABASE_ANON_KEY (the project's anon / publishable key)")
    if not email:
        missing.append("--email or SUPABASE_EMAIL")
    if not password:
        missing.append("--password or SUPABASE_PASSWORD")
    if missing:
        raise ConfigError("Missing settings: " + "; ".join(missing) + ". Set them and run again.")
    if not url.startswith(("https://", "http://")):
        raise ConfigError(f"SUPABASE_URL={url!r} is not an http(s) URL; use https://<ref>.supabase.co.")
    return Connection(url=url.rstrip("/"), anon_key=anon_key, email=email, password=password)


def parse_submit_args(argv: Sequence[str], env: Mapping[str, str]) -> SubmitConfig:
    parser = _Parser(
        prog="scripts/submit",
        description="Submit an assessment as a user and wait for its recommendations (Realtime).",
        epilog=ENVIRONMENT_HELP, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("assessment_file", help="JSON file: {assessment_type, answers, context?}")
    _connection_arguments(parser)
    parser.add_argument(
        "--timeout", type=_positive_seconds, default=60.0, help="seconds to wait (default 60)"
    )
    args = parser.parse_args(list(argv))
    return SubmitConfig(_connection(args, env), args.assessment_file, args.timeout)


def parse_watch_args(argv: Sequence[str], env: Mapping[str, str]) -> WatchConfig:
    parser = _Parser(
        prog="scripts/watch", description="Follow all of a user's assessments on the private topic user:<uid>.",
        epilog=ENVIRONMENT_HELP, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _connection_arguments(parser)
    parser.add_argument(
        "--timeout", type=_positive_seconds, default=None, help="stop after this many seconds"
    )
    args = parser.parse_args(list(argv))
    return WatchConfig(_connection(args, env), args.timeout)


def load_assessment(text: str, source: str) -> dict[str, Any]:
    """The insert body from an assessment file; the database validates the content itself."""
    try:
        body = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{source} is not valid JSON: {exc}. Fix the file and run again.") from None
    if not isinstance(body, dict):
        raise ConfigError(f"{source} must hold a JSON object, got {type(body).__name__}.")
    unknown = sorted(set(body) - set(ALLOWED_FIELDS))
    if unknown:
        raise ConfigError(
            f"{source} has fields a user may not set: {', '.join(unknown)}. "
            f"Use only {', '.join(ALLOWED_FIELDS)}."
        )
    return body


# ----------------------------------------------------------------------------- events


def _short(value: object, limit: int = 200) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def parse_event(message: object, model: type[Event]) -> Event | str:
    """The `model` event (AssessmentStatusChanged, RecommendationStreamed) in a received broadcast ({event,
    payload, ...} as realtime-py passes it, or the bare payload), or a description of what is wrong with it."""
    payload: object = message
    if isinstance(message, Mapping) and "payload" in message and "assessment_id" not in message:
        payload = message["payload"]  # the broadcast envelope: {event, payload, meta?}
    if not isinstance(payload, Mapping):
        return f"not an object: {_short(message)}"
    # realtime.send adds the message id to every payload; it is Realtime's, not part of the event.
    event = {key: value for key, value in payload.items() if key != "id"}
    try:
        return model.model_validate(event)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"]) or "event"
        return f"{where}: {error['msg']}: {_short(dict(payload))}"


def describe_event(message: object) -> EventLine:
    """One line for a received status event; a malformed one is described, never raised on."""
    event = parse_event(message, AssessmentStatusChanged)
    if isinstance(event, str):
        return EventLine(f"malformed event ({event})", None)
    parts = [f"{event.occurred_at.isoformat()}  {event.assessment_id}  {event.status}", f"attempt {event.attempts}"]
    if event.status == "completed":
        parts.append(f"source {event.source or 'unknown'}")
        if event.result_id:
            parts.append(f"result {event.result_id}")
    return EventLine("  ".join(parts), event.status, str(event.assessment_id))


# ----------------------------------------------------------------------------- results and errors


def format_result(row: object) -> str:
    """A result_test row as the user would read it: summary, then recommendations by priority."""
    if not isinstance(row, Mapping):
        return f"malformed result (not an object): {_short(row)}"
    lines = [f"Summary: {row.get('summary') or '(none)'}"]
    source = row.get("source")
    if source == "fallback":
        lines.append(f"Source: fallback ({row.get('fallback_reason') or 'reason not given'})")
    elif source:
        lines.append(f"Source: {source}" + (f" ({row['model']})" if row.get("model") else ""))
    recommendations = row.get("recommendations")
    if not isinstance(recommendations, list) or not recommendations:
        lines.append(f"Recommendations: malformed or empty: {_short(recommendations)}")
        return "\n".join(lines)
    lines.append("Recommendations:")
    for number, item in enumerate(recommendations, start=1):
        if not isinstance(item, Mapping):
            lines.append(f"  {number}. malformed recommendation: {_short(item)}")
            continue
        title = item.get("title") or "(untitled)"
        head = f"  {number}. {title}"
        if item.get("priority") is not None:
            head += f" [priority {item['priority']}]"
        if item.get("category"):
            head += f" ({item['category']})"
        lines.append(head)
        if item.get("description"):
            lines.append(f"     {item['description']}")
        if item.get("rationale"):
            lines.append(f"     Why: {item['rationale']}")
        if isinstance(item.get("based_on"), list) and item["based_on"]:
            lines.append(f"     Based on: {', '.join(map(str, item['based_on']))}")
    return "\n".join(lines)


_ADVICE = {
    "22023": "Fix the field named in the message and submit again.",
    "PT429": "Too many submissions: wait as the details say, then submit again.",
    "23505": "Already submitted with this client_request_id: read that assessment instead of resubmitting.",
    "42501": "Not allowed: send only assessment_type, answers, context and client_request_id, for yourself.",
}


def format_api_error(error: object) -> str:
    """A PostgREST error ({code, message, details, hint}, as postgrest-py's APIError.json())."""
    if not isinstance(error, Mapping):
        return f"request failed: {_short(error)}"
    code = error.get("code") or "unknown"
    lines = [f"request failed ({code}): {error.get('message') or 'no message'}"]
    if error.get("details"):
        lines.append(f"  details: {error['details']}")
    if error.get("hint"):
        lines.append(f"  hint: {error['hint']}")
    if code in _ADVICE:
        lines.append(f"  what to do: {_ADVICE[code]}")
    return "\n".join(lines)
