"""docs/frontend.md stays true: its TypeScript row types match the live schema.

The row types' `ts` block is parsed (one field a line: `name?: type`) and compared with
information_schema.columns, the enum labels in pg_enum and the columns `authenticated` may insert. (The
Broadcast payload's types and those of the JSON columns' content are generated from worker/events.py and
worker/models.py; tests/unit/test_contract.py covers them.)
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import psycopg
import pytest

from devkit import REPO

DOC = REPO / "docs" / "frontend.md"
PRIMITIVES = {"string", "number", "boolean"}
# Postgres type -> TypeScript type as PostgREST serialises it to JSON.
SCALARS = {
    "uuid": "string",
    "text": "string",
    "integer": "number",
    "bigint": "number",
    "timestamp with time zone": "string",
    "date": "string",
}


@dataclass(frozen=True)
class Field:
    name: str
    optional: bool
    types: frozenset[str]  # union members, `null` included

    @property
    def nullable(self) -> bool:
        return "null" in self.types

    @property
    def non_null(self) -> frozenset[str]:
        return self.types - {"null"}


def typescript_block() -> str:
    blocks = re.findall(r"```ts\n(.*?)```", DOC.read_text(), flags=re.S)
    typed = [b for b in blocks if "export interface TestAssessment " in b]
    assert len(typed) == 1, "docs/frontend.md must hold exactly one ```ts block with the row types"
    return str(typed[0])


def declared_names() -> set[str]:
    """Types declared in any ts block of the page: the JSON column types are generated from worker/models.py
    (scripts/gen-contract, checked by tests/unit/test_contract.py) into a block of their own."""
    return set(re.findall(r"^export (?:interface|type) (\w+)", DOC.read_text(), flags=re.M))


def split_union(text: str) -> frozenset[str]:
    return frozenset(part.strip() for part in text.split("|"))


def interfaces() -> dict[str, dict[str, Field]]:
    found: dict[str, dict[str, Field]] = {}
    for name, body in re.findall(r"export interface (\w+) \{\n(.*?)\n\}", typescript_block(), flags=re.S):
        fields: dict[str, Field] = {}
        for line in body.splitlines():
            line = line.split("//")[0].strip()
            if not line:
                continue
            match = re.fullmatch(r"(\w+)(\?)?: (.+?);?", line)
            assert match, f"{name}: cannot parse field line {line!r}"
            fields[match[1]] = Field(match[1], bool(match[2]), split_union(match[3]))
        found[name] = fields
    return found


def aliases() -> dict[str, frozenset[str]]:
    return {
        name: split_union(value)
        for name, value in re.findall(r"export type (\w+) = (.+)", typescript_block())
    }


def columns(admin: psycopg.Connection, table: str) -> dict[str, tuple[str, str, bool, bool]]:
    """name -> (data_type, udt_name, nullable, has_default)"""
    rows = admin.execute(
        "select column_name, data_type, udt_name, is_nullable = 'YES', column_default is not null"
        " from information_schema.columns where table_schema = 'public' and table_name = %s",
        (table,),
    ).fetchall()
    return {r[0]: (r[1], r[2], r[3], r[4]) for r in rows}


def enum_labels(admin: psycopg.Connection, type_name: str) -> frozenset[str]:
    rows = admin.execute(
        "select e.enumlabel from pg_enum e join pg_type t on t.oid = e.enumtypid"
        " join pg_namespace n on n.oid = t.typnamespace where n.nspname = 'public' and t.typname = %s",
        (type_name,),
    ).fetchall()
    return frozenset(f"'{r[0]}'" for r in rows)


def check_type(admin: psycopg.Connection, where: str, field: Field, data_type: str, udt_name: str) -> None:
    declared = field.non_null
    if data_type == "USER-DEFINED":
        (alias,) = declared
        labels = aliases().get(alias)
        assert labels is not None, f"{where}: type {alias} is not declared in the ts block"
        assert labels == enum_labels(admin, udt_name), f"{where}: {alias} differs from enum {udt_name}"
    elif data_type == "jsonb":
        assert declared and not declared <= PRIMITIVES, f"{where}: jsonb should be a structured type"
        names = {t.removesuffix("[]") for t in declared}
        known = declared_names()
        assert names <= known, f"{where}: {names - known} are not declared in docs/frontend.md"
    else:
        assert data_type in SCALARS, f"{where}: no TypeScript mapping for {data_type}; extend SCALARS"
        assert declared == {SCALARS[data_type]}, f"{where}: {set(declared)} != {SCALARS[data_type]!r}"


@pytest.mark.parametrize(
    ("interface", "table"),
    [("TestAssessment", "test_assessment"), ("ResultTest", "result_test"), ("AiUsage", "ai_usage")],
)
def test_frontend_row_type_matches_table(admin: psycopg.Connection, interface: str, table: str) -> None:
    fields = interfaces()[interface]
    live = columns(admin, table)

    assert set(fields) == set(live), f"{interface} fields differ from public.{table} columns"
    for name, (data_type, udt_name, nullable, _) in live.items():
        field = fields[name]
        where = f"{interface}.{name}"
        assert not field.optional, f"{where}: a row always has every column"
        assert field.nullable == nullable, f"{where}: nullable in the database is {nullable}"
        check_type(admin, where, field, data_type, udt_name)


def test_frontend_insert_type_matches_what_a_user_may_insert(admin: psycopg.Connection) -> None:
    fields = interfaces()["TestAssessmentInsert"]
    insertable = {
        r[0]
        for r in admin.execute(
            "select column_name from information_schema.column_privileges where table_schema = 'public'"
            " and table_name = 'test_assessment' and grantee = 'authenticated' and privilege_type = 'INSERT'"
        ).fetchall()
    }
    live = columns(admin, "test_assessment")

    assert set(fields) == insertable
    for name in insertable:
        data_type, udt_name, nullable, has_default = live[name]
        field = fields[name]
        where = f"TestAssessmentInsert.{name}"
        assert field.optional == (nullable or has_default), f"{where}: optional iff nullable or defaulted"
        assert field.nullable == nullable, f"{where}: nullable in the database is {nullable}"
        check_type(admin, where, field, data_type, udt_name)
