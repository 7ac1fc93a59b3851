"""What any value crossing a process boundary must respect to be stored.

Every integer column is 64-bit (SQLite and PostgreSQL ``BIGINT``; the few 32-bit
``INTEGER`` ones get their own ``le=INT32_MAX`` in the model), no text column holds
NUL, and no UTF-8 encoder takes a lone surrogate (a JSON escape such as ``\\ud800``
can carry one). A value past these is refused at the edge, as a 422 naming the field or
a bad-frame error, so it can never reach a writer shared by every agent.
"""

from __future__ import annotations

import math
from typing import Any

from pydantic import BaseModel, field_validator

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
INT32_MAX = 2**31 - 1
# Nesting deeper than this in a free-form field (a payload, a result's data) is refused.
MAX_DEPTH = 32

_SURROGATES = range(0xD800, 0xE000)


def has_surrogate(text: str) -> bool:
    """Whether ``text`` holds a lone surrogate (it cannot be encoded as UTF-8)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def scrub(text: str) -> str:
    """``text`` with NUL and lone surrogates replaced by U+FFFD: for output the agent
    captured, which is shown as it came rather than refused."""
    if "\x00" in text:
        text = text.replace("\x00", "\ufffd")
    if has_surrogate(text):
        text = "".join("\ufffd" if ord(char) in _SURROGATES else char for char in text)
    return text


def problem(value: Any, depth: int = 0) -> str | None:
    """Why ``value`` (a field's value, walked through lists and dicts) cannot be
    stored, or None if it can."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        if not INT64_MIN <= value <= INT64_MAX:
            return "must fit in 64 bits (between -2^63 and 2^63-1)"
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else "must be a finite number"
    if hasattr(value, "get_secret_value"):  # a SecretStr: checked, never shown
        value = value.get_secret_value()
    if isinstance(value, str):
        if "\x00" in value:
            return "must not contain NUL characters"
        if has_surrogate(value):
            return "must be valid Unicode (no lone surrogates)"
        return None
    if depth > MAX_DEPTH and isinstance(value, list | tuple | dict):
        return f"must not nest deeper than {MAX_DEPTH} levels"
    if isinstance(value, list | tuple | set | frozenset):
        for item in value:
            if (found := problem(item, depth + 1)) is not None:
                return found
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            if (found := problem(key, depth + 1) or problem(item, depth + 1)) is not None:
                return found
        return None
    return None


def check(value: Any) -> Any:
    """``value`` unchanged, or ValueError naming what is wrong with it."""
    found = problem(value)
    if found is not None:
        raise ValueError(found)
    return value


class Bounded(BaseModel):
    """A model whose every field is checked by :func:`problem` after validation
    (nested models check their own fields)."""

    @field_validator("*", mode="after")
    @classmethod
    def _storable(cls, value: Any) -> Any:
        if isinstance(value, BaseModel):
            return value
        return check(value)
