"""The client tools' pure parts (devkit/clients/output.py): settings, events, results and API errors."""

from __future__ import annotations

import pytest

from devkit.clients.output import (
    ConfigError,
    describe_event,
    format_api_error,
    format_result,
    load_assessment,
    parse_submit_args,
    parse_watch_args,
)

ENV = {
    "SUPABASE_URL": "https://abc.supabase.co/",
    "SUPABASE_ANON_KEY": "anon-key",
    "SUPABASE_EMAIL": "env@example.test",
    "SUPABASE_PASSWORD": "env-password",
}
ASSESSMENT_ID = "6f1c2d4e-0000-4000-8000-000000000001"


def event(**changes: object) -> dict[str, object]:
    payload: dict[str, object] = {
        "type": "recommendation_completed",
        "version": 1,
        "assessment_id": ASSESSMENT_ID,
        "user_id": "6f1c2d4e-0000-4000-8000-0000000000aa",
        "status": "completed",
        "attempts": 1,
        "source": "ai",
        "result_id": "6f1c2d4e-0000-4000-8000-0000000000bb",
        "created_at": "2026-11-25T18:00:00+00:00",
        "started_at": "2026-11-25T18:00:01+00:00",
        "completed_at": "2026-11-25T18:00:04+00:00",
        "occurred_at": "2026-11-25T18:00:04+00:00",
        "id": "b4d8c1aa-0000-4000-8000-000000000000",  # added by realtime.send
    }
    payload.update(changes)
    return payload


# ----------------------------------------------------------------------------- settings


def test_parse_submit_args_reads_arguments_then_environment() -> None:
    config = parse_submit_args(["a.json", "--email", "me@example.test", "--timeout", "5"], ENV)

    assert config.connection.url == "https://abc.supabase.co"
    assert config.connection.email == "me@example.test"
    assert config.connection.password == "env-password"
    assert (config.assessment_file, config.timeout) == ("a.json", 5.0)


def test_parse_submit_args_defaults_to_sixty_seconds() -> None:
    assert parse_submit_args(["a.json"], ENV).timeout == 60.0


def test_parse_submit_args_missing_settings_says_what_to_set() -> None:
    with pytest.raises(ConfigError) as error:
        parse_submit_args(["a.json"], {})

    message = str(error.value)
    for setting in (
        "SUPABASE_URL",
        "SUPABASE_ANON_KEY",
        "--email or SUPABASE_EMAIL",
        "--password or SUPABASE_PASSWORD",
    ):
        assert setting in message


def test_parse_submit_args_rejects_a_non_positive_timeout() -> None:
    with pytest.raises(ConfigError, match="'0' must be more than 0 seconds"):
        parse_submit_args(["a.json", "--timeout", "0"], ENV)


def test_parse_submit_args_requires_the_assessment_file() -> None:
    with pytest.raises(ConfigError, match="assessment_file"):
        parse_submit_args([], ENV)


def test_parse_submit_args_rejects_a_url_without_scheme() -> None:
    with pytest.raises(ConfigError, match="is not an http"):
        parse_submit_args(["a.json"], {**ENV, "SUPABASE_URL": "abc.supabase.co"})


def test_parse_watch_args_has_no_timeout_by_default() -> None:
    config = parse_watch_args(["--password", "pw"], ENV)

    assert config.timeout is None
    assert config.connection.password == "pw"


def test_load_assessment_rejects_invalid_json_and_forbidden_fields() -> None:
    with pytest.raises(ConfigError, match=r"a\.json is not valid JSON"):
        load_assessment("{", "a.json")
    with pytest.raises(ConfigError, match="must hold a JSON object"):
        load_assessment("[]", "a.json")
    with pytest.raises(ConfigError, match="fields a user may not set: status, user_id"):
        load_assessment('{"answers": [], "status": "completed", "user_id": "x"}', "a.json")


def test_load_assessment_returns_the_body() -> None:
    body = load_assessment('{"assessment_type": "career", "answers": [], "context": {"locale": "en"}}', "a")

    assert body == {"assessment_type": "career", "answers": [], "context": {"locale": "en"}}


