"""Deterministic recommendations derived from the answers alone, used whenever the AI step fails.

Contract: `fallback_recommendations` is pure (same assessment, same result: no randomness, no clock),
never raises for a valid `Assessment`, and always returns 1-10 recommendations that satisfy
`worker.models.Recommendation`, sorted by priority (ties keep the order they were derived in).
The text is English: the fallback has no translations, whatever context.locale says. A higher rating is
taken as the better one (docs/frontend.md asks for questions phrased that way): rules cannot tell which end
of "How stressed are you?" is good.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

from worker.models import Answer, Assessment, Recommendation, RecommendationSet

FALLBACK_VERSION = "fallback-v1"

MAX_GOALS = 3
MAX_FOCUS_AREAS = 3
MAX_NO_ANSWERS = 3
MAX_LIST_ANSWERS = 2
MAX_TEXT_ANSWERS = 2
MAX_RECOMMENDATIONS = 10


@dataclass(frozen=True)
class _Scored:
    index: int
    answer: Answer
    value: float
    score: float  # 0 = bottom of the answer's scale, 1 = top


def fallback_recommendations(assessment: Assessment) -> RecommendationSet:
    """Useful, rule-abiding recommendations built from `assessment`'s answers and goals."""
    kind = _quote_free(assessment.assessment_type, 60) or "assessment"
    items: list[Recommendation] = []
    focus_names: list[str] = []

    goals = assessment.context.goals if assessment.context is not None else []
    for i, goal in enumerate(goals[:MAX_GOALS]):
        name = _quote_free(goal, 80) or "your goal"
        items.append(_rec(
            title=f"Turn “{_quote_free(goal, 90)}” into a weekly plan",
            description=(
                f"Write down one small, specific action towards “{name}” for each of the next four "
                "weeks, put each in your calendar with a day and time, and tick it off when done. "
                "At the end of each week, note what helped and adjust next week's action."
            ),
            category="Goals",
            priority=1 if i == 0 else 2,
            rationale=(
                f"You named “{name}” as a goal; goals with a concrete weekly step are far more likely "
                "to be reached."
            ),
        ))
        if i == 0:
            focus_names.append(name)

    scored = _scored(assessment.answers)
    lowest = sorted(scored, key=lambda s: (s.score, s.index))
    flagged = [s for s in lowest if s.score < 0.67][:MAX_FOCUS_AREAS] or lowest[:1]
    for s in flagged:
        question = _quote_free(s.answer.question, 90) or s.answer.question_id
        items.append(_rec(
            title=f"Focus area: {question}",
            description=(
                f"This was one of your lowest-rated areas ({_fmt(s.value)}). Pick one change that "
                "would raise it by a single step, try it every day for two weeks, and then rate it "
                "again to see whether it moved."
            ),
            category="Focus area",
            priority=1 if s.score < 0.34 else 2 if s.score < 0.67 else 3,
            rationale=(
                f"You rated “{question}” at {_fmt(s.value)}, {_position(s.score)} of the scale you used."
            ),
        ))
        focus_names.append(_quote_free(s.answer.question, 60) or s.answer.question_id)
    flagged_ids = {s.index for s in flagged}
    strongest = max(scored, key=lambda s: (s.score, -s.index), default=None)
    if strongest is not None and strongest.index not in flagged_ids and strongest.score >= 0.5:
        question = _quote_free(strongest.answer.question, 90) or strongest.answer.question_id
        items.append(_rec(
            title=f"Build on your strength: {question}",
            description=(
                "This is your strongest area. Write down what you do that makes it work, and use the same "
                "habit or routine as a model for one of your focus areas."
            ),
            category="Strengths",
            priority=4,
            rationale=(
                f"You rated “{question}” at {_fmt(strongest.value)}, your highest score in this assessment."
            ),
        ))

    nos = [a for a in assessment.answers if a.answer is False][:MAX_NO_ANSWERS]
    for a in nos:
        question = _quote_free(a.question, 90) or a.question_id
        items.append(_rec(
            title=f"Revisit: {question}",
            description=(
                f"You answered “no” to “{question}”. If a “yes” here would serve you better, identify "
                "what stands in the way and choose one small step you can take this week to change it."
            ),
            category="Next step",
            priority=2,
            rationale=(
                f"A “no” to “{question}” points at something you may want to change or decide on "
                "deliberately."
            ),
        ))
        focus_names.append(_quote_free(a.question, 60) or a.question_id)

    lists = [(a, a.answer) for a in assessment.answers if isinstance(a.answer, list) and a.answer]
    for a, options in lists[:MAX_LIST_ANSWERS]:
        chosen = _quote_free(", ".join(options[:5]) + (", …" if len(options) > 5 else ""), 200)
        question = _quote_free(a.question, 90) or a.question_id
        items.append(_rec(
            title=f"Build on your choices: {_quote_free(', '.join(options[:3]), 90)}",
            description=(
                f"For “{question}” you chose: {chosen}. Pick the one that matters most to you right "
                "now and plan a specific time this week to act on it."
            ),
            category="Preferences",
            priority=3,
            rationale=f"Your choices for “{question}” show where your interest and energy already are.",
        ))

    texts = [a for a in assessment.answers if isinstance(a.answer, str) and a.answer.strip()]
    for a in texts[:MAX_TEXT_ANSWERS]:
        question = _quote_free(a.question, 90) or a.question_id
        items.append(_rec(
            title=f"Reflect on: {question}",
            description=(
                f"Re-read your answer to “{question}” and write down one concrete next step it suggests, "
                "with a date by which you will have taken it."
            ),
            category="Reflection",
            priority=3,
            rationale=f"Your own words on “{question}” are the most specific input this assessment has.",
        ))

    items.append(_rec(
        title="Check your progress in four weeks",
        description=(
            f"Take this {kind} assessment again in four weeks and compare the results with today's, "
            "starting with the focus areas above."
        ),
        category="Follow-up",
        priority=5,
        rationale="Repeating the assessment shows which changes worked and where to focus next.",
    ))

    ordered = sorted(items, key=lambda r: r.priority)[:MAX_RECOMMENDATIONS]
    return RecommendationSet(summary=_summary(assessment, kind, focus_names), recommendations=ordered)


