"""`scripts/eval`: score a recommender on the assessments in tests/eval/ with rules that need no model.

    scripts/eval                   the fallback rules (what every user reads when the AI is unavailable)
    scripts/eval --ai              the model the worker would call: OPENAI_API_KEY, OPENAI_BASE_URL (any
                                   OpenAI-compatible server; default OpenAI), OPENAI_MODEL, AI_DEADLINE_SECONDS,
                                   from the environment or .env
    scripts/eval --json            print {"<recommender>": {"overall": 0..1, "assessments": n, "rules": {...}}}
    scripts/eval --fail-under 1.0  exit 1 when the overall score is below 1.0 (CI runs this on the fallback)
    scripts/eval --show            also print every result that broke a rule, as the user would read it
    scripts/eval --cases DIR       score another folder of assessments (insert bodies) instead of tests/eval

A rule's score is the share of the assessments it applies to that pass it; `overall` is the share of all
(assessment, rule) checks that pass. The AI is scored on its answer as validated by the worker, before
the worker drops ids the assessment does not have (so an invented id shows); an AI call that fails
(timeout, refusal, invalid output...) fails every rule for that assessment, with the reason.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

from dotenv import load_dotenv

from devkit import REPO
from devkit.clients.output import format_result
from devkit.eval.cases import CASES, Case, CaseError, load_cases
from devkit.eval.rules import RULE_NAMES, Verdict, failed_all, score
from devkit.run_local.display import say, wrap
from worker.ai import Recommender
from worker.config import load_settings
from worker.exceptions import AiUnavailable, ConfigError
from worker.fallback import fallback_recommendations
from worker.models import RecommendationSet
from worker.prompt import build_prompt

EXIT_OK, EXIT_BELOW, EXIT_USAGE = 0, 1, 2
AI_IN_FLIGHT = 4  # gentle on a provider's rate limits; the eval is not a benchmark


@dataclass
class Scored:
    case: Case
    verdicts: dict[str, Verdict]
    result: RecommendationSet | None = None
    error: str | None = None


@dataclass
class Report:
    recommender: str
    scored: list[Scored] = field(default_factory=list)

    def rule_scores(self) -> dict[str, float]:
        scores = {}
        for name in RULE_NAMES:
            verdicts = [s.verdicts[name] for s in self.scored if name in s.verdicts]
            scores[name] = round(sum(v.passed for v in verdicts) / len(verdicts), 4) if verdicts else 1.0
        return scores

    def overall(self) -> float:
        verdicts = [v for s in self.scored for v in s.verdicts.values()]
        return round(sum(v.passed for v in verdicts) / len(verdicts), 4) if verdicts else 1.0

    def as_json(self) -> dict[str, object]:
        return {self.recommender: {"overall": self.overall(), "assessments": len(self.scored),
                                   "rules": self.rule_scores()}}


def run_fallback(cases: list[Case]) -> Report:
    report = Report("fallback")
    for case in cases:
        result = fallback_recommendations(case.assessment)
        report.scored.append(Scored(case, score(case.assessment, result), result))
    return report


async def run_ai(cases: list[Case], recommender: Recommender) -> Report:
    gate = asyncio.Semaphore(AI_IN_FLIGHT)

    async def one(case: Case) -> Scored:
        async with gate:
            try:
                result = await recommender.recommend(build_prompt(case.assessment))
            except AiUnavailable as exc:
                reason = f"the AI gave no result: {exc.reason}"
                return Scored(case, failed_all(case.assessment, reason), error=f"{exc.reason}: {exc}")
        return Scored(case, score(case.assessment, result.recommendations), result.recommendations)

    try:
        return Report("ai", list(await asyncio.gather(*(one(case) for case in cases))))
    finally:
        await recommender.aclose()


def ai_recommender() -> Recommender:
    """The Recommender the worker would build from the same settings (the database is not needed here)."""
    load_dotenv(REPO / ".env", override=False)
    settings = load_settings(database_url="unused-by-scripts-eval")
    if settings.openai_api_key is None:
        raise ConfigError("OPENAI_API_KEY is not set. Set it (and OPENAI_BASE_URL for a server other than "
                          "OpenAI, OPENAI_MODEL for the model) to score a model with --ai.")
    return Recommender(api_key=settings.openai_api_key.get_secret_value(), base_url=settings.openai_base_url,
                       model=settings.openai_model, deadline_seconds=settings.ai_deadline_seconds)


def describe(report: Report, show: bool) -> str:
    lines = [f"{report.recommender}: overall {report.overall():.3f} over {len(report.scored)} assessments"]
    for name, value in report.rule_scores().items():
        applied = sum(name in s.verdicts for s in report.scored)
        lines.append(f"  {name:<13} {value:.3f}  ({applied} apply)")
    failing = [s for s in report.scored if not all(v.passed for v in s.verdicts.values())]
    if failing:
        lines.append("where it goes wrong:")
    for s in failing:
        for name, verdict in s.verdicts.items():
            if not verdict.passed:
                lines.append(f"  {s.case.name}: {name}: {verdict.reason}")
        if show and s.result is not None:
            lines.append(wrap("\n".join("    " + line for line in format_result(
                s.result.model_dump(mode="json")).splitlines())))
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="scripts/eval", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ai", action="store_true", help="score the AI (OPENAI_* settings) instead of the fallback")
    parser.add_argument("--json", action="store_true", help="print the scores as JSON")
    parser.add_argument("--fail-under", type=float, default=None, metavar="SCORE",
                        help="exit 1 if the overall score is below SCORE (0..1)")
    parser.add_argument("--show", action="store_true", help="print the results that broke a rule")
    parser.add_argument("--cases", type=Path, default=CASES, help="folder of assessment files (default tests/eval)")
    args = parser.parse_args(argv)
    try:
        cases = load_cases(args.cases)
        report = asyncio.run(run_ai(cases, ai_recommender())) if args.ai else run_fallback(cases)
    except (CaseError, ConfigError) as exc:
        print(f"scripts/eval: {exc}", file=sys.stderr)
        return EXIT_USAGE
    say(json.dumps(report.as_json()) if args.json else describe(report, args.show))
    if args.fail_under is not None and report.overall() < args.fail_under:
        print(f"scripts/eval: {report.recommender} scored {report.overall():.3f}, below {args.fail_under:g}.",
              file=sys.stderr)
        return EXIT_BELOW
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
