"""The event contract in docs/ is what worker/events.py generates (scripts/gen-contract)."""

from __future__ import annotations

import typing
from pathlib import Path

import pytest

from devkit.contract import GENERATED, render, typescript_block
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