# ----------------------------------------------------------------------------- events


def test_describe_event_formats_a_completion_as_realtime_py_delivers_it() -> None:
    line = describe_event({"event": "recommendation_completed", "payload": event(), "type": "broadcast"})

    assert line.status == "completed" and line.is_final
    assert line.assessment_id == ASSESSMENT_ID
    assert line.text == (
        f"2026-11-25T18:00:04+00:00  {ASSESSMENT_ID}  completed  attempt 1  source ai  "
        "result 6f1c2d4e-0000-4000-8000-0000000000bb"
    )


def test_describe_event_processing_is_not_final() -> None:
    line = describe_event(
        event(
            type="assessment_processing", status="processing", source=None, result_id=None, completed_at=None
        )
    )

    assert line.status == "processing" and not line.is_final
    assert "source" not in line.text


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        ("not json", "not an object"),
        ({"event": "x", "payload": ["a"]}, "not an object"),
        (event(type="something_else"), "type: Input should be 'assessment_processing'"),
        (event(version=2), "version: Input should be 1"),
        (event(assessment_id=None), "assessment_id: UUID input should be"),
        (event(attempts="many"), "attempts: Input should be a valid integer"),
        (event(extra_field=1), "extra_field: Extra inputs are not permitted"),
    ],
)
def test_describe_event_reports_a_malformed_payload(message: object, reason: str) -> None:
    line = describe_event(message)

    assert line.status is None and not line.is_final
    assert line.text.startswith("malformed event")
    assert reason in line.text


# ----------------------------------------------------------------------------- results and errors


def test_format_result_lists_recommendations_in_order() -> None:
    text = format_result(
        {
            "summary": "Focus on sleep.",
            "source": "fallback",
            "fallback_reason": "timeout",
            "recommendations": [
                {
                    "title": "Bedtime",
                    "description": "Same time daily.",
                    "category": "sleep",
                    "priority": 1,
                    "rationale": "You sleep 5 hours.",
                },
                {"title": "Walk", "priority": 2},
            ],
        }
    )

    assert text.splitlines() == [
        "Summary: Focus on sleep.",
        "Source: fallback (timeout)",
        "Recommendations:",
        "  1. Bedtime [priority 1] (sleep)",
        "     Same time daily.",
        "     Why: You sleep 5 hours.",
        "  2. Walk [priority 2]",
    ]


def test_format_result_names_the_answers_a_recommendation_rests_on() -> None:
    text = format_result({"summary": "s", "source": "fallback", "fallback_reason": "timeout", "recommendations": [
        {"title": "Sleep", "priority": 1, "based_on": ["sleep.hours", "goals"]}, {"title": "Old", "based_on": []}]})
    assert text.splitlines()[-2:] == ["     Based on: sleep.hours, goals", "  2. Old"]


def test_format_result_reports_malformed_rows_and_items() -> None:
    assert format_result(None).startswith("malformed result")
    text = format_result({"summary": "s", "source": "ai", "model": "m", "recommendations": ["oops"]})
    assert "Source: ai (m)" in text
    assert "1. malformed recommendation: 'oops'" in text
    assert "malformed or empty" in format_result({"summary": "s", "recommendations": {}})


def test_format_api_error_shows_field_details_hint_and_advice() -> None:
    text = format_api_error(
        {
            "code": "22023",
            "message": "answers[3].answer: is empty",
            "details": None,
            "hint": "Leave unanswered questions out of answers.",
        }
    )

    assert text.splitlines() == [
        "request failed (22023): answers[3].answer: is empty",
        "  hint: Leave unanswered questions out of answers.",
        "  what to do: Fix the field named in the message and submit again.",
    ]


def test_format_api_error_rate_limit_keeps_retry_after() -> None:
    text = format_api_error({"code": "PT429", "message": "rate limit", "details": "Retry after 6 seconds."})

    assert "details: Retry after 6 seconds." in text
    assert "wait as the details say" in text


def test_format_api_error_survives_a_non_object() -> None:
    assert format_api_error("boom") == "request failed: 'boom'"
