"""Two server processes on one PostgreSQL database: a long-poll waiting in one process is woken by
a message that the other process accepted and delivered (LISTEN/NOTIFY), and the webhook
dispatcher, running in one process only, pushes what the other accepted."""

from __future__ import annotations

import os
import threading
import time
from typing import Any

import httpx
import pytest

from harness import Server, drain
from sandbox_kit import wait_until
from webhook_receivers import ScriptedReceiver

pytestmark = [
    pytest.mark.skipif(
        os.environ.get("VERDIGRIS_TEST_DB") != "postgres", reason="several processes share a PostgreSQL store"
    ),
    pytest.mark.subprocess,
]


def gauge(srv: Server, name: str) -> float:
    for line in httpx.get(f"{srv.url}/metrics", timeout=30).text.splitlines():
        if line.startswith(f"{name} "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def counter(srv: Server, direction: str) -> float:
    text = httpx.get(f"{srv.url}/metrics", timeout=30).text
    for line in text.splitlines():
        if line.startswith(f'verdigris_cluster_notifies_total{{direction="{direction}"}}'):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_a_long_poll_in_one_process_is_woken_by_another(make_server: Any) -> None:
    a: Server = make_server(subprocess=True)
    b: Server = make_server(
        subprocess=True,
        env={"VERDIGRIS_DATABASE_URL": a.env["VERDIGRIS_DATABASE_URL"], "VERDIGRIS_WEBHOOK_ENABLED": "false"},
    )
    sender, receiver = a.instance(0), b.instance(1)
    assert b.instance(0)["apiTokenInstance"] == sender["apiTokenInstance"]  # one store, one workspace
    api_b = b.api(receiver)
    drain(api_b)

    got: dict[str, Any] = {}

    def poll() -> None:
        started = time.monotonic()
        got["response"] = api_b.receiving.receiveNotification(55)
        got["waited"] = time.monotonic() - started

    thread = threading.Thread(target=poll)
    thread.start()
    wait_until(lambda: gauge(b, "verdigris_long_polls_waiting") >= 1)  # the poll is waiting in process B now
    before = counter(b, "received")
    sent = a.api(sender).sending.sendMessage(receiver["wid"], "across processes")
    assert sent.code == 200
    thread.join(70)
    body = got["response"].data["body"]
    assert body["typeWebhook"] == "incomingMessageReceived"
    assert body["messageData"]["textMessageData"]["textMessage"] == "across processes"
    # Woken by process A's notice, not by the poll's own 55-second timeout.
    assert counter(b, "received") > before
    assert got["waited"] < 45


def test_the_webhook_process_pushes_what_another_accepted(make_server: Any) -> None:
    hook = ScriptedReceiver().start()
    try:
        a: Server = make_server(subprocess=True)  # runs the webhook dispatcher
        b: Server = make_server(
            subprocess=True,
            env={
                "VERDIGRIS_DATABASE_URL": a.env["VERDIGRIS_DATABASE_URL"],
                "VERDIGRIS_WEBHOOK_ENABLED": "false",
            },
        )
        receiver = a.instance(1)
        assert a.api(receiver).account.setSettings({"webhookUrl": hook.url}).code == 200
        sent = b.api(b.instance(0)).sending.sendMessage(receiver["wid"], "accepted by B")
        assert sent.code == 200
        hook.received.wait_for(lambda r: "accepted by B" in r.texts(), timeout=60)
    finally:
        hook.stop()
