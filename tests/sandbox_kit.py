"""Small helpers shared by the group, status and call tests."""

from __future__ import annotations

import random
import time
from typing import Any

import httpx

from harness import Server


def fresh_number(prefix: str) -> str:
    """A phone number no other test uses (11 digits)."""
    return prefix + "".join(random.choice("0123456789") for _ in range(11 - len(prefix)))


def wire(server: Server, inst: dict[str, Any], method: str, **kwargs: Any) -> httpx.Response:
    """A raw wire call that waits out per-method rate limits (a 429 executes nothing)."""
    for _ in range(20):
        r = server.wire(inst, method, **kwargs)
        if r.status_code != 429:
            return r
        time.sleep(float(r.headers.get("retry-after") or 1.1))
    return r


def wait_until(check: Any, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError("condition not met in time")
