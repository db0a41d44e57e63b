"""Deterministic recommendations derived from the answers alone, used whenever the AI step fails.

Contract: `fallback_recommendations` is pure (same assessment, same result: no randomness, no clock),
never raises for a valid `Assessment`, and always returns 1-10 recommendations that satisfy
`worker.models.Recommendation`, sorted by priority (ties keep the order they were derived in), each
citing in `based_on` only the assessment's own question_ids and "goals".

The rules (docs/quality.md measures them with scripts/eval):
- A rating (a number with a scale) is judged on its scale in the direction the scale gives
  (`Answer.rating`): the worst rating in the worse half is priority 1 and comes first; a rating at the
  better end is never a focus area, one at the worse end never a strength.
- A quantity (a number without a scale) is judged only where a rule knows its unit (`UNIT_RULES`);
  otherwise it is not ranked and never called a rating. Scales written in the question's text are not
  read: a number without an explicit `scale` is a quantity.
- The text is in context.locale's language when worker/translations has it, else English with a sentence
  that says so (worker/locales.py). The person's words are quoted as they wrote them, on one line and
  bounded in length.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from worker.locales import LANGUAGES, Texts, load, texts_for
from worker.models import GOALS, Answer, Assessment, Recommendation, RecommendationSet

FALLBACK_VERSION = "fallback-v2"

# Where a rating sits on its scale (Answer.rating: 0 = the worse end, 1 = the better end).
WORST_QUARTER = 0.25
WORSE_HALF = 0.5
BETTER_QUARTER = 0.75

# At most ten recommendations; the caps keep every priority-1 and -2 item (focus areas, goals, quantities
# out of range, "no" answers: 3 + 3 + 2 + 2) inside the ten, so no goal is ever cut.
MAX_FOCUS_AREAS = 3
MAX_QUANTITIES = 2
MAX_NO_ANSWERS = 2
MAX_LIST_ANSWERS = 2
MAX_TEXT_ANSWERS = 2
MAX_RECOMMENDATIONS = 10
MAX_FOLLOW_UP_IDS = 10


@dataclass(frozen=True)
class UnitRule:
    """A quantity the rules may judge: its unit (as translations/*.toml [units] spell it) and the range
    outside which it deserves a recommendation."""

    name: str
    low: float
    high: float | None


# Adults' sleep: 7-9 hours (AASM/SRS consensus). Steps: about 7,000 a day or more goes with lower
# mortality (Lancet Public Health meta-analyses, 2022 and 2025).
UNIT_RULES = (UnitRule("sleep_hours", 7.0, 9.0), UnitRule("daily_steps", 7000.0, None))


@dataclass(frozen=True)
class _Rated:
    index: int
    answer: Answer
    rating: float


def fallback_recommendations(assessment: Assessment) -> RecommendationSet:
    """Useful, rule-abiding recommendations built from `assessment`'s answers and goals."""
    context = assessment.context
    texts, untranslated = texts_for(context.locale if context is not None else None)
    build = _Builder(texts)
    slug = assessment.assessment_type
    kind = texts.assessment_types.get(slug) or _one_line(slug.replace("_", " "), 60)
    goals = list(context.goals) if context is not None else []

    rated = sorted((_Rated(i, a, r) for i, a in enumerate(assessment.answers) if (r := a.rating) is not None),
                   key=lambda s: (s.rating, s.index))
    focus = [s for s in rated if s.rating < WORSE_HALF][:MAX_FOCUS_AREAS]
    for n, s in enumerate(focus):
        build.focus_area(s, priority=1 if n == 0 or s.rating <= WORST_QUARTER else 2)
    if not focus and rated and rated[0].rating < BETTER_QUARTER:
        build.room_to_grow(rated[0])
    build.goals(goals)
    judged = 0
    for a in assessment.answers:
        rule = _unit_rule(a.unit) if a.is_quantity else None
        if rule is not None and judged < MAX_QUANTITIES and build.quantity(a, rule):
            judged += 1
    for a in [a for a in assessment.answers if a.answer is False][:MAX_NO_ANSWERS]:
        build.revisit(a)
    for a in [a for a in assessment.answers if isinstance(a.answer, list) and a.answer][:MAX_LIST_ANSWERS]:
        build.choices(a)
    for a in [a for a in assessment.answers if isinstance(a.answer, str) and a.answer.strip()][:MAX_TEXT_ANSWERS]:
        build.reflect(a)
    best = max(rated, key=lambda s: (s.rating, -s.index), default=None)
    if best is not None and best.rating >= BETTER_QUARTER:
        build.strength(best)
    build.follow_up(kind, assessment.answers)

    ordered = sorted(build.items, key=lambda r: r.priority)[:MAX_RECOMMENDATIONS]
    summary = build.summary(kind, len(assessment.answers), goals, untranslated,
                            context.locale if context is not None else None)
    return RecommendationSet(summary=summary, recommendations=ordered)


class _Builder:
    """Collects recommendations in one language, and the names the summary lists."""

    def __init__(self, texts: Texts) -> None:
        self.t = texts
        self.items: list[Recommendation] = []
        self.focus_names: list[str] = []

    def _add(self, key: str, priority: int, based_on: list[str], *, description: str | None = None,
             rationale: str | None = None, category: str | None = None, **values: str) -> None:
        t = self.t
        self.items.append(Recommendation(
            title=_cap(t.format(f"{key}_title", **values), 120),
            description=_cap(description or t.format(f"{key}_description", **values), 1000),
            category=_cap(category or t.format(f"{key}_category"), 40),
            priority=priority,
            rationale=_cap(rationale or t.format(f"{key}_rationale", **values), 600),
            based_on=based_on,
        ))

    def _scale_values(self, s: _Rated) -> dict[str, str]:
        assert s.answer.scale is not None and s.answer.number is not None  # a rating has both
        return {"question": _question(s.answer), "value": self.t.number(s.answer.number),
                "min": self.t.number(s.answer.scale.min), "max": self.t.number(s.answer.scale.max)}

    def focus_area(self, s: _Rated, priority: int) -> None:
        values = self._scale_values(s)
        assert s.answer.scale is not None
        direction = "up" if s.answer.scale.higher_is_better else "down"
        position = "worst" if s.rating == 0 else "bad" if s.rating <= WORST_QUARTER else "weak"
        self._add("focus", priority, [s.answer.question_id],
                  description=self.t.format(f"focus_description_{direction}", **values),
                  rationale=self.t.format(f"focus_rationale_{position}", **values), **values)
        self.focus_names.append(_question(s.answer, 60))

    def room_to_grow(self, s: _Rated) -> None:
        self._add("grow", 3, [s.answer.question_id], **self._scale_values(s))

    def strength(self, s: _Rated) -> None:
        self._add("strength", 4, [s.answer.question_id], **self._scale_values(s))

    def goals(self, goals: list[str]) -> None:
        """One recommendation per goal for up to three goals; from four on, the others share one."""
        singles = ("goal_plan", "goal_measure", "goal_start") if len(goals) <= 3 else ("goal_plan", "goal_measure")
        category = self.t.format("goals_category")
        for key, goal in zip(singles, goals, strict=False):
            self._add(key, 1 if key == "goal_plan" else 2, [GOALS], category=category, goal=_one_line(goal, 80))
        if goals:
            self.focus_names.append(_one_line(goals[0], 60))
        if len(goals) > 3:
            others = self.t.quote_list([_one_line(goal, 80) for goal in goals[2:]])
            self._add("goal_rest", 2, [GOALS], category=category, goals=others)

    def quantity(self, a: Answer, rule: UnitRule) -> bool:
        """Adds a recommendation if `a` is outside `rule`'s range; returns whether it did."""
        value = a.number
        assert value is not None and a.unit is not None
        values = {"question": _question(a), "value": self.t.number(value), "unit": _one_line(a.unit, 40)}
        if value < rule.low:
            key = "sleep_short" if rule.name == "sleep_hours" else "steps_low"
        elif rule.high is not None and value > rule.high:
            key = "sleep_long"
        else:
            return False
        family = key.split("_", 1)[0]
        self._add(key, 2, [a.question_id], rationale=self.t.format(f"{family}_rationale", **values),
                  category=self.t.format(f"{family}_category"), **values)
        self.focus_names.append(_question(a, 60))
        return True

    def revisit(self, a: Answer) -> None:
        self._add("revisit", 2, [a.question_id], question=_question(a))
        self.focus_names.append(_question(a, 60))

    def choices(self, a: Answer) -> None:
        assert isinstance(a.answer, list)
        options = [_one_line(option, 60) for option in a.answer]
        listed = self.t.quote_list(options[:5]) + (self.t.list_separator + "…" if len(options) > 5 else "")
        self._add("choices", 3, [a.question_id], description=self.t.format(
            "choices_description", question=_question(a), choices=listed),
            question=_question(a), choices=self.t.quote_list(options[:3]))

    def reflect(self, a: Answer) -> None:
        self._add("reflect", 3, [a.question_id], question=_question(a))

    def follow_up(self, kind: str, answers: list[Answer]) -> None:
        cited = [i for r in self.items for i in r.based_on if i != GOALS]
        based_on = list(dict.fromkeys(cited))[:MAX_FOLLOW_UP_IDS] or [answers[0].question_id]
        self._add("followup", 5, based_on, kind=kind)

    def summary(self, kind: str, count: int, goals: list[str], untranslated: bool, locale: str | None) -> str:
        t = self.t
        parts = [t.format("summary_intro_one", kind=kind) if count == 1
                 else t.format("summary_intro_other", kind=kind, count=str(count))]
        names = list(dict.fromkeys(self.focus_names))[:4]
        parts.append(t.format("summary_focus", names=t.quote_list(names)) if names
                     else t.format("summary_no_focus"))
        parts.append(t.format("summary_fallback"))
        if untranslated:
            parts.append(t.format("summary_untranslated", locale=_one_line(locale or "", 35)))
        return _cap(" ".join(parts), 2000)


@cache
def _unit_aliases() -> dict[str, str]:
    """Every spelling of every rule's unit in every language, normalised -> the rule's name."""
    return {_unit_key(alias): name for language in LANGUAGES
            for name, aliases in load(language).units.items() for alias in aliases}


def _unit_key(unit: str) -> str:
    return "".join(unit.casefold().split())


def _unit_rule(unit: str | None) -> UnitRule | None:
    name = _unit_aliases().get(_unit_key(unit)) if unit else None
    return next((rule for rule in UNIT_RULES if rule.name == name), None)


def _question(answer: Answer, limit: int = 90) -> str:
    return _one_line(answer.question, limit) or answer.question_id


def _one_line(text: str, limit: int) -> str:
    """The person's words as they wrote them, on one line and at most `limit` characters."""
    return _cap(" ".join(text.split()), limit)


def _cap(text: str, limit: int) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"
