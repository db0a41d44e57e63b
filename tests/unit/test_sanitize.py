"""worker.sanitize: the one sanitiser for every text the worker stores (AI, cache, fallback), with
property tests over any text and the fallback quoting hostile words."""

from __future__ import annotations

import time
import unicodedata

from hypothesis import given
from hypothesis import strategies as st

from tests.factories import assessment
from worker.models import RecommendationSet
from worker.pipeline import fallback_outcome
from worker.sanitize import clean_recommendations, storable

BIDI_CONTROLS = {chr(c) for c in [*range(0x202A, 0x202F), *range(0x2066, 0x206A)]}


def forbidden(char: str) -> bool:
    """What no stored text may hold: C0/C1 controls but newline and tab, bidi overrides and isolates,
    lone surrogates."""
    return ((unicodedata.category(char) == "Cc" and char not in "\n\t") or char in BIDI_CONTROLS
            or unicodedata.category(char) == "Cs")


def texts(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [t for item in value for t in texts(item)]
    if isinstance(value, dict):
        return [t for key, item in value.items() for t in (*texts(key), *texts(item))]
    return []


def test_storable_drops_control_characters_and_bidi_controls_and_replaces_unpaired_surrogates() -> None:
    assert storable("a\u0000b\u0007c\u001b[0m\u007f\u009b") == "abc[0m"
    assert storable("tab\tnew\nline\r") == "tab\tnew\nline"
    assert storable("\u202eevil\u202c \u2066iso\u2069") == "evil iso"
    assert storable("half \ud83d pair") == "half \ufffd pair"
    assert storable("emoji \U0001F600, Arabic \u0627\u0644, zero-width joiner \u200d ok") == (
        "emoji \U0001F600, Arabic \u0627\u0644, zero-width joiner \u200d ok")


def test_storable_walks_lists_and_objects_keys_included() -> None:
    hostile = {"ti\u0000tle": ["x\u0000", 3, None, {"y": "\ud800"}]}
    assert storable(hostile) == {"title": ["x", 3, None, {"y": "\ufffd"}]}


@given(st.text())
def test_storable_leaves_nothing_forbidden_keeps_the_rest_in_order_and_is_idempotent(text: str) -> None:
    cleaned = storable(text)
    assert not any(forbidden(c) for c in cleaned)
    assert cleaned == "".join("\ufffd" if unicodedata.category(c) == "Cs" else c
                              for c in text if not forbidden(c) or unicodedata.category(c) == "Cs")
    assert storable(cleaned) == cleaned


hostile_text = st.text(alphabet=st.sampled_from(["a", " ", "é", "\x1b", "\x07", "\r", "\x9b", "\u202e", "\u2066",
                                                 "\u200f", "\n", "\t"]), min_size=1, max_size=80)


@given(question=hostile_text.filter(lambda t: t.strip()), words=hostile_text.filter(lambda t: t.strip()))
def test_the_fallback_stores_nothing_forbidden_whatever_the_user_wrote(question: str, words: str) -> None:
    hostile = assessment(answers=[
        {"question_id": "q1", "question": question, "answer": 1},
        {"question_id": "q2", "question": question, "answer": words},
        {"question_id": "q3", "question": question, "answer": False},
        {"question_id": "q4", "question": question, "answer": [words]},
    ], context={"goals": [words], "notes": words})
    outcome = fallback_outcome(hostile, "not_configured", time.perf_counter())
    stored = texts(outcome.recommendations.model_dump(mode="json"))
    assert stored and not any(forbidden(c) for text in stored for c in text)


def test_the_fallback_quotes_the_users_words_unchanged_but_for_what_is_forbidden() -> None:
    hostile = assessment(answers=[{"question_id": "q1", "question": "Ring\x07 the \u202ebell\u202c?", "answer": False}])
    outcome = fallback_outcome(hostile, "not_configured", time.perf_counter())
    assert any("Ring the bell?" in text for text in texts(outcome.recommendations.model_dump(mode="json")))


def test_clean_recommendations_cleans_a_cached_set() -> None:
    cached = RecommendationSet.model_validate({"summary": "A summary \x1b[31mred\x1b[0m, ten+.", "recommendations": [
        {"title": "Ti\u202etle", "description": "Do\r this every day.", "category": "Cat",
         "priority": 1, "rationale": "Because\x07 of it."}]})
    cleaned = clean_recommendations(cached)
    assert cleaned.summary == "A summary [31mred[0m, ten+."
    item = cleaned.recommendations[0]
    assert (item.title, item.description, item.rationale) == ("Title", "Do this every day.", "Because of it.")
