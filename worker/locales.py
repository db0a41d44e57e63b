"""The languages the worker writes, and the fallback's texts in each, read from worker/translations/*.toml.

Contract: `texts_for(locale)` gives the `Texts` for a BCP 47 tag's language when a translation exists
(en, pt, es, fr, de: "pt-BR" reads pt.toml), else English with `untranslated` set, so the result can say
so. The files are package data that translators edit without reading Python; each is loaded once. A
template that is missing or whose {placeholders} differ from en.toml's is replaced by the English one, so
a translation slip can never make the fallback raise (tests/unit/test_locales.py fails on it instead).
`Texts.format` fills a template with values that are never parsed again: the person's words go in as
they are.
"""

from __future__ import annotations

import string
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources

DEFAULT_LANGUAGE = "en"
LANGUAGES = ("en", "pt", "es", "fr", "de")


@dataclass(frozen=True)
class Texts:
    """One language's texts (one translations/<language>.toml)."""

    language: str  # the ISO 639-1 code, the file's name
    language_name: str  # in English, for the AI's instructions
    decimal_separator: str
    quoted: str  # how one quoted list item looks: "“{text}”"
    list_separator: str
    assessment_types: Mapping[str, str]
    units: Mapping[str, tuple[str, ...]]  # unit rule -> how people write the unit in this language
    text: Mapping[str, str]

    def format(self, key: str, **values: str) -> str:
        """The template `key` with `values` filled in; a value is inserted as it is, never parsed."""
        return self.text[key].format(**values)

    def quote_list(self, items: list[str]) -> str:
        """`items` each quoted this language's way, separated by its list separator."""
        return self.list_separator.join(self.quoted.format(text=item) for item in items)

    def number(self, value: float) -> str:
        """`value` as this language writes it: no ".0" on whole numbers, its own decimal separator."""
        if value == int(value) and abs(value) < 1e15:
            return str(int(value))
        return f"{value:.3g}".replace(".", self.decimal_separator)


def language_of(locale: str | None) -> str | None:
    """The supported language of a BCP 47 tag ("pt-BR" -> "pt"), or None when there is no translation."""
    if not locale:
        return None
    primary = locale.split("-", 1)[0].strip().lower()
    return primary if primary in LANGUAGES else None


def texts_for(locale: str | None) -> tuple[Texts, bool]:
    """The texts to write `locale` in, and whether the locale asked for a language there is no translation
    for (the texts are then English). No locale means English, as asked."""
    language = language_of(locale)
    return load(language or DEFAULT_LANGUAGE), bool(locale) and language is None


@cache
def load(language: str) -> Texts:
    """translations/<language>.toml, parsed once; raises ValueError naming the file if it is unusable."""
    if language not in LANGUAGES:
        raise ValueError(f"No translation for {language!r}; the worker has {', '.join(LANGUAGES)}.")
    source = resources.files("worker") / "translations" / f"{language}.toml"
    try:
        data = tomllib.loads(source.read_text(encoding="utf-8"))
        return Texts(
            language=language, language_name=str(data["language_name"]),
            decimal_separator=str(data["decimal_separator"]), quoted=str(data["quoted"]),
            list_separator=str(data["list_separator"]),
            assessment_types={str(k): str(v) for k, v in data["assessment_types"].items()},
            units={str(k): tuple(str(unit) for unit in v) for k, v in data["units"].items()},
            text=_usable_text(language, {str(k): str(v) for k, v in data["text"].items()}),
        )
    except (tomllib.TOMLDecodeError, KeyError, AttributeError, TypeError) as exc:
        raise ValueError(f"worker/translations/{language}.toml is not a usable translation: {exc!r}. "
                         "Compare it with en.toml.") from exc


def placeholders(template: str) -> frozenset[str] | None:
    """The {names} in `template`, or None if it is not a plain template (bad braces, {a.b}, {a!r}, {a:>9})."""
    try:
        fields = [(name, spec, conversion) for _, name, spec, conversion in string.Formatter().parse(template)
                  if name is not None]
    except ValueError:
        return None
    if any(not name.isidentifier() or spec or conversion for name, spec, conversion in fields):
        return None
    return frozenset(name for name, _, _ in fields)


def _usable_text(language: str, text: dict[str, str]) -> dict[str, str]:
    if language == DEFAULT_LANGUAGE:
        return text
    english = load(DEFAULT_LANGUAGE).text
    usable = {}
    for key, template in english.items():
        translated = text.get(key)
        wanted = placeholders(template)
        usable[key] = translated if translated is not None and placeholders(translated) == wanted else template
    return usable
