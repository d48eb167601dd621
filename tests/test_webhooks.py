"""Webhook delivery: official receivers, order, retries, signing, replay, dead letters, the API.

Notifications are produced the way users produce them: a sandbox phone writes to an instance,
which gets ``incomingMessageReceived``. Retries are fast here (environment below); tests wait for
conditions and never assert on timings.
"""

from __future__ import annotations

import hashlib
import hmac
import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from harness import Server
from webhook_receivers import FastAPIReceiver, ScriptedReceiver, TornadoReceiver

FAST_RETRIES = {
    "VERDIGRIS_WEBHOOK_RETRY_DELAY_SECONDS": "0.3",
    "VERDIGRIS_WEBHOOK_TIMEOUT_SECONDS": "2",
}
CUSTOMER = "79990000003"


@pytest.fixture(scope="module")
def hooks_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server of its own, with retries every 0.3 s and a 2 s attempt timeout."""
    srv = Server(tmp_path_factory.mktemp("hooks"), env=dict(FAST_RETRIES)).start()
    yield srv
    srv.stop()


# --- helpers -----------------------------------------------------------------------------------------


def fresh_instance(server: Server) -> dict[str, Any]:
    phone = "7998" + "".join(random.choice("0123456789") for _ in range(7))
    return server.new_instance("--link", phone)


def set_webhook(server: Server, inst: dict[str, Any], url: str, token: str | None = None) -> None:
    values: dict[str, Any] = {"webhookUrl": url}
    if token is not None:
        values["webhookUrlToken"] = token
    r = server.wire(inst, "setSettings", verb="POST", json=values)
    assert r.status_code == 200, r.text
    assert r.json() == {"saveSettings": True}


def send_texts(server: Server, inst: dict[str, Any], texts: list[str], phone: str = CUSTOMER) -> list[str]:
    ids = []
    for text in texts:
        r = server.sandbox("POST", f"/phones/{phone}/messages", json={"chatId": inst["wid"], "message": text})
        assert r.status_code == 200, r.text
        ids.append(r.json()["idMessage"])
    return ids


def hooks_api(
    server: Server, inst: dict[str, Any], verb: str, path: str = "", token: str | None = None, **kwargs: Any
) -> httpx.Response:
    url = f"{server.url}/api/v1/instances/{inst['idInstance']}/webhooks{path}"
    headers = {"Authorization": f"Bearer {token if token is not None else inst['apiTokenInstance']}"}
    return httpx.request(verb, url, headers=headers, timeout=30, **kwargs)


def wait_until(predicate: Any, timeout: float = 90, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def queue_empty(server: Server, inst: dict[str, Any]) -> bool:
    return bool(server.wire(inst, "getWebhooksCount").json() == {"count": 0})


def texts(prefix: str, n: int) -> list[str]:
    return [f"{prefix} #{i:02d}" for i in range(n)]


# --- the official receivers ----------------------------------------------------------------------------


def test_tornado_receiver_gets_every_notification_once_in_order(hooks_server: Server) -> None:
    receiver = TornadoReceiver().start()
    try:
        inst = fresh_instance(hooks_server)
        set_webhook(hooks_server, inst, receiver.url)
        expected = texts("tornado", 15)
        send_texts(hooks_server, inst, expected)
        got = receiver.received.wait_texts(len(expected))
        wait_until(lambda: queue_empty(hooks_server, inst), what="the queue to drain")
        assert got == expected
        first = receiver.received.snapshot()[0]
        assert first.body["typeWebhook"] == "incomingMessageReceived"
        assert first.body["instanceData"]["idInstance"] == inst["idInstance"]
        # Exactly what a poller would have got, and none of the opt-in headers by default.
        assert first.headers["content-type"] == "application/json"
        assert int(first.headers["content-length"]) == len(first.raw)
        assert "transfer-encoding" not in first.headers
        assert "authorization" not in first.headers
        assert not any(h.startswith("x-verdigris") for h in first.headers)
    finally:
        receiver.stop()


def test_fastapi_receiver_with_bearer_token(hooks_server: Server) -> None:
    receiver = FastAPIReceiver(token="hook-secret-1").start()
    try:
        inst = fresh_instance(hooks_server)
        set_webhook(hooks_server, inst, receiver.url, token="hook-secret-1")
        expected = texts("fastapi", 10)
        send_texts(hooks_server, inst, expected)
        assert receiver.received.wait_texts(len(expected)) == expected
        wait_until(lambda: queue_empty(hooks_server, inst), what="the queue to drain")
    finally:
        receiver.stop()


def test_wrong_bearer_token_is_retried_until_fixed(hooks_server: Server) -> None:
    receiver = FastAPIReceiver(token="right-token").start()
    try:
        inst = fresh_instance(hooks_server)
        set_webhook(hooks_server, inst, receiver.url, token="wrong-token")
        expected = texts("bearer", 3)
        send_texts(hooks_server, inst, expected)

        def refused() -> bool:
            log = hooks_api(hooks_server, inst, "GET", "/deliveries").json()
            return len([e for e in log if e["statusCode"] == 401]) >= 2

        wait_until(refused, what="401 answers in the delivery log")
        assert receiver.received.texts() == []
        status = hooks_api(hooks_server, inst, "GET").json()
        assert status["retry"]["attempts"] >= 2 and "401" in status["retry"]["lastError"]
        assert status["queued"] == 3
        set_webhook(hooks_server, inst, receiver.url, token="right-token")
        assert receiver.received.wait_texts(3) == expected
        wait_until(lambda: hooks_api(hooks_server, inst, "GET").json()["retry"] is None, what="retry cleared")
    finally:
        receiver.stop()


def test_receive_notification_answers_null_while_webhook_is_set(hooks_server: Server) -> None:
    inst = fresh_instance(hooks_server)
    set_webhook(hooks_server, inst, "http://127.0.0.1:9/unreachable")
    send_texts(hooks_server, inst, ["for the webhook only"])
    r = hooks_server.wire(inst, "receiveNotification", params={"receiveTimeout": 1})
    assert r.status_code == 200 and r.json() is None
    # Back to polling: the undelivered notification is there for receiveNotification.
    set_webhook(hooks_server, inst, "")
    r = hooks_server.wire(inst, "receiveNotification", params={"receiveTimeout": 5})
    assert r.json()["body"]["messageData"]["textMessageData"]["textMessage"] == "for the webhook only"


# --- receivers in trouble -----------------------------------------------------------------------------------


def test_receiver_failing_first_attempts_gets_everything_in_order(hooks_server: Server) -> None:
    receiver = ScriptedReceiver(fail_first=4, fail_status=503).start()
    try:
        inst = fresh_instance(hooks_server)
        set_webhook(hooks_server, inst, receiver.url)
        expected = texts("flaky", 8)
        send_texts(hooks_server, inst, expected)
        assert receiver.received.wait_texts(len(expected)) == expected
        wait_until(lambda: queue_empty(hooks_server, inst), what="the queue to drain")
        # The first notification was tried five times: four 503s, then 200.
        first_receipt = receiver.requests.snapshot()[0].body
        log = hooks_api(hooks_server, inst, "GET", "/deliveries", params={"limit": 1000}).json()
        log.reverse()
        first = [e for e in log if e["receiptId"] == log[0]["receiptId"]]
        assert [e["statusCode"] for e in first] == [503, 503, 503, 503, 200]
        assert [e["attempt"] for e in first] == [1, 2, 3, 4, 5]
        assert [e["outcome"] for e in first] == ["failed"] * 4 + ["delivered"]
        assert all(e["nextAttemptMs"] for e in first[:4])
        assert first_receipt["idMessage"]  # what the receiver saw was the notification itself
        assert len([e for e in log if e["outcome"] == "delivered"]) == len(expected)
    finally:
        receiver.stop()


def test_slow_receiver_and_timeouts_keep_order_with_same_event_ids(hooks_server: Server) -> None:
    # The first two requests take longer than the 2 s attempt timeout: they count as failures
    # (and are retried) even though the receiver processed them.
    receiver = ScriptedReceiver(delay=3.0, delay_first=2).start()
    try:
        inst = fresh_instance(hooks_server)
        r = hooks_api(hooks_server, inst, "PATCH", json={"eventIdHeader": True})
        assert r.status_code == 200 and r.json()["eventIdHeader"] is True
        set_webhook(hooks_server, inst, receiver.url)
        expected = texts("slow", 5)
        send_texts(hooks_server, inst, expected)
        receiver.received.wait_for(lambda rec: expected[-1] in rec.texts())
        seen = receiver.received.snapshot()
        ids = [s.headers["x-verdigris-event-id"] for s in seen]
        got = receiver.received.texts()
        # In order once duplicates (same event id) are dropped.
        unique = list(dict.fromkeys(zip(ids, got, strict=True)))
        assert [t for _, t in unique] == expected
        assert len({i for i, _ in unique}) == len(expected)
        log = hooks_api(hooks_server, inst, "GET", "/deliveries").json()
        # Network failures read alike in the log (no port scanning through it, issue 16 item 3).
        assert any(e["error"].startswith("no HTTP answer") for e in log)
    finally:
        receiver.stop()


def test_receiver_down_for_a_while_then_everything_arrives(hooks_server: Server) -> None:
    down = ScriptedReceiver()  # not started yet: nothing listens on its port
    inst = fresh_instance(hooks_server)
    set_webhook(hooks_server, inst, down.url)
    expected = texts("down", 10)
    send_texts(hooks_server, inst, expected)

    def failed_twice() -> bool:
        log = hooks_api(hooks_server, inst, "GET", "/deliveries").json()
        return len([e for e in log if e["outcome"] == "failed" and e["statusCode"] is None]) >= 2

    wait_until(failed_twice, what="failed attempts while the receiver is down")
    receiver = ScriptedReceiver(port=down.port).start()
    try:
        assert receiver.received.wait_texts(len(expected)) == expected
        wait_until(lambda: queue_empty(hooks_server, inst), what="the queue to drain")
    finally:
        receiver.stop()


def test_a_failing_endpoint_never_blocks_other_instances(hooks_server: Server) -> None:
    broken = fresh_instance(hooks_server)
    set_webhook(hooks_server, broken, "http://127.0.0.1:9/nothing-here")
    send_texts(hooks_server, broken, texts("stuck", 3))
    receiver = ScriptedReceiver().start()
    try:
        healthy = fresh_instance(hooks_server)
        set_webhook(hooks_server, healthy, receiver.url)
        expected = texts("healthy", 6)
        send_texts(hooks_server, healthy, expected)
        assert receiver.received.wait_texts(len(expected)) == expected
        status = hooks_api(hooks_server, broken, "GET").json()
        assert status["queued"] == 3 and status["retry"] is not None
    finally:
        receiver.stop()


# --- beyond GREEN-API: signing, event ids, replay ----------------------------------------------------------


def test_signed_webhooks_verify_with_the_instance_secret(hooks_server: Server) -> None:
    receiver = ScriptedReceiver().start()
    try:
        inst = fresh_instance(hooks_server)
        status = hooks_api(hooks_server, inst, "GET").json()
        assert status["signing"] is False and status["signingSecret"] is None
        assert status["eventIdHeader"] is False
        assert status["retryPolicy"] == {"policy": "fixed", "delaySeconds": 0.3}
        status = hooks_api(hooks_server, inst, "PATCH", json={"signing": True, "eventIdHeader": True}).json()
        secret = status["signingSecret"]
        assert status["signing"] is True and secret.startswith("whsec_")
        set_webhook(hooks_server, inst, receiver.url, token="tok")
        send_texts(hooks_server, inst, ["signed 1", "signed 2"])
        receiver.received.wait_texts(2)
        for item in receiver.received.snapshot():
            h = item.headers
            assert h["authorization"] == "Bearer tok"
            expected = hmac.new(
                secret.encode(), h["x-verdigris-timestamp"].encode() + b"." + item.raw, hashlib.sha256
            ).hexdigest()
            assert h["x-verdigris-signature"] == f"v1={expected}"
            assert h["x-verdigris-event-id"].startswith(f"{inst['idInstance']}-")
            assert h["x-verdigris-attempt"] == "1"
        # A rotated secret signs from then on; the old one no longer verifies.
        new_secret = hooks_api(hooks_server, inst, "POST", "/secret").json()["signingSecret"]
        assert new_secret != secret
        send_texts(hooks_server, inst, ["signed 3"])
        receiver.received.wait_texts(3)
        last = receiver.received.snapshot()[-1]
        mac = hmac.new(
            new_secret.encode(),
            last.headers["x-verdigris-timestamp"].encode() + b"." + last.raw,
            hashlib.sha256,
        ).hexdigest()
        assert last.headers["x-verdigris-signature"] == f"v1={mac}"
    finally:
        receiver.stop()


def test_replay_from_a_receipt_id_and_from_a_time(hooks_server: Server) -> None:
    receiver = ScriptedReceiver().start()
    try:
        inst = fresh_instance(hooks_server)
        hooks_api(hooks_server, inst, "PATCH", json={"eventIdHeader": True})
        set_webhook(hooks_server, inst, receiver.url)
        first = texts("replay", 5)
        send_texts(hooks_server, inst, first)
        receiver.received.wait_texts(5)
        # Acknowledged (recorded as delivered) once they have left the queue.
        wait_until(lambda: queue_empty(hooks_server, inst), what="the queue to drain")
        ids = [s.headers["x-verdigris-event-id"] for s in receiver.received.snapshot()]
        third_receipt = int(ids[2].split("-")[1])

        r = hooks_api(hooks_server, inst, "POST", "/replay", json={"fromReceiptId": third_receipt})
        assert r.status_code == 200 and r.json() == {"queued": 3}
        receiver.received.wait_texts(8)
        assert receiver.received.texts() == first + first[2:]
        replayed = [s.headers["x-verdigris-event-id"] for s in receiver.received.snapshot()[5:]]
        assert replayed == ids[2:]
        wait_until(lambda: hooks_api(hooks_server, inst, "GET").json()["replaysQueued"] == 0, what="replays")

        # From a time: everything of this instance (it is younger than the moment below).
        r = hooks_api(hooks_server, inst, "POST", "/replay", json={"since": int(time.time()) - 3600})
        assert r.json() == {"queued": 5}
        receiver.received.wait_texts(13)
        assert receiver.received.texts()[8:] == first
        # A replay touches nothing else: the queue is empty again afterwards.
        wait_until(lambda: hooks_api(hooks_server, inst, "GET").json()["replaysQueued"] == 0, what="replays")
        assert queue_empty(hooks_server, inst)
    finally:
        receiver.stop()


def test_delivery_api_rejects_bad_requests_and_changes_nothing(hooks_server: Server) -> None:
    inst = fresh_instance(hooks_server)
    assert hooks_api(hooks_server, inst, "GET", token="nope").status_code == 401
    r = httpx.get(f"{hooks_server.url}/api/v1/instances/{inst['idInstance']}/webhooks", timeout=30)
    assert r.status_code == 401 and "Bearer" in r.json()["detail"]
    other = dict(inst, idInstance=1)
    # An unknown instance answers like a foreign one (no enumeration of ids).
    assert hooks_api(hooks_server, other, "GET").status_code == 401
    # Replay needs a webhookUrl, and exactly one starting point.
    r = hooks_api(hooks_server, inst, "POST", "/replay", json={"fromReceiptId": 1})
    assert r.status_code == 409 and "webhookUrl" in r.json()["detail"]
    set_webhook(hooks_server, inst, "http://127.0.0.1:9/x")
    assert hooks_api(hooks_server, inst, "POST", "/replay", json={}).status_code == 400
    r = hooks_api(hooks_server, inst, "POST", "/replay", json={"fromReceiptId": 1, "since": 1})
    assert r.status_code == 400
    assert hooks_api(hooks_server, inst, "POST", "/replay", json={"fromReceiptId": "x"}).status_code == 422
    assert hooks_api(hooks_server, inst, "PATCH", json={"signing": "maybe"}).status_code == 422
    assert hooks_api(hooks_server, inst, "PATCH", json={"unknown": True}).status_code == 422
    assert hooks_api(hooks_server, inst, "DELETE", "/dead-letters/12345").status_code == 404
    status = hooks_api(hooks_server, inst, "GET").json()
    assert status["signing"] is False and status["eventIdHeader"] is False and status["replaysQueued"] == 0
    # The API is described on the OpenAPI page.
    paths = httpx.get(f"{hooks_server.url}/openapi.json", timeout=30).json()["paths"]
    assert "/api/v1/instances/{instance_id}/webhooks/replay" in paths


# --- retention: dead letters ---------------------------------------------------------------------------------


def test_expired_notifications_become_dead_letters_and_can_be_resent(
    make_server: Any, tmp_path: Path
) -> None:
    srv = make_server(env={**FAST_RETRIES, "VERDIGRIS_RETENTION_SECONDS": "3"})
    inst = fresh_instance(srv)
    hooks_api(srv, inst, "PATCH", json={"eventIdHeader": True})
    set_webhook(srv, inst, "http://127.0.0.1:9/never")
    expected = texts("dead", 3)
    send_texts(srv, inst, expected)

    def dead() -> list[dict[str, Any]] | None:
        items: list[dict[str, Any]] = hooks_api(srv, inst, "GET", "/dead-letters").json()
        return items if len(items) == 3 else None

    letters = wait_until(dead, what="three dead letters")
    assert [d["body"]["messageData"]["textMessageData"]["textMessage"] for d in letters] == expected
    # The head was tried until it expired; those behind it waited their turn (FIFO).
    assert letters[0]["attempts"] >= 1
    assert all("retention" in d["reason"] for d in letters)
    assert queue_empty(srv, inst)
    log = hooks_api(srv, inst, "GET", "/deliveries", params={"limit": 1000}).json()
    assert any(e["outcome"] == "dead" for e in log)

    receiver = ScriptedReceiver().start()
    try:
        # Drop one, resend the rest to a working receiver: same order, same event ids.
        assert hooks_api(srv, inst, "DELETE", f"/dead-letters/{letters[1]['receiptId']}").json() == {
            "deleted": True
        }
        set_webhook(srv, inst, receiver.url)
        r = hooks_api(srv, inst, "POST", "/dead-letters/resend", json={})
        assert r.status_code == 200 and r.json() == {"queued": 2}
        assert receiver.received.wait_texts(2) == [expected[0], expected[2]]
        got_ids = [s.headers["x-verdigris-event-id"] for s in receiver.received.snapshot()]
        assert got_ids == [letters[0]["eventId"], letters[2]["eventId"]]
        assert hooks_api(srv, inst, "GET", "/dead-letters").json() == []
    finally:
        receiver.stop()


# --- the retry rule ---------------------------------------------------------------------------------------


def test_retry_delays_fixed_and_exponential_with_jitter() -> None:
    from verdigris.config import Settings
    from verdigris.webhooks.service import retry_delay_ms

    fixed = Settings()
    assert [retry_delay_ms(fixed, n) for n in (1, 2, 50)] == [60_000, 60_000, 60_000]
    exp = Settings(
        webhook_retry_policy="exponential",
        webhook_backoff_initial_seconds=1,
        webhook_backoff_multiplier=2,
        webhook_backoff_max_seconds=30,
        webhook_backoff_jitter=0.5,
    )
    assert [retry_delay_ms(exp, n, rand=lambda: 0.0) for n in (1, 2, 3, 5, 6, 40)] == [
        1000,
        2000,
        4000,
        16000,
        30000,
        30000,
    ]
    assert retry_delay_ms(exp, 3, rand=lambda: 1.0) == 2000
    assert all(2000 <= retry_delay_ms(exp, 3) <= 4000 for _ in range(100))


async def test_coalescer_groups_concurrent_requests_and_reports_failures() -> None:
    import asyncio

    from verdigris.webhooks.batching import Coalescer

    batches: list[list[int]] = []

    async def run(batch: list[int]) -> list[int]:
        batches.append(batch)
        await asyncio.sleep(0.01)
        if 13 in batch:
            raise ValueError("unlucky")
        return [n * 2 for n in batch]

    co: Coalescer[int, int] = Coalescer(run)
    # Requests made together run as one batch, each caller getting its own result.
    assert await asyncio.gather(*(co(n) for n in range(5))) == [0, 2, 4, 6, 8]
    assert batches == [[0, 1, 2, 3, 4]]
    # While a batch runs, new requests wait and then go together in the next one.
    first = asyncio.create_task(co(100))
    await asyncio.sleep(0.005)
    assert await asyncio.gather(co(1), co(2), first) == [2, 4, 200]
    assert batches[1:] == [[100], [1, 2]]
    # A failing batch fails each of its callers, and the coalescer goes on working.
    results = await asyncio.gather(co(12), co(13), return_exceptions=True)
    assert all(isinstance(r, ValueError) for r in results)
    assert await co(7) == 14


def test_many_instances_each_in_order(hooks_server: Server) -> None:
    receiver = ScriptedReceiver().start()
    try:
        insts = [fresh_instance(hooks_server) for _ in range(6)]
        for inst in insts:
            set_webhook(hooks_server, inst, receiver.url)
        expected = {inst["idInstance"]: texts(f"many {inst['idInstance']}", 8) for inst in insts}
        # Interleave the instances' messages, as real traffic would.
        for n in range(8):
            for inst in insts:
                send_texts(hooks_server, inst, [expected[inst["idInstance"]][n]])
        receiver.received.wait_texts(6 * 8)
        by_instance: dict[int, list[str]] = {}
        for item in receiver.received.snapshot():
            text = item.body["messageData"]["textMessageData"]["textMessage"]
            by_instance.setdefault(item.body["instanceData"]["idInstance"], []).append(text)
        assert by_instance == expected
    finally:
        receiver.stop()


def test_exponential_backoff_spaces_the_retries(make_server: Any) -> None:
    srv = make_server(
        env={
            "VERDIGRIS_WEBHOOK_RETRY_POLICY": "exponential",
            "VERDIGRIS_WEBHOOK_BACKOFF_INITIAL_SECONDS": "0.2",
            "VERDIGRIS_WEBHOOK_BACKOFF_MULTIPLIER": "2",
            "VERDIGRIS_WEBHOOK_BACKOFF_JITTER": "0",
        }
    )
    receiver = ScriptedReceiver(fail_first=4).start()
    try:
        inst = fresh_instance(srv)
        set_webhook(srv, inst, receiver.url)
        send_texts(srv, inst, ["backoff 1", "backoff 2"])
        assert receiver.received.wait_texts(2) == ["backoff 1", "backoff 2"]
        log = hooks_api(srv, inst, "GET", "/deliveries").json()
        failed = sorted((e for e in log if e["outcome"] == "failed"), key=lambda e: e["attempt"])
        planned = [e["nextAttemptMs"] - e["atMs"] for e in failed]
        # Each pause is at least 0.2 s × 2^(attempt-1): 200, 400, 800, 1600 ms.
        assert [e["attempt"] for e in failed] == [1, 2, 3, 4]
        assert all(p >= 200 * 2**i for i, p in enumerate(planned)), planned
        # And no attempt came before its planned time (50 ms for clock granularity).
        attempts = sorted(
            (e for e in log if e["receiptId"] == failed[0]["receiptId"]), key=lambda e: e["attempt"]
        )
        assert all(b["atMs"] >= a["nextAttemptMs"] - 50 for a, b in zip(attempts, attempts[1:], strict=False))
        policy = hooks_api(srv, inst, "GET").json()["retryPolicy"]
        assert policy["policy"] == "exponential" and policy["initialSeconds"] == 0.2
    finally:
        receiver.stop()


def test_events_for_an_instance_not_loaded_yet_are_queued_and_pushed(hooks_server: Server) -> None:
    """Created by the CLI, so the server has never seen it: the phone's message still lands."""
    receiver = ScriptedReceiver().start()
    try:
        inst = fresh_instance(hooks_server)
        send_texts(hooks_server, inst, ["before any API call"])
        set_webhook(hooks_server, inst, receiver.url)
        assert receiver.received.wait_texts(1) == ["before any API call"]
    finally:
        receiver.stop()
