"""Idempotency-Key on sending methods: a retried send is answered, not sent again (docs/idempotency.md)."""

from __future__ import annotations

import sqlite3
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from harness import SQLITE_FILE, Server


def send(srv: Server, inst: dict[str, Any], key: str | None, text: str) -> httpx.Response:
    headers = {} if key is None else {"Idempotency-Key": key}
    body = {"chatId": "79997429999@c.us", "message": text}
    return srv.wire(inst, "sendMessage", verb="POST", json=body, headers=headers)


def queued(srv: Server, inst: dict[str, Any]) -> list[dict[str, Any]]:
    r = srv.wire(inst, "showMessagesQueue")
    assert r.status_code == 200, r.text
    return list(r.json())


@pytest.fixture
def srv(server: Server) -> Server:
    return server  # every test makes its own instances


def test_a_retry_with_the_same_key_gets_the_first_answer_and_sends_nothing(srv: Server) -> None:
    inst = srv.new_instance()  # not linked: what is accepted stays in the queue, countable
    first = send(srv, inst, "order-17-confirmation", "Your order 17 is confirmed")
    assert first.status_code == 200, first.text
    assert "Idempotent-Replayed" not in first.headers
    again = send(srv, inst, "order-17-confirmation", "Your order 17 is confirmed")
    assert again.status_code == 200, again.text
    assert again.json() == first.json() and again.headers["Idempotent-Replayed"] == "true"
    assert [m["messageID"] for m in queued(srv, inst)] == [first.json()["idMessage"]]
    # Without a key, or with another key, the same request is a new message.
    assert send(srv, inst, None, "Your order 17 is confirmed").status_code == 200
    assert send(srv, inst, "order-17-confirmation-2", "Your order 17 is confirmed").status_code == 200
    assert len(queued(srv, inst)) == 3


def test_keys_belong_to_one_instance(srv: Server) -> None:
    a, b = srv.new_instance(), srv.new_instance()
    first = send(srv, a, "shared-key", "hello")
    other = send(srv, b, "shared-key", "hello")
    assert first.status_code == other.status_code == 200
    assert first.json()["idMessage"] != other.json()["idMessage"]
    assert len(queued(srv, a)) == len(queued(srv, b)) == 1


def test_a_key_reused_for_another_request_is_refused_and_changes_nothing(srv: Server) -> None:
    inst = srv.new_instance()
    assert send(srv, inst, "k-1", "first text").status_code == 200
    r = send(srv, inst, "k-1", "another text")
    assert r.status_code == 422
    body = r.json()
    assert "another request" in body["message"] and body["statusCode"] == 422
    # Another method under the same key is another request too.
    r = srv.wire(
        inst,
        "sendLocation",
        verb="POST",
        json={"chatId": "79997429999@c.us", "latitude": 1.5, "longitude": 2.5},
        headers={"Idempotency-Key": "k-1"},
    )
    assert r.status_code == 422
    assert len(queued(srv, inst)) == 1


@pytest.mark.parametrize("key", ["", "has space", "x" * 256, "ключ"])
def test_a_malformed_key_is_a_400_and_sends_nothing(srv: Server, key: str) -> None:
    inst = srv.new_instance()
    r = srv.wire(
        inst,
        "sendMessage",
        verb="POST",
        json={"chatId": "79997429999@c.us", "message": "hi"},
        headers={"Idempotency-Key": key.encode()},
    )
    assert r.status_code == 400, r.text
    assert "Idempotency-Key" in r.json()["message"]
    assert queued(srv, inst) == []


def test_concurrent_retries_queue_one_message(srv: Server) -> None:
    inst = srv.new_instance()
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: send(srv, inst, "burst", "only once"), range(8)))
    assert [a.status_code for a in answers] == [200] * 8, [a.text for a in answers]
    assert len({a.json()["idMessage"] for a in answers}) == 1
    assert len(queued(srv, inst)) == 1


@pytest.mark.sqlite_only
def test_an_answer_lost_before_it_was_stored_is_rebuilt_from_the_queued_message(srv: Server) -> None:
    """The server committed the message, then died before it stored (or sent) the answer."""
    inst = srv.new_instance()
    first = send(srv, inst, "lost-answer", "hello")
    assert first.status_code == 200
    with sqlite3.connect(srv.data_dir / SQLITE_FILE) as db:
        changed = db.execute("UPDATE idempotency_keys SET answer = NULL WHERE key = 'lost-answer'").rowcount
    assert changed == 1
    again = send(srv, inst, "lost-answer", "hello")
    assert again.status_code == 200 and again.json() == first.json()
    assert len(queued(srv, inst)) == 1


def test_the_key_also_covers_forwarding_and_the_sdk_ignores_it(srv: Server) -> None:
    inst = srv.new_instance()
    api = srv.api(inst)
    sent = api.sending.sendMessage("79997429999@c.us", "to forward")
    assert sent.code == 200
    body = {
        "chatId": "79997428888@c.us",
        "chatIdFrom": "79997429999@c.us",
        "messages": [sent.data["idMessage"]],
    }
    headers = {"Idempotency-Key": "fwd-1"}
    one = srv.wire(inst, "forwardMessages", verb="POST", json=body, headers=headers)
    two = srv.wire(inst, "forwardMessages", verb="POST", json=body, headers=headers)
    assert one.status_code == two.status_code == 200, (one.text, two.text)
    assert one.json() == two.json() and len(one.json()["messages"]) == 1
    assert len(queued(srv, inst)) == 2  # the original and one copy
