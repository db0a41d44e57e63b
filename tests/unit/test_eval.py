"""The eval harness: its cases cover what the issue asks, its language detector reads all five languages,
and every rule fails on the mistake it exists to catch."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from devkit.eval.__main__ import main
from devkit.eval.cases import CaseError, load_cases
from devkit.eval.language import detect
from devkit.eval.rules import RULE_NAMES, applicable, score, user_words
from tests.factories import SCALE_1_5, assessment
from worker.fallback import fallback_recommendations
from worker.locales import LANGUAGES, language_of
from worker.models import Assessment, RecommendationSet

LOWER_IS_BETTER = {"min": 1, "max": 5, "higher_is_better": False}
ANSWERS = [
    {"question_id": "stress", "question": "How stressed are you at work?", "answer": 5, "scale": LOWER_IS_BETTER},
    {"question_id": "calm", "question": "How calm are your evenings?", "answer": 5, "scale": SCALE_1_5},
    {"question_id": "sleep", "question": "How many hours do you sleep?", "answer": 6, "unit": "hours/night"},
]
CASE = assessment(ANSWERS, context={"goals": ["Run a marathon"], "locale": "en"})
GOOD: dict[str, Any] = {
        "title": "Lower your stress at work", "category": "Stress", "priority": 1, "based_on": ["stress"],
        "description": "Take a ten-minute walk at lunch every day and keep your phone away from the table.",
        "rationale": "Your stress at work is at the worst end of its scale, so it comes first."}
GOAL: dict[str, Any] = {"title": "Train for the marathon", "category": "Goals", "priority": 2, "based_on": ["goals"],
        "description": "Follow a sixteen-week plan towards your marathon with three runs a week.",
        "rationale": "You want to run a marathon; a plan with weekly runs makes it likely."}


def _result(*items: dict[str, Any], summary: str = "Your stress is high, your evenings calm.") -> RecommendationSet:
    return RecommendationSet.model_validate({"summary": summary, "recommendations": list(items)})


def _failed(result: RecommendationSet, a: Assessment = CASE) -> set[str]:
    return {name for name, verdict in score(a, result).items() if not verdict.passed}


def test_eval_a_good_result_passes_every_rule() -> None:
    assert _failed(_result(GOOD, GOAL)) == set()
    assert set(score(CASE, _result(GOOD, GOAL))) == set(RULE_NAMES)


def test_eval_language_fails_on_text_in_another_language() -> None:
    spanish = GOOD | {"title": "Reduce el estrés", "description": "Camina diez minutos al día y deja el móvil lejos.",
                      "rationale": "Tu estrés está en el peor extremo de la escala y por eso va primero."}
    assert "language" in _failed(_result(spanish, GOAL | spanish | {"based_on": ["goals"], "title": "Maratón"},
                                         summary="Tu estrés es alto y tus tardes son tranquilas."))


def test_eval_polarity_fails_on_a_bad_end_answer_called_a_strength() -> None:
    strength = GOOD | {"title": "Build on your strength: stress", "category": "Strengths", "priority": 4}
    assert "polarity" in _failed(_result(GOOD, GOAL, strength))


def test_eval_polarity_sees_an_answer_named_in_the_text_even_without_citing_it() -> None:
    strength = GOOD | {"title": "Build on your strength: How stressed are you at work?", "category": "Strengths",
                       "priority": 4, "based_on": ["calm"]}
    assert "polarity" in _failed(_result(GOOD, GOAL, strength))


def test_eval_polarity_fails_on_a_good_end_answer_made_the_top_priority() -> None:
    calm_first = GOOD | {"title": "Keep your calm evenings", "based_on": ["calm"]}
    assert "polarity" in _failed(_result(calm_first, GOOD, GOAL))


def test_eval_top_priority_fails_when_priority_1_rests_elsewhere() -> None:
    assert "top_priority" in _failed(_result(GOAL | {"priority": 1}, GOOD | {"priority": 2}))


def test_eval_based_on_fails_on_an_invented_id_and_on_none() -> None:
    assert "based_on" in _failed(_result(GOOD | {"based_on": ["stress", "invented"]}, GOAL))
    assert "based_on" in _failed(_result(GOOD | {"based_on": []}, GOAL))
    no_goals = assessment(ANSWERS)
    assert "based_on" in _failed(_result(GOOD, GOAL), no_goals)  # "goals" without goals


def test_eval_no_repeats_fails_on_the_same_advice_twice() -> None:
    assert "no_repeats" in _failed(_result(GOOD, GOAL, GOOD | {"priority": 3}))
    reworded = GOOD | {"title": "Less stress", "description": GOOD["description"].replace("every day", "daily")}
    assert "no_repeats" in _failed(_result(GOOD, GOAL, reworded))


def test_eval_goals_fails_when_a_goal_is_not_addressed() -> None:
    assert "goals" in _failed(_result(GOOD))
    assert "goals" in _failed(_result(GOOD, GOAL | {"based_on": ["stress"]}))  # not citing "goals"


def test_eval_quantities_fails_when_a_quantity_is_called_a_rating() -> None:
    rated = GOOD | {"title": "Sleep", "priority": 2, "based_on": ["sleep"],
                    "rationale": "You rated your sleep at 6, a low score."}
    assert "quantities" in _failed(_result(GOOD, GOAL, rated))


def test_eval_rules_apply_only_where_they_can() -> None:
    plain = assessment([{"question_id": "q", "question": "Why?", "answer": "Because."}], context={"locale": "it"})
    assert [rule.name for rule in applicable(plain)] == ["based_on", "no_repeats"]


@pytest.mark.parametrize("language", LANGUAGES)
def test_eval_detects_each_language_in_the_fallback_text(language: str) -> None:
    a = assessment(context={"locale": language, "goals": ["Run a 5k"]})
    result = fallback_recommendations(a)
    text = " ".join([result.summary, *(f"{r.title} {r.description} {r.rationale}" for r in result.recommendations)])
    assert detect(text, user_words(a)) == language


def test_eval_language_ignores_quoted_and_the_persons_own_words() -> None:
    english = "You said “Eu durmo muito mal e não consigo descansar à noite” about your sleep, and that is the point."
    assert detect(english) == "en"
    assert detect("Eu durmo muito mal e não consigo descansar à noite, com certeza.", excluded=[]) == "pt"
    words = {"eu", "durmo", "muito", "mal", "e", "não", "consigo", "descansar", "à", "noite", "com", "certeza"}
    assert detect("Eu durmo muito mal e não consigo descansar à noite, com certeza.", excluded=words) is None


def test_eval_language_is_undetermined_on_too_little_text() -> None:
    assert detect("Sleep.") is None and detect("") is None


def test_eval_cases_cover_what_the_issue_asks() -> None:
    cases = load_cases()
    assert len(cases) >= 30
    assessments = [case.assessment for case in cases]
    locales = {language_of(a.context.locale if a.context else None) for a in assessments}
    assert set(LANGUAGES) <= locales
    assert len({a.assessment_type for a in assessments}) >= 5
    answers = [answer for a in assessments for answer in a.answers]
    assert any(x.scale and x.scale.higher_is_better for x in answers)
    assert any(x.scale and not x.scale.higher_is_better for x in answers)
    assert any(x.is_quantity and x.unit for x in answers) and any(x.is_quantity and not x.unit for x in answers)
    assert any(isinstance(x.answer, str) for x in answers) and any(isinstance(x.answer, list) for x in answers)
    assert any(isinstance(x.answer, bool) for x in answers)
    assert sum(bool(a.context and a.context.goals) for a in assessments) >= 10
    for name in RULE_NAMES:  # every rule is exercised by several cases
        assert sum(name in {r.name for r in applicable(a)} for a in assessments) >= 10, name


def test_eval_cli_scores_the_fallback_at_one_and_prints_the_documented_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--json", "--fail-under", "1.0"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report) == {"fallback"}
    assert report["fallback"] == {"overall": 1.0, "assessments": len(load_cases()),
                                  "rules": dict.fromkeys(RULE_NAMES, 1.0)}


def test_eval_cli_exits_1_under_the_threshold(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--fail-under", "1.01"]) == 1
    captured = capsys.readouterr()
    assert "fallback: overall 1.000" in captured.out and "below 1.01" in captured.err


def test_eval_cli_refuses_unusable_cases(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "bad.json").write_text(json.dumps({"assessment_type": "x", "answers": [
        {"question_id": "q", "question": "Q?", "answer": 1, "scale": {"min": 2, "max": 1, "higher_is_better": True}}]}))
    assert main(["--cases", str(tmp_path)]) == 2
    assert "bad.json: not a valid assessment" in capsys.readouterr().err
    assert main(["--cases", str(tmp_path / "none")]) == 2
    with pytest.raises(CaseError, match=r"No \*\.json"):
        load_cases(tmp_path / "none")
