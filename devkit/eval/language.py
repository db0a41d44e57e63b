"""Which of the five languages a text is written in, with no model and nothing to download.

Counts the text's words that are frequent function words of exactly one of en, pt, es, fr and de
(`DISTINCTIVE`: a word two languages share, like "de" or "que", counts for neither), plus a few letters only
one of them uses (ã õ, ñ ¿ ¡, ß ä ö ü, è ù œ). Words inside quotation marks and words the person wrote
anywhere in the assessment are left out first, so quoting their answers never sways the result. The
language with the most evidence wins if it has at least `MIN_EVIDENCE` and strictly more than the runner-up;
otherwise the text is undetermined. Limits (docs/quality.md): only these five languages; a text of a few
words, or one that mixes languages evenly, is undetermined.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

MIN_EVIDENCE = 3

_FUNCTION_WORDS = {
    "en": """a no the and of to in is your you it for with on that this are be at as by an or from each than what which
        have has was were will would can could not one more most about every after then there their them they
        these those its into how when where who why our we my do does did make keep take week day time step""",
    "pt": """o os a as um uma do da dos das no na nos nas em ao aos à às pelo pela para por com sem não você seu sua
        seus suas é são está estão foi ser ter tem mais muito também isso este esta esse essa cada semana dia
        dias que de e se depois até quando onde como então sobre entre""",
    "es": """a no el los la las un una del al en y o es son está están tu tus su sus te con sin para por más muy también
        esto este esta ese esa cada semana día días que de se lo le les cómo hasta hay puedes sobre entre cuando
        donde luego""",
    "fr": """a le la les un une des du de et à au aux en dans pour par avec sans sur est sont être avoir vous votre vos
        ne pas plus que qui ce cette ces chaque semaine jour jours il elle ils on nous se son sa ses leur mais ou
        où si comme aussi très puis quand""",
    "de": """der die das den dem des ein eine einen einem einer und oder ist sind sein haben hat nicht mit für von
        zu zum zur auf in im an bei nach aus sie ihre ihr ihnen ich es sich auch noch mehr sehr jede jeden jeder
        woche tag tage wenn dass was wie um dann bis""",
}
_WORD_SETS = {language: set(words.split()) for language, words in _FUNCTION_WORDS.items()}
# Words of exactly one language: the evidence.
DISTINCTIVE: dict[str, frozenset[str]] = {
    language: frozenset(w for w in words if sum(w in other for other in _WORD_SETS.values()) == 1)
    for language, words in _WORD_SETS.items()
}
_LETTERS = {"pt": "ãõ", "es": "ñ¿¡", "de": "ßäöü", "fr": "èùœ"}
LANGUAGES = tuple(_FUNCTION_WORDS)

# “…”, «…», „…“, "…": quoted text is someone's words, not the writer's language. One character class
# per pattern and no nesting: linear in the text's length.
_QUOTED = re.compile(r"“[^”“\n]*”|«[^»«\n]*»|„[^“„\n]*“|\"[^\"\n]*\"")
_WORD = re.compile(r"[^\W\d_]+")


def words(text: str) -> list[str]:
    """The words of `text`, lower-cased."""
    return _WORD.findall(text.casefold())


def evidence(text: str, excluded: Iterable[str] = ()) -> dict[str, int]:
    """Per language, how many distinctive words and letters `text` has outside quotes and `excluded` words."""
    skip = set(excluded)
    unquoted = _QUOTED.sub(" ", text)
    tokens = [w for w in words(unquoted) if w not in skip]
    counts = {language: sum(w in DISTINCTIVE[language] for w in tokens) for language in LANGUAGES}
    kept = " ".join(tokens)
    for language, letters in _LETTERS.items():
        counts[language] += sum(kept.count(letter) for letter in letters)
    return counts


def detect(text: str, excluded: Iterable[str] = ()) -> str | None:
    """The language `text` is written in, or None when the evidence is too thin or too even to say."""
    counts = evidence(text, excluded)
    ranked = sorted(counts.items(), key=lambda item: item[1], reverse=True)
    (best, top), (_, second) = ranked[0], ranked[1]
    return best if top >= MIN_EVIDENCE and top > second else None
