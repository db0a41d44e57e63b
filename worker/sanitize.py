"""The one sanitiser for text the worker stores: whatever made it (the AI, the cache, the fallback rules).

Contract: `storable(value)` returns `value` (parsed JSON) with every string made storable in PostgreSQL
and harmless on a reader's screen: NUL and the control characters a terminal would act on dropped,
unpaired surrogates (which have no UTF-8) replaced by U+FFFD. Linear in the input's length.
"""

from __future__ import annotations

import re
from typing import Any

# One character class: linear whatever the input.
_UNSTORABLE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")


def storable(value: Any) -> Any:
    """`value` with every string (keys included) cleaned as the module docstring says."""
    if isinstance(value, str):
        return _UNSTORABLE.sub(lambda m: "\ufffd" if m.group() >= "\ud800" else "", value)
    if isinstance(value, list):
        return [storable(item) for item in value]
    if isinstance(value, dict):
        return {storable(key): storable(item) for key, item in value.items()}
    return value
