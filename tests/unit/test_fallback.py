"""fallback_recommendations: deterministic, always valid, grounded, right about scales, in the user's language."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from tests.factories import SCALE_1_5, assessment, assessments
from worker.answer_schema import citable_ids
from worker.fallback import FALLBACK_VERSION, fallback_recommendations
from worker.locales import LANGUAGES, Texts, load
from worker.models import GOALS, Assessment, Recommendation, RecommendationSet

LOWER_IS_BETTER = {"min": 1, "max": 5, "higher_is_better": False}
RATING_WORDS = ("rated", "rating", "score", "scale")


def _check_valid(a: Assessment, result: RecommendationSet) -> None:
    # Re-validating from plain data checks the rules independently of how the fallback built its models.
    again = RecommendationSet.model_validate(result.model_dump())
    assert 1 <= len(again.recommendations) <= 10
    priorities = [r.priority for r in again.recommendations]
    assert priorities == sorted(priorities)
    citable = set(citable_ids(a))
    for r in again.recommendations:
        assert r.based_on and set(r.based_on) <= citable, (r.title, r.based_on)


def _citing(result: RecommendationSet, question_id: str) -> list[Recommendation]:
    return [r for r in result.recommendations if question_id in r.based_on]


def _text(r: Recommendation) -> str:
    return f"{r.title} {r.description} {r.rationale} {r.category}"


def test_fallback_is_deterministic() -> None:
    first = fallback_recommendations(assessment(context={"goals": ["Run a 5k"]}))
    assert first == fallback_recommendations(assessment(context={"goals": ["Run a 5k"]}))
    assert FALLBACK_VERSION == "fallback-v2"


def test_fallback_lower_is_better_answer_at_its_worst_is_the_top_priority_never_a_strength() -> None:
    answers = [
        {"question_id": "stress", "question": "How stressed are you?", "answer": 5, "scale": LOWER_IS_BETTER},
        {"question_id": "calm", "question": "How calm are your evenings?", "answer": 3, "scale": SCALE_1_5},
    ]
    a = assessment(answers, context={"goals": ["Sleep more"]})
    result = fallback_recommendations(a)
    _check_valid(a, result)
    top = result.recommendations[0]
    assert top.priority == 1 and top.based_on == ["stress"]
    assert "lower is better" in top.description and "worst possible answer" in top.rationale
    assert not any("strength" in _text(r).lower() for r in _citing(result, "stress"))


def test_fallback_stress_4_of_5_lower_is_better_is_a_focus_area_not_the_strongest_area() -> None:
    """The issue's example: "Stress level 4 (1 = low, 5 = high)" was called "your strongest area"."""
    answers = [
        {"question_id": "stress", "question": "Stress level", "answer": 4, "scale": LOWER_IS_BETTER},
        {"question_id": "mood", "question": "Mood", "answer": 3, "scale": SCALE_1_5},
    ]
    a = assessment(answers)
    result = fallback_recommendations(a)
    _check_valid(a, result)
    [focus] = [r for r in result.recommendations if r.category == "Focus area"]
    assert focus.based_on == ["stress"] and focus.priority == 1
    assert all(r.category != "Strengths" for r in result.recommendations)


def test_fallback_answer_at_its_best_end_is_a_strength_never_the_top_priority() -> None:
    answers = [
        {"question_id": "pain", "question": "How much pain do you feel?", "answer": 1, "scale": LOWER_IS_BETTER},
        {"question_id": "sleep", "question": "How well do you sleep?", "answer": 2, "scale": SCALE_1_5},
    ]
    a = assessment(answers)
    result = fallback_recommendations(a)
    _check_valid(a, result)
    assert result.recommendations[0].based_on == ["sleep"]
    [strength] = [r for r in result.recommendations if r.category == "Strengths"]
    assert strength.based_on == ["pain"] and strength.priority == 4
    assert all(r.priority > 1 for r in _citing(result, "pain"))


def test_fallback_all_ratings_at_their_best_end_have_no_focus_area() -> None:
    answers = [{"question_id": f"q{i}", "question": f"Q{i}", "answer": 5, "scale": SCALE_1_5} for i in range(3)]
    a = assessment(answers)
    result = fallback_recommendations(a)
    _check_valid(a, result)
    assert not [r for r in result.recommendations if r.priority == 1]
    assert "No answer stood out as weak" in result.summary


