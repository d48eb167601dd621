"""Time in one place, so tests and benchmarks can reason about it."""

from __future__ import annotations

import time


def now_ms() -> int:
    """Milliseconds since the epoch (UTC)."""
    return time.time_ns() // 1_000_000


def now_s() -> int:
    return time.time_ns() // 1_000_000_000
