"""The contract in docs/ is what worker/events.py and worker/models.py generate (scripts/gen-contract)."""

from __future__ import annotations

import re
import typing
from pathlib import Path

import pytest

from devkit.contract import CONTENT_MODELS, GENERATED, render, typescript_block, typescript_interfaces
from worker.events import AssessmentStatusChanged


@pytest.mark.parametrize("doc", sorted(GENERATED), ids=lambda path: path.name)
def test_generated_contract_blocks_are_up_to_date(doc: Path) -> None:
    text = doc.read_text()
    assert render(text, GENERATED[doc], doc) == text, f"{doc} is out of date: run scripts/gen-contract"


def test_typescript_types_carry_every_field_with_its_nullability() -> None:
    block = typescript_block(AssessmentStatusChanged)

    for name, field in AssessmentStatusChanged.model_fields.items():
        nullable = type(None) in typing.get_args(field.annotation)
        line = next(line for line in block.splitlines() if line.startswith(f"  {name}: "))
        assert line.endswith(" | null") == nullable, line


def test_content_types_carry_every_field_optional_exactly_when_it_has_a_default() -> None:
    block = typescript_interfaces(CONTENT_MODELS)
    for model in CONTENT_MODELS:
        for name, field in model.model_fields.items():
            optional = not field.is_required()
            assert re.search(rf"^  {name}{'[?]' if optional else ''}: ", block, flags=re.M), (model.__name__, name)
    # Absent, never null: the database refuses "scale": null and stores no nulls in these objects.
    assert "null" not in block
    assert "  based_on?: string[]" in block and "  scale?: AnswerScale" in block