def test_fallback_rating_just_above_the_middle_is_room_to_grow() -> None:
    answers = [{"question_id": "focus", "question": "How well can you focus?", "answer": 6,
                "scale": {"min": 0, "max": 10, "higher_is_better": True}}]
    result = fallback_recommendations(assessment(answers))
    [grow] = [r for r in result.recommendations if r.title.startswith("Room to grow")]
    assert grow.priority == 3 and grow.based_on == ["focus"]


def test_fallback_a_number_without_a_scale_is_a_quantity_never_ranked_or_called_a_rating() -> None:
    """"Hours of sleep: 6" was called one of the "lowest-rated areas (6)". A scale written in the
    question's text is not read either: only an explicit scale makes a rating."""
    answers = [
        {"question_id": "sleep", "question": "Hours of sleep", "answer": 6},
        {"question_id": "coffee", "question": "Cups of coffee a day (1 = none, 5 = many)", "answer": 5,
         "unit": "cups/day"},
        {"question_id": "years", "question": "Years in this job, 1-10?", "answer": 2},
    ]
    a = assessment(answers)
    result = fallback_recommendations(a)
    _check_valid(a, result)
    for question_id in ("sleep", "coffee", "years"):
        for r in _citing(result, question_id):
            assert r.category == "Follow-up", r.title  # only "take it again": nothing judges them
            assert not any(word in _text(r).lower() for word in RATING_WORDS)
    assert not any(word in result.summary.lower() for word in RATING_WORDS)


@pytest.mark.parametrize(("value", "unit", "title"), [
    (6, "hours/night", "Sleep: aim for 7 to 9 hours a night"),
    (5.5, " Hours per  Night ", "Sleep: aim for 7 to 9 hours a night"),
    (6, "Stunden/Nacht", "Sleep: aim for 7 to 9 hours a night"),  # any language's spelling of the unit
    (10, "h/night", "Sleep: more than 9 hours a night"),
    (3000, "steps/day", "Walk more every day"),
])
def test_fallback_judges_a_quantity_whose_unit_a_rule_knows(value: float, unit: str, title: str) -> None:
    answers = [{"question_id": "q", "question": "How much?", "answer": value, "unit": unit}]
    a = assessment(answers)
    result = fallback_recommendations(a)
    _check_valid(a, result)
    [judged] = [r for r in result.recommendations if r.title == title]
    assert judged.priority == 2 and judged.based_on == ["q"]
    assert unit.strip() in judged.description or " ".join(unit.split()) in judged.description


@pytest.mark.parametrize(("value", "unit"), [(8, "hours/night"), (7, "hours/night"), (9, "hours/night"),
                                             (9000, "steps/day"), (6, "hours")])
def test_fallback_leaves_a_quantity_in_range_or_of_an_unknown_unit_alone(value: float, unit: str) -> None:
    a = assessment([{"question_id": "q", "question": "How much?", "answer": value, "unit": unit}])
    result = fallback_recommendations(a)
    assert [r.category for r in _citing(result, "q")] == ["Follow-up"]


def test_fallback_addresses_every_goal_even_with_ten() -> None:
    goals = [f"Goal number {i}" for i in range(10)]
    answers = [{"question_id": f"n{i}", "question": f"Rating {i}", "answer": 1, "scale": SCALE_1_5} for i in range(5)]
    answers += [{"question_id": f"b{i}", "question": f"Yes or no {i}?", "answer": False} for i in range(5)]
    answers += [{"question_id": f"s{i}", "question": f"Sleep {i}", "answer": 4, "unit": "hours/night"}
                for i in range(3)]
    a = assessment(answers, context={"goals": goals})
    result = fallback_recommendations(a)
    _check_valid(a, result)
    assert len(result.recommendations) == 10
    goal_text = " ".join(_text(r) for r in result.recommendations if GOALS in r.based_on)
    assert all(f"“{goal}”" in goal_text for goal in goals)
    assert result.recommendations[0].based_on == ["n0"]  # the worst rating stays first


