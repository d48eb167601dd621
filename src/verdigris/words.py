"""Counts and durations as people write them: "1 session", "2 sessions", "30 days", "90 seconds".

Every text a person reads (console pages, flashes, refusals, journal details) counts through these
two functions, so no page says "1 sessions" or "30.0 days".
"""

from __future__ import annotations


def plural(count: int, one: str, many: str = "") -> str:
    """``count`` with its noun: "1 session", "2 sessions" (``many`` for irregular plurals)."""
    return f"{count} {one if count == 1 else (many or one + 's')}"


_UNITS = ((86400, "day"), (3600, "hour"), (60, "minute"), (1, "second"))


def duration(seconds: float) -> str:
    """A length of time in its largest whole-ish unit: "30 days", "1 day", "1.5 hours", "90 seconds"."""
    for size, unit in _UNITS:
        if seconds >= size or size == 1:
            count = round(seconds / size, 1)
            if count == int(count):
                return plural(int(count), unit)
            return f"{count:g} {unit}s"
    return ""  # pragma: no cover - the loop always returns


def cleaned(text: str) -> str:
    """A library's error text without its internals: pydantic's "Value error, " prefix and a
    bytes literal's b'...' quoting (RE2 reports its errors as bytes)."""
    text = text.removeprefix("Value error, ").removeprefix("Assertion failed, ")
    if len(text) >= 3 and text[:2] in ("b'", 'b"') and text[-1] == text[1]:
        text = text[2:-1]
    return text
