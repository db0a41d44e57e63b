"""The assessments the eval runs: tests/eval/*.json, each an insert body of public.test_assessment."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from devkit import REPO
from worker.models import Assessment

CASES = REPO / "tests" / "eval"
BODY_KEYS = {"assessment_type", "answers", "context"}
_NAMESPACE = uuid.UUID("3f1d2c4e-8a7b-4c6d-9e0f-1a2b3c4d5e6f")


@dataclass(frozen=True)
class Case:
    name: str  # the file's stem
    body: dict[str, object]
    assessment: Assessment


class CaseError(Exception):
    """A case file is unusable; the message names it and says why."""


def load_cases(folder: Path = CASES) -> list[Case]:
    """Every *.json in `folder`, by name, as the worker would load it from the database."""
    paths = sorted(folder.glob("*.json"))
    if not paths:
        raise CaseError(f"No *.json assessments in {folder}. Point --cases at a folder of insert bodies.")
    return [_load(path) for path in paths]


def _load(path: Path) -> Case:
    try:
        body = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CaseError(f"{path}: not readable JSON ({exc}).") from exc
    if not isinstance(body, dict) or not set(body) <= BODY_KEYS or "answers" not in body:
        raise CaseError(f"{path}: expected an object with {sorted(BODY_KEYS)}, as inserted into test_assessment.")
    try:
        assessment = Assessment.model_validate({
            **body, "id": uuid.uuid5(_NAMESPACE, path.stem), "user_id": uuid.uuid5(_NAMESPACE, "eval"),
            "status": "queued", "attempts": 0, "created_at": "2026-12-08T12:00:00+00:00",
        })
    except ValidationError as exc:
        raise CaseError(f"{path}: not a valid assessment: {exc.errors()[0]['msg']}.") from exc
    return Case(path.stem, body, assessment)