def test_fallback_goals_come_after_the_worst_rating_and_each_reads_differently() -> None:
    a = assessment(context={"goals": ["Run a 5k", "Sleep before 23:00", "Read 10 books"]})
    result = fallback_recommendations(a)
    _check_valid(a, result)
    assert result.recommendations[0].based_on == ["sleep"]  # 2 of 5, higher is better
    goal_recs = [r for r in result.recommendations if r.based_on == [GOALS]]
    assert [r.title for r in goal_recs] == [
        "Turn “Run a 5k” into a weekly plan", "Make “Sleep before 23:00” measurable",
        "Give “Read 10 books” a start date"]


def test_fallback_from_four_goals_on_the_others_share_one_recommendation() -> None:
    a = assessment(context={"goals": ["Run a 5k", "Sleep before 23:00", "Read 10 books", "Learn Spanish"]})
    goal_recs = [r for r in fallback_recommendations(a).recommendations if r.based_on == [GOALS]]
    assert goal_recs[-1].title == "Put your other goals in order"
    assert "“Read 10 books”, “Learn Spanish”" in goal_recs[-1].description


def test_fallback_uses_no_answers_lists_and_text() -> None:
    a = assessment()
    result = fallback_recommendations(a)
    _check_valid(a, result)
    assert _citing(result, "exercise")[0].title == "Revisit: Do you exercise weekly?"
    assert "“reading”, “cycling”" in _citing(result, "hobbies")[0].description
    assert _citing(result, "worry")[0].title == "Reflect on: What worries you most?"
    assert "5 answers" in result.summary and "“How well do you sleep?”" in result.summary


def test_fallback_all_yes_still_gives_a_recommendation() -> None:
    a = assessment([{"question_id": "q", "question": "Do you sleep well?", "answer": True}])
    result = fallback_recommendations(a)
    _check_valid(a, result)
    assert "one answer " in result.summary


@pytest.mark.parametrize(("locale", "expected"), [
    ("pt-BR", "Estas recomendações se baseiam nas 5 respostas da sua avaliação de bem-estar."),
    ("pt", "Estas recomendações se baseiam"),
    ("es-MX", "Estas recomendaciones se basan en las 5 respuestas de tu evaluación de bienestar."),
    ("fr", "Ces recommandations reposent sur les 5 réponses de votre évaluation de bien-être."),
    ("DE-at", "Diese Empfehlungen beruhen auf den 5 Antworten Ihrer Einschätzung zum Thema Wohlbefinden."),
    ("en-GB", "These recommendations are based on the 5 answers in your wellbeing assessment."),
    (None, "These recommendations are based on the 5 answers in your wellbeing assessment."),
])
def test_fallback_writes_in_the_assessments_locale(locale: str | None, expected: str) -> None:
    result = fallback_recommendations(assessment(context={"locale": locale} if locale else None))
    assert result.summary.startswith(expected)
    assert "no translation" not in result.summary


def test_fallback_in_an_untranslated_locale_is_english_and_says_so() -> None:
    result = fallback_recommendations(assessment(context={"locale": "it-IT"}))
    assert result.summary.startswith("These recommendations are based on")
    assert result.summary.endswith("no translation is available yet for the language “it-IT”.")


def test_fallback_portuguese_numbers_use_a_decimal_comma() -> None:
    answers = [{"question_id": "q", "question": "Quantas horas você dorme?", "answer": 5.5, "unit": "horas/noite"}]
    result = fallback_recommendations(assessment(answers, context={"locale": "pt-BR"}))
    assert any("5,5 horas/noite" in r.description for r in result.recommendations)


def test_fallback_quotes_the_users_words_unchanged_on_one_line_and_bounded() -> None:
    question = "Do you “really” rest  on\nSundays? <b>&amp;</b> {value} {0}"
    answers = [{"question_id": "q", "question": question, "answer": False},
               {"question_id": "long", "question": "W" * 500, "answer": 1, "scale": SCALE_1_5}]
    result = fallback_recommendations(assessment(answers, context={"goals": ["g" * 200]}))
    one_line = "Do you “really” rest on Sundays? <b>&amp;</b> {value} {0}"
    assert any(f"“{one_line}”" in r.description for r in result.recommendations)
    assert all("\n" not in _text(r) for r in result.recommendations)
    long = _citing(result, "long")[0]
    assert "W" * 89 + "…" in long.title and "W" * 91 not in long.title