def _scored(answers: list[Answer]) -> list[_Scored]:
    """Numeric answers placed on their scale: the one the question states, else one inferred."""
    numbers = [(i, a, v) for i, a in enumerate(answers) if (v := _finite(a.answer)) is not None]
    stated = {i: scale for i, a, v in numbers if (scale := _stated_scale(a.question)) and scale[0] <= v <= scale[1]}
    unstated = [v for i, _, v in numbers if i not in stated]
    inferred = _scale(min(unstated), max(unstated)) if unstated else (0.0, 0.0)
    scored = []
    for i, a, v in numbers:
        low, high = stated.get(i, inferred)
        span = high - low
        score = min(max((v - low) / span, 0.0), 1.0) if span > 0 and math.isfinite(span) else 0.5
        scored.append(_Scored(i, a, v, score))
    return scored


# "(1 = not at all, 5 = very)", "on a scale of 1-10", "de 1 a 5", "0 to 100": the question's own scale.
# Read with one left-to-right pass over tokens, never a backtracking regex: question text is the user's,
# and a pattern like (-?\d+)\s*= takes quadratic time on a long run of digits.
_RANGE_WORDS = frozenset({"-", "\u2013", "\u2014", "to", "a", "até", "bis", "à"})


def _tokens(text: str) -> list[tuple[str, str]]:
    """(kind, text) for each number ('num', with its sign), '=' ('eq'), dash or word ('word'), other
    character ('other'); a number next to a '.' is 'dec' (a decimal, never part of a scale)."""
    tokens: list[tuple[str, str]] = []
    i, n = 0, len(text)
    while i < n:
        char = text[i]
        if char.isspace():
            i += 1
        elif char.isdecimal() or (char == "-" and i + 1 < n and text[i + 1].isdecimal()
                                  and (i == 0 or not text[i - 1].isdecimal())):
            start = i
            i += 1
            while i < n and text[i].isdecimal():
                i += 1
            dotted = (start > 0 and text[start - 1] == ".") or (i < n and text[i] == ".")
            tokens.append(("dec" if dotted else "num", text[start:i]))
        elif char.isalpha():
            start = i
            while i < n and text[i].isalpha():
                i += 1
            tokens.append(("word", text[start:i].lower()))
        else:
            tokens.append(("eq" if char == "=" else "word" if char in _RANGE_WORDS else "other", char))
            i += 1
    return tokens


def _stated_scale(question: str) -> tuple[float, float] | None:
    tokens = _tokens(question)
    anchors = [float(value) for (kind, value), following in itertools.pairwise(tokens)
               if kind == "num" and following[0] == "eq"]
    if len(anchors) >= 2 and min(anchors) < max(anchors):
        return min(anchors), max(anchors)
    for (kind, low), (_, separator), (other, high) in zip(tokens, tokens[1:], tokens[2:], strict=False):
        if kind == other == "num" and separator in _RANGE_WORDS and float(low) < float(high):
            return float(low), float(high)
    return None


def _finite(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        as_float = float(value)
    except OverflowError:
        return None
    return as_float if math.isfinite(as_float) else None


def _scale(smallest: float, largest: float) -> tuple[float, float]:
    """The rating scale the person most likely used, inferred from the values they gave."""
    low = min(smallest, 1.0)
    if largest <= 5:
        return low, 5.0
    if largest <= 10:
        return low, 10.0
    if largest <= 100:
        return min(smallest, 0.0), 100.0
    return smallest, largest


def _position(score: float) -> str:
    if score < 0.34:
        return "in the lower third"
    if score < 0.67:
        return "in the middle"
    return "in the upper third"


def _summary(assessment: Assessment, kind: str, focus_names: list[str]) -> str:
    count = len(assessment.answers)
    plural = "s" if count != 1 else ""
    text = f"These recommendations are based on the {count} answer{plural} in your {kind} assessment."
    if focus_names:
        names = "; ".join(f"“{n}”" for n in focus_names[:4])
        text += f" The main focus areas are: {names}."
    else:
        text += " No area stood out as weak, so the focus is on keeping what works."
    text += " They were generated from your answers by fixed rules because the AI service was unavailable."
    return text


def _rec(*, title: str, description: str, category: str, priority: int, rationale: str) -> Recommendation:
    return Recommendation(
        title=_cap(title, 120), description=_cap(description, 1000), category=category,
        priority=priority, rationale=_cap(rationale, 600),
    )


def _quote_free(text: str, limit: int) -> str:
    """`text` on one line, without curly quotes that would nest confusingly, at most `limit` characters."""
    return _cap(" ".join(text.replace("“", "\"").replace("”", "\"").split()), limit)


def _cap(text: str, limit: int) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _fmt(value: float) -> str:
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.3g}"
