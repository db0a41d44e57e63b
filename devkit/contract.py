"""Writes the contract into the docs from its one source: worker/events.py for the events, worker/models.py
for what an answer and a recommendation hold.

    scripts/gen-contract           rewrite the generated blocks in docs/events.md and docs/frontend.md
    scripts/gen-contract --check   exit 1 (and say which file) if a generated block is out of date

Each generated block sits between `<!-- generated: <name> -->` and `<!-- end generated: <name> -->`;
the rest of the page is prose and stays as written. docs/events.md gets the JSON Schema of every event
and of an answer and a recommendation; docs/frontend.md gets their TypeScript types and a runtime check
of the Broadcast payload.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from devkit import REPO
from worker.events import AssessmentStatusChanged, AssessmentSubmitted, RecommendationStreamed
from worker.models import Answer, AnswerScale, AssessmentContext, Recommendation

EVENTS_DOC = REPO / "docs" / "events.md"
FRONTEND_DOC = REPO / "docs" / "frontend.md"
EVENTS_MODULE = "src/assessment-events.ts"  # what docs/frontend.md's snippets import the payload types from
CONTENT_MODULE = "src/assessment-content.ts"  # the jsonb columns' content types
DRAFTS_MODULE = "src/assessment-drafts.ts"  # the streamed draft's payload (it imports the content types)


def json_schema_block(model: type[BaseModel]) -> str:
    name = model.model_config.get("title") or model.__name__
    return f"```json {name}\n{json.dumps(model.model_json_schema(), indent=2)}\n```"


def _ts_type(schema: dict[str, Any]) -> str:
    if "$ref" in schema:
        return str(schema["$ref"]).rsplit("/", 1)[-1]
    if "anyOf" in schema:
        return " | ".join(dict.fromkeys(_ts_type(option) for option in schema["anyOf"]))
    if schema.get("type") == "array":
        item = _ts_type(schema["items"])
        return f"{item}[]" if item.isidentifier() else f"({item})[]"
    if "const" in schema:
        return json.dumps(schema["const"]).replace('"', "'")
    if "enum" in schema:
        return " | ".join(json.dumps(value).replace('"', "'") for value in schema["enum"])
    return {"string": "string", "integer": "number", "number": "number", "boolean": "boolean",
            "null": "null"}[schema["type"]]


def _ts_check(expression: str, schema: dict[str, Any]) -> str:
    """A TypeScript boolean expression that holds exactly when `expression` fits `schema`."""
    if "anyOf" in schema:
        return "(" + " || ".join(_ts_check(expression, option) for option in schema["anyOf"]) + ")"
    if "$ref" in schema:  # a nested model: its fields are the server's, checked where it was validated
        return f"(typeof {expression} === 'object' && {expression} !== null)"
    if "const" in schema:
        return f"{expression} === {_ts_type(schema)}"
    if "enum" in schema:
        return f"[{', '.join(_ts_type({'const': v}) for v in schema['enum'])}].includes({expression} as never)"
    if schema["type"] == "integer":
        return f"Number.isInteger({expression})"
    if schema["type"] == "null":
        return f"{expression} === null"
    return f"typeof {expression} === '{_ts_type(schema)}'"


def typescript_block(model: type[BaseModel], module: str = EVENTS_MODULE) -> str:
    """An interface for `model` and `is<Name>(value)`, which checks a received payload against it, as the
    app module `module` (its first line names it, so other snippets import it: scripts/check-docs-ts).
    Nested models are imported from CONTENT_MODULE."""
    schema = model.model_json_schema()
    nested = sorted(schema.get("$defs", {}))
    imports = (f"import type {{ {', '.join(nested)} }} from './{Path(CONTENT_MODULE).stem}'\n\n" if nested else "")
    name = model.__name__
    fields = [f"  /** {sub['description']} */\n  {prop}: {_ts_type(sub)}" if sub.get("description")
              else f"  {prop}: {_ts_type(sub)}" for prop, sub in schema["properties"].items()]
    keys = ", ".join(f"'{prop}'" for prop in schema["properties"])
    checks = "\n".join(f"    && {_ts_check(f'v.{prop}', sub)}" for prop, sub in schema["properties"].items())
    return (
        f"```ts\n// {module}\n{imports}/** {schema['description']} */\nexport interface {name} {{\n" + "\n".join(fields)
        + "\n}\n\n"
        f"/** Whether a received payload is an {name} (Realtime's own `id` is ignored). */\n"
        f"export function is{name}(value: unknown): value is {name} {{\n"
        "  if (typeof value !== 'object' || value === null) return false\n"
        "  const v = value as Record<string, unknown>\n"
        f"  return Object.keys(v).every((key) => key === 'id' || [{keys}].includes(key))\n"
        f"{checks}\n}}\n```"
    )


# The JSON a user writes into test_assessment.answers / .context and reads from result_test.recommendations.
CONTENT_MODELS: tuple[type[BaseModel], ...] = (AnswerScale, Answer, AssessmentContext, Recommendation)


def typescript_interfaces(models: tuple[type[BaseModel], ...], module: str = CONTENT_MODULE) -> str:
    """One interface per model, as the app module `module` (its first line names it); a field with a default
    is optional (`name?: type`)."""
    blocks = []
    for model in models:
        schema = model.model_json_schema()
        required = set(schema.get("required", ()))
        fields = []
        for prop, sub in schema["properties"].items():
            optional = prop not in required
            doc = f"  /** {sub['description']} */\n" if sub.get("description") else ""
            fields.append(f"{doc}  {prop}{'?' if optional else ''}: {_ts_type(sub)}")
        blocks.append(f"/** {schema['description']} */\nexport interface {model.__name__} {{\n" + "\n".join(fields)
                      + "\n}")
    return f"```ts\n// {module}\n" + "\n\n".join(blocks) + "\n```"


GENERATED: dict[Path, dict[str, Callable[[], str]]] = {
    EVENTS_DOC: {
        "assessment_submitted schema": lambda: json_schema_block(AssessmentSubmitted),
        "assessment_status_changed schema": lambda: json_schema_block(AssessmentStatusChanged),
        "recommendation_streamed schema": lambda: json_schema_block(RecommendationStreamed),
        "answer schema": lambda: json_schema_block(Answer),
        "recommendation schema": lambda: json_schema_block(Recommendation),
    },
    FRONTEND_DOC: {
        "content types": lambda: typescript_interfaces(CONTENT_MODELS),
        "status event types": lambda: typescript_block(AssessmentStatusChanged),
        "draft event types": lambda: typescript_block(RecommendationStreamed, DRAFTS_MODULE),
    },
}


def render(text: str, blocks: dict[str, Callable[[], str]], source: Path) -> str:
    """`text` with every generated block replaced by its current content."""
    for name, make in blocks.items():
        pattern = re.compile(rf"(<!-- generated: {re.escape(name)} -->\n)(?:.*?\n)?(<!-- end generated: "
                             rf"{re.escape(name)} -->)", re.S)
        match = pattern.search(text)
        if not match:
            raise SystemExit(f"{source}: no '<!-- generated: {name} -->' ... '<!-- end generated: {name} -->' "
                             "markers; add them where the block belongs.")
        text = text[: match.end(1)] + make() + "\n" + text[match.start(2):]
    return text


def main(argv: list[str]) -> int:
    check = argv == ["--check"]
    if argv and not check:
        print("usage: scripts/gen-contract [--check]", file=sys.stderr)
        return 2
    stale = []
    for path, blocks in GENERATED.items():
        current = path.read_text()
        wanted = render(current, blocks, path)
        if wanted != current:
            stale.append(path.relative_to(REPO))
            if not check:
                path.write_text(wanted)
    if check and stale:
        print(f"out of date: {', '.join(map(str, stale))}. Run 'scripts/gen-contract'.", file=sys.stderr)
        return 1
    if not check:
        print("updated: " + ", ".join(map(str, stale)) if stale else "up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
