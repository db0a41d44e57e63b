"""worker.stream_parse: the elements of `recommendations`, found while the answer streams in, however it is cut."""

from __future__ import annotations

import json
import random

import pytest

from worker.stream_parse import RecommendationScanner

ANSWER = {
    "summary": 'A "quoted" summary with {braces}, [brackets], a colon: and a backslash \\ in it.',
    "recommendations": [
        {"title": 'Close with }"\\', "description": "Nested {\"a\": [1, {\"b\": 2}]}", "priority": 1,
         "based_on": ["q1", "goals"], "extra": {"deep": [[{}], {"x": "]}"}]}},
        {"title": "Second \u00e9 \u4e2d \U0001F600", "priority": 2},
        {"title": "Third", "priority": 3},
    ],
    "trailing": [{"not": "a recommendation"}],
}


def scan(text: str, cuts: list[int]) -> list[str]:
    scanner = RecommendationScanner()
    found: list[str] = []
    start = 0
    for end in [*cuts, len(text)]:
        found += scanner.feed(text[start:end])
        start = end
    return found


@pytest.mark.parametrize("ensure_ascii", [True, False])
def test_every_element_is_found_once_in_order_however_the_text_is_cut(ensure_ascii: bool) -> None:
    text = json.dumps(ANSWER, ensure_ascii=ensure_ascii)
    rng = random.Random(19)
    for _ in range(500):
        cuts = sorted(rng.sample(range(1, len(text)), rng.randint(1, 40)))
        assert [json.loads(e) for e in scan(text, cuts)] == ANSWER["recommendations"]
    # one character at a time: every escape and quote split from what follows it
    assert [json.loads(e) for e in scan(text, list(range(1, len(text))))] == ANSWER["recommendations"]


def test_an_element_is_returned_by_the_piece_that_closes_it() -> None:
    scanner = RecommendationScanner()
    assert scanner.feed('{"summary": "s", "recommendations": [{"title": "one"') == []
    assert scanner.feed('}, {"title"') == ['{"title": "one"}']
    assert scanner.feed(': "two"}]}') == ['{"title": "two"}']


def test_whitespace_and_key_order_do_not_matter() -> None:
    text = '{\n  "recommendations" :\n  [\n    { "a" : 1 } ,\n    {"b":2}\n  ],\n  "summary": "later"\n}'
    assert scan(text, [7, 30]) == ['{ "a" : 1 }', '{"b":2}']


@pytest.mark.parametrize("text", [
    '{"summary": {"recommendations": [{"a": 1}]}}',  # the key, but not at the top level
    '{"summary": "recommendations", "other": [{"a": 1}]}',  # the word as a value
    '{"recommendations": {"a": {"b": 1}}}',  # not an array
    '[{"recommendations": [{"a": 1}]}]',  # not an object at the top
    '{"recommendations": [1, "two", [3]]}',  # no objects in it
])
def test_only_objects_in_the_top_level_recommendations_array_count(text: str) -> None:
    assert scan(text, []) == []


@pytest.mark.parametrize("text", [
    "not json at all } ] { [",
    '{"recommendations": [' + "[" * 5000 + "]" * 5000 + "]}",
    '{"recommendations": [{"a": "unterminated',
    "\x00\ud800" * 100,
    '{"summary": "x", "recommendations": [{"a":1}' + "}" * 50 + "]" * 50,
])
def test_input_that_is_not_an_answer_never_raises(text: str) -> None:
    scan(text, [len(text) // 3])
