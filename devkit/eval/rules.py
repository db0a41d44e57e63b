"""The rules a recommendation set is scored on: each one needs no model, only the assessment and the result.

Every rule says whether it applies to an assessment (from the assessment alone, so a recommender that
fails to answer fails every rule that applied) and, if so, whether a result passes, with a reason when
not. docs/quality.md explains each rule and its limits.

A rating's place on its scale is 0 at the worse end and 1 at the better end, whichever way the scale
runs (worker.models.Answer.rating): the bad end is the worst quarter (<= 0.25), the good end the best
quarter (>= 0.75).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from devkit.eval.language import detect, words
from worker.answer_schema import citable_ids
from worker.locales import language_of
from worker.models import GOALS, Assessment, Recommendation, RecommendationSet

BAD_END = 0.25
GOOD_END = 0.75
WORSE_HALF = 0.5
REPEAT_SIMILARITY = 0.6  # word overlap (Jaccard) of two descriptions that cite the same answers

# Words that present what a recommendation cites as a strength, in its title or category.
STRENGTH_WORDS = frozenset({
    "strength", "strengths", "strong", "strongest",  # en
    "forte", "fortes", "força", "forças",  # pt
    "fortaleza", "fortalezas", "fuerte", "fuertes",  # es
    "fort", "forts", "force", "forces", "atout", "atouts",  # fr
    "stärke", "stärken", "stark",  # de
})
# Words that call a number a rating or a score, per language.
RATING_WORDS = {
    "en": frozenset(["rating", "ratings", "rated", "score", "scores", "scored", "scale"]),
    "pt": frozenset(["nota", "notas", "pontuação", "escala", "avaliou", "classificação"]),
    "es": frozenset(["puntuación", "calificación", "nota", "escala", "valoración", "calificaste"]),
    "fr": frozenset(["note", "notes", "notée", "noté", "score", "échelle"]),
    "de": frozenset(["bewertung", "bewertet", "punktzahl", "skala", "note"]),
}


@dataclass(frozen=True)
class Verdict:
    passed: bool
    reason: str = ""


@dataclass(frozen=True)
class Rule:
    name: str
    applies: Callable[[Assessment], bool]
    check: Callable[[Assessment, RecommendationSet], Verdict]


def user_words(assessment: Assessment) -> set[str]:
    """Every word the person wrote in the assessment: generated text is judged without them."""
    texts: list[str] = [assessment.assessment_type]
    for answer in assessment.answers:
        texts += [answer.question, answer.unit or ""]
        value = answer.answer
        texts += value if isinstance(value, list) else [value] if isinstance(value, str) else []
    if assessment.context is not None:
        texts += [*assessment.context.goals, assessment.context.notes or "", assessment.context.locale or ""]
    return {w for text in texts for w in words(text)}


def _text(item: Recommendation) -> str:
    return f"{item.title}\n{item.description}\n{item.rationale}\n{item.category}"


def _ratings(assessment: Assessment) -> dict[str, float]:
    return {a.question_id: r for a in assessment.answers if (r := a.rating) is not None}


def _refers_to(assessment: Assessment, item: Recommendation) -> set[str]:
    """The answers `item` cites in based_on or names in its text (its question, or the question's first 40
    characters): what it presents, even when it does not cite it."""
    text = _normal(_text(item))
    named = {a.question_id for a in assessment.answers if (q := _normal(a.question)[:40]) and q in text}
    return named | set(item.based_on)


def _cited_ratings(assessment: Assessment, item: Recommendation) -> list[float]:
    ratings = _ratings(assessment)
    return [ratings[i] for i in _refers_to(assessment, item) if i in ratings]


def expected_language(assessment: Assessment) -> str | None:
    """The language the result must be in: the locale's if it is one of the five, English without a
    locale; None (the rule does not apply) for a locale the detector does not know."""
    locale = assessment.context.locale if assessment.context is not None else None
    return language_of(locale) if locale else "en"


def language(assessment: Assessment, result: RecommendationSet) -> Verdict:
    expected = expected_language(assessment)
    text = "\n".join([result.summary, *(_text(item) for item in result.recommendations)])
    found = detect(text, user_words(assessment))
    return Verdict(found == expected, f"expected {expected}, the text reads as {found or 'undetermined'}")


def polarity(assessment: Assessment, result: RecommendationSet) -> Verdict:
    for item in result.recommendations:
        cited = _cited_ratings(assessment, item)
        own = set(words(f"{item.title} {item.category}")) - user_words(assessment)
        if own & STRENGTH_WORDS and any(r <= BAD_END for r in cited):
            return Verdict(False, f"{item.title!r} presents an answer at the bad end of its scale as a strength")
        if item.priority == 1 and cited and all(r >= GOOD_END for r in cited):
            return Verdict(False, f"{item.title!r} makes an answer at the good end of its scale the top priority")
    return Verdict(True)


def _worst(assessment: Assessment) -> set[str]:
    ratings = _ratings(assessment)
    lowest = min(ratings.values(), default=1.0)
    return {i for i, r in ratings.items() if r == lowest} if lowest < WORSE_HALF else set()


def top_priority(assessment: Assessment, result: RecommendationSet) -> Verdict:
    worst = _worst(assessment)
    if any(item.priority == 1 and worst & set(item.based_on) for item in result.recommendations):
        return Verdict(True)
    return Verdict(False, f"no priority-1 recommendation rests on the worst rated answer ({', '.join(sorted(worst))})")


def based_on(assessment: Assessment, result: RecommendationSet) -> Verdict:
    citable = set(citable_ids(assessment))
    for item in result.recommendations:
        if not item.based_on:
            return Verdict(False, f"{item.title!r} names no answer it rests on")
        unknown = [i for i in item.based_on if i not in citable]
        if unknown:
            return Verdict(False, f"{item.title!r} cites {unknown!r}, which the assessment does not have")
    return Verdict(True)


def _normal(text: str) -> str:
    return " ".join(words(text))


def _overlap(a: str, b: str) -> float:
    first, second = set(words(a)), set(words(b))
    return len(first & second) / len(first | second) if first | second else 1.0


def no_repeats(assessment: Assessment, result: RecommendationSet) -> Verdict:
    items = result.recommendations
    for n, first in enumerate(items):
        for second in items[n + 1:]:
            same_title = _normal(first.title) == _normal(second.title)
            same_text = _normal(first.description) == _normal(second.description)
            alike = (bool(first.based_on) and set(first.based_on) == set(second.based_on)
                     and _overlap(first.description, second.description) >= REPEAT_SIMILARITY)
            if same_title or same_text or alike:
                return Verdict(False, f"{first.title!r} and {second.title!r} repeat each other")
    return Verdict(True)


def _stems(text: str) -> set[str]:
    return {w[:5] for w in words(text) if len(w) >= 4}


def _mentions(text: str, goal: str) -> bool:
    wanted = _stems(goal)
    if _normal(goal)[:40] in _normal(text):
        return True
    return bool(wanted) and len(wanted & _stems(text)) * 2 >= len(wanted)


def goals(assessment: Assessment, result: RecommendationSet) -> Verdict:
    assert assessment.context is not None
    serving = [_text(item) for item in result.recommendations if GOALS in item.based_on]
    missed = [goal for goal in assessment.context.goals if not any(_mentions(text, goal) for text in serving)]
    return Verdict(not missed, f"no recommendation citing \"goals\" addresses {missed!r}")


def quantities(assessment: Assessment, result: RecommendationSet) -> Verdict:
    counted = {a.question_id for a in assessment.answers if a.is_quantity}
    lexicon = RATING_WORDS[expected_language(assessment) or "en"]
    mine = user_words(assessment)
    for item in result.recommendations:
        if counted & _refers_to(assessment, item) and not _cited_ratings(assessment, item):
            called = (set(words(_text(item))) - mine) & lexicon
            if called:
                return Verdict(False, f"{item.title!r} calls a quantity a rating ({', '.join(sorted(called))})")
    return Verdict(True)


def _has_goals(assessment: Assessment) -> bool:
    return assessment.context is not None and bool(assessment.context.goals)


RULES: tuple[Rule, ...] = (
    Rule("language", lambda a: expected_language(a) is not None, language),
    Rule("polarity", lambda a: bool(_ratings(a)), polarity),
    Rule("top_priority", lambda a: bool(_worst(a)), top_priority),
    Rule("based_on", lambda a: True, based_on),
    Rule("no_repeats", lambda a: True, no_repeats),
    Rule("goals", _has_goals, goals),
    Rule("quantities", lambda a: any(answer.is_quantity for answer in a.answers), quantities),
)
RULE_NAMES = tuple(rule.name for rule in RULES)


def applicable(assessment: Assessment) -> list[Rule]:
    return [rule for rule in RULES if rule.applies(assessment)]


def score(assessment: Assessment, result: RecommendationSet) -> dict[str, Verdict]:
    """The verdict of every rule that applies to `assessment` on `result`."""
    return {rule.name: rule.check(assessment, result) for rule in applicable(assessment)}


def failed_all(assessment: Assessment, reason: str) -> dict[str, Verdict]:
    """Every applicable rule failed: the recommender gave no result."""
    return {rule.name: Verdict(False, reason) for rule in applicable(assessment)}

