"""The one sanitiser for text the worker stores or broadcasts, whatever made it (the AI, the cache, the
fallback rules quoting the user's words).

Contract: `storable(value)` returns `value` (parsed JSON) with every string (keys included) made storable
in PostgreSQL and harmless on a reader's screen: C0 and C1 control characters other than newline and tab
(ESC, BEL, CR, DEL, ...) and the bidirectional overrides and isolates (U+202A-U+202E, U+2066-U+2069, which
reorder what a terminal or a page shows) are dropped; unpaired surrogates (no UTF-8 exists for them) become
U+FFFD. Everything else is kept as it was, in order. Linear in the input's length; idempotent.
`clean_recommendations` applies it to a recommendation set.
"""

from __future__ import annotations

import re
from typing import Any

from worker.models import RecommendationSet

# One character class: linear whatever the input.
_UNSTORABLE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def _replacement(match: re.Match[str]) -> str:
    return "\ufffd" if match.group() >= "\ud800" else ""


def storable(value: Any) -> Any:
    """`value` with every string (keys included) cleaned as the module docstring says."""
    if isinstance(value, str):
        return _UNSTORABLE.sub(_replacement, value)
    if isinstance(value, list):
        return [storable(item) for item in value]
    if isinstance(value, dict):
        return {storable(key): storable(item) for key, item in value.items()}
    return value


def clean_recommendations(recommendations: RecommendationSet) -> RecommendationSet:
    """`recommendations` with every text cleaned; ValidationError if cleaning leaves a text too short."""
    return RecommendationSet.model_validate(storable(recommendations.model_dump(mode="json")))
