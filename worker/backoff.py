"""The one backoff formula of the worker: exponential, capped, optionally with full jitter."""

from __future__ import annotations

import random

# Beyond 2**32 any cap has long since won; bounding the exponent keeps the float finite.
_MAX_EXPONENT = 32


def backoff(attempt: int, *, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Seconds to wait after failure number `attempt` (1-based): min(cap, base * 2**(attempt - 1)).

    With `rng`, full jitter: uniform in [0, that delay], so that many clients retrying after the same
    outage spread out instead of arriving together.
    """
    exponent = min(max(attempt - 1, 0), _MAX_EXPONENT)
    delay = min(cap, base * 2**exponent)
    return rng.uniform(0.0, delay) if rng is not None else delay
