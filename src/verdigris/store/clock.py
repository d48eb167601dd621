"""Time in one place, so tests and benchmarks can reason about it.

The sandbox clock (``VERDIGRIS_SANDBOX_CLOCK=true``, off by default) lets a test move this server's
time forward, e.g. to see a license start "the day after payment" or a trial end. It only moves
forward, so ids and orderings that follow time stay monotonic.
"""

from __future__ import annotations

import time

_offset_ms = 0


def now_ms() -> int:
    """Milliseconds since the epoch (UTC), plus the sandbox clock's offset."""
    return time.time_ns() // 1_000_000 + _offset_ms


def now_s() -> int:
    return now_ms() // 1000


def offset_ms() -> int:
    return _offset_ms


def advance(ms: int) -> int:
    """Move the clock forward by ``ms`` (never backwards); returns the new offset."""
    global _offset_ms
    if ms < 0:
        raise ValueError("the clock only moves forward")
    _offset_ms += ms
    return _offset_ms
