"""Text the store can keep: no NUL characters and no lone UTF-16 surrogates.

PostgreSQL refuses NUL in text (``invalid byte sequence ... 0x00``) and neither store can encode
a lone surrogate (``"\\ud800"`` in JSON, accepted by Python's json module) as UTF-8. Every face
checks client text with :func:`problem` before it reaches the store, and answers a 400 in its own
format when there is one.
"""

from __future__ import annotations

from typing import Any

_MAX_DEPTH = 64


def problem(value: Any, _depth: int = 0) -> str | None:
    """What makes ``value`` (a string, or JSON data) unstorable, or None when it is fine."""
    if isinstance(value, str):
        if "\x00" in value:
            return "text must not contain the NUL character (\\u0000)"
        if value.isascii():
            return None  # no surrogates in ASCII (a quick check for the usual text)
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return "text must be valid Unicode (a lone surrogate such as \\ud800 is not)"
        return None
    if _depth > _MAX_DEPTH:
        return f"JSON must not be nested more than {_MAX_DEPTH} levels deep"
    if isinstance(value, dict):
        for key, item in value.items():
            found = problem(key, _depth + 1) or problem(item, _depth + 1)
            if found:
                return found
    elif isinstance(value, list):
        for item in value:
            found = problem(item, _depth + 1)
            if found:
                return found
    return None
