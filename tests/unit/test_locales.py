"""The translations a translator edits: complete, with the same placeholders as English, and a slip in one
never breaks the fallback."""

from __future__ import annotations

import tomllib
from importlib import resources

import pytest

from worker import locales
from worker.locales import LANGUAGES, language_of, load, placeholders, texts_for

ENGLISH_ONLY = {"summary_untranslated"}  # only ever written in English (worker/translations/en.toml)


def _raw(language: str) -> dict[str, object]:
    path = resources.files("worker") / "translations" / f"{language}.toml"
    return tomllib.loads(path.read_text(encoding="utf-8"))


@pytest.mark.parametrize("language", LANGUAGES)
def test_translation_has_every_english_text_with_the_same_placeholders(language: str) -> None:
    english: dict[str, str] = _raw("en")["text"]  # type: ignore[assignment]
    translated: dict[str, str] = _raw(language)["text"]  # type: ignore[assignment]
    expected = set(english) - (ENGLISH_ONLY if language != "en" else set())
    assert set(translated) == expected, f"{language}.toml: missing {expected - set(translated)}, " \
                                        f"unknown {set(translated) - expected}"
    for key in expected:
        assert placeholders(translated[key]) == placeholders(english[key]), f"{language}.toml: {key}"
        assert placeholders(translated[key]) is not None, f"{language}.toml: {key} is not a plain template"


@pytest.mark.parametrize("language", LANGUAGES)
def test_translation_has_the_same_types_and_units_as_english(language: str) -> None:
    texts = load(language)
    assert set(texts.assessment_types) == set(load("en").assessment_types)
    assert set(texts.units) == set(load("en").units)
    assert "{text}" in texts.quoted and texts.decimal_separator in (".", ",")


def test_placeholders_accept_only_plain_names() -> None:
    assert placeholders("A {question} and {value}.") == frozenset({"question", "value"})
    assert placeholders("No braces {{here}}.") == frozenset()
    for bad in ("{a.__class__}", "{a[0]}", "{a!r}", "{a:>9}", "{", "}", "{0}"):
        assert placeholders(bad) is None, bad


def test_a_translation_slip_falls_back_to_english_for_that_text_only() -> None:
    english = load("en").text
    usable = locales._usable_text("xx", {"focus_title": "Foco: {questão}", "reflect_title": "Pense em: {question}"})
    assert usable["focus_title"] == english["focus_title"]  # wrong placeholder: English
    assert usable["reflect_title"] == "Pense em: {question}"  # fine: kept
    assert usable["grow_title"] == english["grow_title"]  # missing: English


@pytest.mark.parametrize(("locale", "language"), [
    ("pt-BR", "pt"), ("PT", "pt"), ("es-419", "es"), ("fr-CA", "fr"), ("de", "de"), ("en-GB", "en"),
    ("it", None), ("zh-Hant-TW", None), ("", None), (None, None),
])
def test_language_of_a_locale(locale: str | None, language: str | None) -> None:
    assert language_of(locale) == language


def test_texts_for_an_untranslated_locale_are_english_and_flagged() -> None:
    assert texts_for("it")[0].language == "en" and texts_for("it")[1] is True
    assert texts_for(None) == (load("en"), False)
    assert texts_for("pt-BR") == (load("pt"), False)
    with pytest.raises(ValueError, match="No translation"):
        load("it")


def test_numbers_are_written_the_languages_way() -> None:
    assert load("en").number(5.5) == "5.5" and load("de").number(5.5) == "5,5"
    assert load("fr").number(7.0) == "7" and load("pt").number(-1e9) == "-1000000000"
