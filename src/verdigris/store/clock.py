"""Time in one place, so tests and benchmarks can reason about it.

The sandbox clock (``VERDIGRIS_SANDBOX_CLOCK=true``, off by default) lets a test move this server's
time forward, e.g. to see a license start "the day after payment" or a trial end. It only moves
forward, so ids and orderings that follow time stay monotonic while the process runs; the offset
lives in the process, so a restart returns to real time (restart a test server only before moving
its clock, or move it again after).
"""

from __future__ import annotations

import time

_offset_ms = 0
MAX_OFFSET_MS = 50 * 366 * 86_400_000


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
    if _offset_ms + ms > MAX_OFFSET_MS:
        raise ValueError("the sandbox clock goes at most 50 years ahead")
    _offset_ms += ms
    return _offset_ms
