"""The strict answer schema per assessment, grounding, and the models' scale and based_on rules."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from tests.factories import assessment
from worker.answer_schema import RESPONSE_SCHEMA, citable_ids, ground, response_format
from worker.models import Answer, RecommendationSet

REC = {"title": "Sleep earlier", "description": "Go to bed 15 minutes earlier.", "category": "Sleep",
       "priority": 1, "rationale": "Sleep quality is low."}


def _walk_strict(node: Any) -> None:
    if isinstance(node, dict):
        assert "$ref" not in node and "title" not in node.keys() - {"properties"}
        if node.get("type") == "object":
            assert node["additionalProperties"] is False
            assert set(node["required"]) == set(node["properties"])
        for key, value in node.items():
            for sub in (value.values() if key == "properties" else [value]):
                _walk_strict(sub)
    elif isinstance(node, list):
        for item in node:
            _walk_strict(item)


def test_answer_schema_is_strict_mode_compatible_and_asks_for_based_on() -> None:
    schema = response_format(("a", "b"))["json_schema"]["schema"]
    _walk_strict(schema)
    item = schema["properties"]["recommendations"]["items"]
    assert set(item["properties"]) == {"title", "description", "category", "priority", "rationale", "based_on"}
    assert item["properties"]["based_on"]["items"] == {"type": "string", "enum": ["a", "b"]}
    # The shared schema is not touched by building one assessment's.
    assert "enum" not in RESPONSE_SCHEMA["properties"]["recommendations"]["items"]["properties"]["based_on"]["items"]


def test_answer_schema_cites_goals_only_when_there_are_goals() -> None:
    assert citable_ids(assessment()) == ("sleep", "energy", "exercise", "hobbies", "worry")
    assert citable_ids(assessment(context={"goals": []})) == ("sleep", "energy", "exercise", "hobbies", "worry")
    assert citable_ids(assessment(context={"goals": ["Run"]}))[-1] == "goals"
    # A question whose id is "goals" is not listed twice.
    answers = [{"question_id": "goals", "question": "Your goals?", "answer": "Run"}]
    assert citable_ids(assessment(answers, context={"goals": ["Run"]})) == ("goals",)
    with pytest.raises(ValueError, match="at least one citable id"):
        response_format(())


def test_ground_drops_ids_outside_the_assessment_and_repeats() -> None:
    sent = RecommendationSet.model_validate({"summary": "A short summary.", "recommendations": [
        REC | {"based_on": ["sleep", "invented", "sleep", "goals", "energy"]},
        REC | {"based_on": ["invented"]},
    ]})
    grounded = ground(sent, ("sleep", "energy"))
    assert [r.based_on for r in grounded.recommendations] == [["sleep", "energy"], []]
    assert grounded.summary == sent.summary


def test_recommendation_written_before_based_on_existed_stays_readable() -> None:
    old = RecommendationSet.model_validate({"summary": "A short summary.", "recommendations": [REC]})
    assert old.recommendations[0].based_on == []
    for bad in ([3], ["x" * 65], [""], ["q"] * 102):
        with pytest.raises(ValidationError):
            RecommendationSet.model_validate({"summary": "A short summary.",
                                              "recommendations": [REC | {"based_on": bad}]})


def test_an_odd_id_from_a_lax_server_costs_that_id_not_the_answer() -> None:
    sent = RecommendationSet.model_validate({"summary": "A short summary.",
                                             "recommendations": [REC | {"based_on": ["not an id", "sleep"]}]})
    assert ground(sent, ("sleep",)).recommendations[0].based_on == ["sleep"]


@pytest.mark.parametrize(("extra", "message"), [
    ({"scale": {"min": 5, "max": 1, "higher_is_better": True}}, "scale.min must be less than scale.max"),
    ({"scale": {"min": 1, "max": 1, "higher_is_better": True}}, "scale.min must be less than scale.max"),
    ({"scale": {"min": 1, "max": 3, "higher_is_better": True}}, "outside its scale"),
    ({"scale": {"min": 1, "max": 5}}, "higher_is_better"),
    ({"scale": {"min": "1", "max": 5, "higher_is_better": True}}, "min"),
    ({"scale": {"min": 1, "max": 5, "higher_is_better": True, "step": 1}}, "step"),
    ({"scale": {"min": 1, "max": 2e9, "higher_is_better": True}}, "max"),
    ({"unit": ""}, "unit"),
    ({"unit": "u" * 41}, "unit"),
])
def test_answer_model_refuses_what_the_database_refuses(extra: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Answer.model_validate({"question_id": "q", "question": "Q?", "answer": 4} | extra)


@pytest.mark.parametrize("answer", ["often", True, ["a"]])
def test_answer_model_allows_scale_and_unit_on_numbers_only(answer: object) -> None:
    for extra in ({"scale": {"min": 0, "max": 1, "higher_is_better": True}}, {"unit": "hours"}):
        with pytest.raises(ValidationError, match="only allowed on a number answer"):
            Answer.model_validate({"question_id": "q", "question": "Q?", "answer": answer} | extra)


@pytest.mark.parametrize(("value", "higher_is_better", "rating"), [
    (1, True, 0.0), (5, True, 1.0), (2, True, 0.25), (1, False, 1.0), (5, False, 0.0), (4, False, 0.25),
])
def test_answer_rating_runs_in_the_scales_direction(value: int, higher_is_better: bool, rating: float) -> None:
    answer = Answer.model_validate({"question_id": "q", "question": "Q?", "answer": value,
                                    "scale": {"min": 1, "max": 5, "higher_is_better": higher_is_better}})
    assert answer.rating == rating and not answer.is_quantity


def test_answer_without_a_scale_is_a_quantity_with_no_rating() -> None:
    quantity = Answer.model_validate({"question_id": "q", "question": "Hours?", "answer": 6, "unit": "hours/night"})
    assert quantity.is_quantity and quantity.rating is None
    text = Answer.model_validate({"question_id": "q", "question": "Why?", "answer": "6"})
    assert not text.is_quantity and text.number is None


def test_assessment_model_refuses_a_repeated_question_id() -> None:
    answers = [{"question_id": "q", "question": "A?", "answer": 1}, {"question_id": "q", "question": "B?", "answer": 2}]
    with pytest.raises(ValidationError, match="question_id repeats"):
        assessment(answers)
