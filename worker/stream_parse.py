"""Finds each finished element of an answer's top-level `recommendations` array while the answer is still
being written, so it can be shown before the rest arrives.

Contract: feed `RecommendationScanner.feed(text)` the content as it streams in, piece by piece; it returns
the elements of `recommendations` (as JSON text, in order) whose closing brace arrived in `text`. Every
character is looked at once and only the element being read is kept, so the work is linear in the
answer's length. It is a scanner, not a validator: what it returns is still to be parsed and checked
(worker/drafts.py), and the whole answer is parsed again at its end (worker/ai_answer.py). Input that is
not JSON makes it find nothing, never raise.
"""

from __future__ import annotations

import json
import re

# The characters that change the scanner's state; everything between them is skipped by one regex search.
_OUTSIDE = re.compile(r'["{}\[\]:]')
_INSIDE = re.compile(r'["\\]')
_KEY = "recommendations"


class RecommendationScanner:
    """Scans a streamed JSON answer for the elements of its top-level `recommendations` array."""

    def __init__(self) -> None:
        self._depth = 0  # nesting of objects and arrays
        self._in_string = False
        self._escaped = False  # the last character was a backslash inside a string
        self._string: list[str] | None = None  # the string being read at depth 1 (it may be a key)
        self._last_string = ""  # the last string closed at depth 1: the key when a ':' follows
        self._key = ""  # the key of the value being read at depth 1
        self._in_array = False  # inside the top-level recommendations array (depth 2)
        self._element: list[str] | None = None  # the pieces of the element being read

    def feed(self, text: str) -> list[str]:
        """Scan the next piece of the answer; the recommendations elements it completed, as JSON text."""
        found: list[str] = []
        at, end = 0, len(text)
        piece_start = 0  # where this piece of the current element or depth-1 string begins in `text`
        while at < end:
            if self._in_string:
                if self._escaped:
                    self._escaped = False
                    at += 1
                    continue
                match = _INSIDE.search(text, at)
                if match is None:
                    break
                at = match.end()
                if match.group() == "\\":
                    self._escaped = True
                    continue
                self._in_string = False
                if self._string is not None:
                    self._string.append(text[piece_start:at])
                    self._last_string = "".join(self._string)
                    self._string = None
                continue
            match = _OUTSIDE.search(text, at)
            if match is None:
                break
            char, at = match.group(), match.end()
            if char == '"':
                self._in_string = True
                if self._depth == 1:
                    self._string, piece_start = [], at - 1
            elif char == ":":
                if self._depth == 1:
                    self._key = _decoded(self._last_string)
            elif char in "{[":
                self._depth += 1
                if self._depth == 2 and char == "[" and self._key == _KEY:
                    self._in_array = True
                elif self._depth == 3 and self._in_array and char == "{":
                    self._element, piece_start = [], at - 1
            else:  # } or ]
                if self._depth == 3 and self._element is not None and char == "}":
                    self._element.append(text[piece_start:at])
                    found.append("".join(self._element))
                    self._element = None
                elif self._depth == 2:
                    self._in_array = False
                self._depth -= 1
        # What is still open carries over to the next piece.
        if self._element is not None:
            self._element.append(text[piece_start:])
        elif self._string is not None:
            self._string.append(text[piece_start:])
        return found


def _decoded(raw: str) -> str:
    """A JSON string literal's value; "" for anything that is not one."""
    try:
        value = json.loads(raw)
    except ValueError:
        return ""
    return value if isinstance(value, str) else ""