def test_fallback_caps_at_ten_with_many_inputs() -> None:
    answers = [{"question_id": f"n{i}", "question": f"Score {i}", "answer": i % 5 + 1, "scale": SCALE_1_5}
               for i in range(40)]
    answers += [{"question_id": f"b{i}", "question": f"Yes or no {i}?", "answer": False} for i in range(10)]
    answers += [{"question_id": f"t{i}", "question": f"Text {i}", "answer": "words"} for i in range(10)]
    a = assessment(answers, context={"goals": [f"Goal {i}" for i in range(10)]})
    result = fallback_recommendations(a)
    _check_valid(a, result)
    assert len(result.recommendations) == 10


def test_fallback_long_texts_respect_the_limits() -> None:
    answers = [{"question_id": "q", "question": "W" * 500, "answer": 1, "scale": SCALE_1_5},
               {"question_id": "l", "question": "L" * 500, "answer": ["x" * 200] * 30},
               {"question_id": "u", "question": "U" * 500, "answer": 3, "unit": "h/night"}]
    a = assessment(answers, assessment_type="t" * 1000, context={"goals": ["g" * 200] * 10, "locale": "fr"})
    _check_valid(a, fallback_recommendations(a))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(assessments())
def test_fallback_never_raises_and_is_always_valid(a: Assessment) -> None:
    result = fallback_recommendations(a)
    _check_valid(a, result)
    assert result == fallback_recommendations(a)
    ratings = {answer.question_id: answer.rating for answer in a.answers}
    for r in result.recommendations:
        rated: list[Any] = [ratings[i] for i in r.based_on if ratings.get(i) is not None]
        if r.category == "Strengths":
            assert all(rating >= 0.75 for rating in rated)
        if r.priority == 1 and rated:
            assert any(rating < 0.75 for rating in rated)


@pytest.mark.parametrize("language", LANGUAGES)
def test_fallback_uses_every_text_of_every_translation(language: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every template is reachable and fills without error in every language (a placeholder the code does
    not pass would raise here, not in production)."""
    used: set[str] = set()
    original = Texts.format

    def recording(self: Texts, key: str, **values: str) -> str:
        used.add(key)
        text = original(self, key, **values)
        assert "{" not in text, (key, text)
        return text

    monkeypatch.setattr(Texts, "format", recording)
    lower = {"min": 0, "max": 10, "higher_is_better": False}
    rich = [
        {"question_id": "worst", "question": "Worst?", "answer": 1, "scale": SCALE_1_5},
        {"question_id": "bad", "question": "Bad?", "answer": 8, "scale": lower},
        {"question_id": "weak", "question": "Weak?", "answer": 6, "scale": lower},
        {"question_id": "best", "question": "Best?", "answer": 5, "scale": SCALE_1_5},
        {"question_id": "short", "question": "Sleep?", "answer": 5, "unit": "hours/night"},
        {"question_id": "steps", "question": "Steps?", "answer": 100, "unit": "steps/day"},
        {"question_id": "no", "question": "Yes?", "answer": False},
        {"question_id": "list", "question": "Which?", "answer": ["a", "b"]},
        {"question_id": "text", "question": "Why?", "answer": "Because."},
    ]
    fallback_recommendations(assessment(rich, context={"locale": language, "goals": ["g1", "g2", "g3"]}))
    fallback_recommendations(assessment(
        [{"question_id": "long", "question": "Sleep?", "answer": 11, "unit": "h/night"},
         {"question_id": "mid", "question": "Mid?", "answer": 6,
          "scale": {"min": 0, "max": 10, "higher_is_better": True}}],
        context={"locale": language, "goals": ["g1", "g2", "g3", "g4"]}))
    fallback_recommendations(assessment([{"question_id": "one", "question": "One?", "answer": True}],
                                        context={"locale": language}))
    expected = set(load(language).text) - {"summary_untranslated"}
    assert used == expected, f"never used: {expected - used}"
    if language == "en":
        fallback_recommendations(assessment(context={"locale": "it"}))
        assert "summary_untranslated" in used
