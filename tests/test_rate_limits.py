"""Per-instance, per-method rate limits (spec section 5): 429 + Retry-After, before anything runs."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from harness import Server
from verdigris.greenapi.ratelimit import DOCUMENTED_RPS, RateLimiter

# --- the limiter itself (deterministic: time is passed in) ------------------------------------------


def test_documented_table() -> None:
    limiter = RateLimiter()
    assert limiter.rate_of("getSettings") == 1
    assert limiter.rate_of("qr") == 3
    assert limiter.rate_of("sendMessage") == 50
    assert limiter.rate_of("receiveNotification") == 100
    assert limiter.rate_of("downloadFile") == 5
    assert limiter.rate_of("sendTextStatus") == 5
    assert limiter.rate_of("GetStateInstanceHistory") == 1
    assert limiter.rate_of("sendTyping") == 10  # not documented: the configurable default
    assert all(name == name.lower() for name in DOCUMENTED_RPS)


def test_burst_then_refusal_then_refill() -> None:
    limiter = RateLimiter()
    t = 1000.0
    for _ in range(50):
        assert limiter.check(1, "sendmessage", t).allowed
    refused = limiter.check(1, "sendmessage", t)
    assert not refused.allowed and refused.retry_after_s == 1 and refused.limit_rps == 50
    assert limiter.check(1, "sendmessage", t + 0.02).allowed  # one interval later, one more
    assert not limiter.check(1, "sendmessage", t + 0.02).allowed
    # A 1-rps method: one call per second, Retry-After rounds the wait up to whole seconds.
    assert limiter.check(1, "getsettings", t).allowed
    verdict = limiter.check(1, "getsettings", t + 0.3)
    assert not verdict.allowed and verdict.retry_after_s == 1
    assert limiter.check(1, "getsettings", t + 1.0).allowed


def test_keys_are_instance_and_method() -> None:
    limiter = RateLimiter()
    assert limiter.check(1, "getsettings", 0.0).allowed
    assert not limiter.check(1, "getsettings", 0.0).allowed
    assert limiter.check(2, "getsettings", 0.0).allowed  # another instance
    assert limiter.check(1, "setsettings", 0.0).allowed  # another method


def test_operator_settings() -> None:
    off = RateLimiter(enabled=False)
    assert all(off.check(1, "getsettings", 0.0).allowed for _ in range(100))
    doubled = RateLimiter(multiplier=2)
    assert [doubled.check(1, "getsettings", 0.0).allowed for _ in range(3)] == [True, True, False]
    custom = RateLimiter(overrides={"getSettings": 0, "sendMessage": 0.1}, default_rps=2)
    assert all(custom.check(1, "getsettings", 0.0).allowed for _ in range(100))  # 0 = unlimited
    assert custom.check(1, "sendmessage", 0.0).allowed
    slow = custom.check(1, "sendmessage", 0.0)
    assert not slow.allowed and slow.retry_after_s == 10
    assert [custom.check(1, "sendtyping", 0.0).allowed for _ in range(3)] == [True, True, False]
    burst = RateLimiter(burst_seconds=3)
    assert sum(burst.check(1, "getsettings", 0.0).allowed for _ in range(10)) == 3


def test_memory_is_bounded() -> None:
    limiter = RateLimiter(max_keys=1000)
    t = 0.0
    for i in range(20_000):
        limiter.check(i, "getsettings", t)
        t += 0.0001  # all still within their one-second interval: nothing is "full" yet
    assert len(limiter) <= 1001
    # Idle keys (full buckets) are swept first, and a dropped key just starts full again.
    for i in range(1500):
        limiter.check(10**6 + i, "getsettings", t + 100)
    assert len(limiter) <= 1001
    limiter.forget(10**6 + 1499)
    assert limiter.check(10**6 + 1499, "getsettings", t + 100).allowed


# --- through the server -----------------------------------------------------------------------------

# One sendMessage per ~17 minutes and one getStateInstance per ~17 minutes: a second call is refused
# whatever the machine's speed, so these checks do not depend on timing.
SLOW = {
    "VERDIGRIS_RATE_LIMIT_MULTIPLIER": "1",
    "VERDIGRIS_RATE_LIMIT_OVERRIDES": json.dumps({"sendMessage": 0.001, "getStateInstance": 0.001}),
}


def metric(server: Server, method: str) -> float:
    text = httpx.get(f"{server.url}/metrics").text
    m = re.search(rf'verdigris_wire_rate_limited_total\{{method="{method}"\}} ([0-9.e+]+)', text)
    return float(m.group(1)) if m else 0.0


def test_refused_call_has_no_effect(make_server: Callable[..., Server]) -> None:
    srv = make_server(env=SLOW)
    a, b = srv.instance(0), srv.instance(1)
    first = srv.wire(a, "sendMessage", verb="POST", json={"chatId": b["wid"], "message": "first"})
    assert first.status_code == 200, first.text
    second = srv.wire(a, "sendMessage", verb="POST", json={"chatId": b["wid"], "message": "second"})
    assert second.status_code == 429
    assert second.headers["content-type"].startswith("application/json")
    body = second.json()
    assert body["statusCode"] == 429 and body["message"] == "Too Many Requests"
    retry_after = int(second.headers["Retry-After"])
    assert 1 <= retry_after <= 1000
    # The limit is checked before the body is read: a malformed body is refused the same way.
    bad = srv.wire(
        a, "sendMessage", verb="POST", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert bad.status_code == 429
    assert metric(srv, "sendMessage") == 2

    # Nothing of the refused calls was queued or journaled; the accepted one was.
    journal = srv.wire(a, "lastOutgoingMessages")
    assert journal.status_code == 200, journal.text
    texts = [m.get("textMessage") for m in journal.json()]
    assert texts == ["first"]


def test_limits_are_per_instance_and_per_method(make_server: Callable[..., Server]) -> None:
    srv = make_server(env=SLOW)
    a, b = srv.instance(0), srv.instance(1)
    assert srv.wire(a, "getStateInstance").status_code == 200
    assert srv.wire(a, "getStateInstance").status_code == 429
    assert srv.wire(b, "getStateInstance").status_code == 200  # another instance
    assert srv.wire(a, "getSettings").status_code == 200  # another method
    # Calls that fail authentication do not use up anyone's allowance.
    stranger = {"idInstance": b["idInstance"], "apiTokenInstance": "f" * 50}
    fresh = srv.new_instance()
    for _ in range(3):
        assert srv.wire(stranger, "getStateInstance").status_code == 401
        assert srv.wire({**fresh, "apiTokenInstance": "0" * 50}, "getStateInstance").status_code == 401
    assert srv.wire(fresh, "getStateInstance").status_code == 200


def test_switch_off(make_server: Callable[..., Server]) -> None:
    srv = make_server(env={**SLOW, "VERDIGRIS_RATE_LIMITS": "off"})
    for _ in range(5):
        assert srv.wire(srv.instance(0), "getStateInstance").status_code == 200


def test_sdk_retries_are_transparent_and_exactly_once(make_server: Callable[..., Server]) -> None:
    # 0.5 rps: a second send right after the first is refused with Retry-After: 2; the official SDK
    # waits and repeats it. Because a 429 changes nothing, every message arrives exactly once.
    srv = make_server(
        env={"VERDIGRIS_RATE_LIMIT_MULTIPLIER": "1", "VERDIGRIS_RATE_LIMIT_OVERRIDES": '{"sendMessage": 0.5}'}
    )
    a = srv.api(srv.instance(0))
    recipient = srv.instance(1)["wid"].split("@")[0]
    ids = []
    for i in range(3):
        r = a.sending.sendMessage(srv.instance(1)["wid"], f"retry {i}")
        assert r.code == 200, r.error
        ids.append(r.data["idMessage"])
    assert len(set(ids)) == 3
    deadline = time.monotonic() + 60
    got: list[Any] = []
    while time.monotonic() < deadline:
        msgs = srv.sandbox("GET", f"/phones/{recipient}/messages", params={"direction": "incoming"}).json()
        got = [m for m in msgs if str(m["content"].get("text", "")).startswith("retry ")]
        if len(got) >= 3:
            break
        time.sleep(0.2)
    assert sorted(m["content"]["text"] for m in got) == ["retry 0", "retry 1", "retry 2"]
    assert sorted(m["idMessage"] for m in got) == sorted(ids)


def test_documented_limit_on_a_default_server(make_server: Callable[..., Server]) -> None:
    # getSettings is 1 rps: of 20 calls fired together, at most one per elapsed second (plus the
    # first) may pass. The bound uses the measured time, so a slow machine cannot break it.
    srv = make_server(env={"VERDIGRIS_RATE_LIMIT_MULTIPLIER": "1"})
    inst = srv.instance(0)
    url = f"{srv.url}/waInstance{inst['idInstance']}/getSettings/{inst['apiTokenInstance']}"

    async def burst() -> tuple[list[int], float]:
        async with httpx.AsyncClient(timeout=60) as client:
            start = time.monotonic()
            responses = await asyncio.gather(*(client.get(url) for _ in range(20)))
            return [r.status_code for r in responses], time.monotonic() - start

    codes, elapsed = asyncio.run(burst())
    assert set(codes) <= {200, 429}
    assert 1 <= codes.count(200) <= int(elapsed) + 2
    if elapsed < 15:
        assert codes.count(429) >= 1


@pytest.mark.parametrize("value", ["nonsense", "[1,2]"])
def test_bad_override_setting_stops_the_server(make_server: Callable[..., Server], value: str) -> None:
    with pytest.raises(RuntimeError):
        make_server(env={"VERDIGRIS_RATE_LIMIT_OVERRIDES": value})
