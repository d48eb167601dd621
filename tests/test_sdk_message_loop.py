"""The GREEN-API message loop driven by the official SDKs, unchanged, against a real server."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from whatsapp_api_client_python import API

from harness import Server, drain, server_env, wait_for

BOT = Path(__file__).parent / "bots" / "echo_bot.py"


def _fresh_pair(server: Server, a_phone: str, b_phone: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Two new instances linked to two new phones, so the test owns their queues."""
    return server.new_instance("--link", a_phone), server.new_instance("--link", b_phone)


def test_sync_sdk_send_receive_and_statuses(server: Server) -> None:
    a_inst, b_inst = _fresh_pair(server, "79991110001", "79991110002")
    a, b = server.api(a_inst), server.api(b_inst)
    drain(a), drain(b)

    sent = a.sending.sendMessage(b_inst["wid"], "Hello *B*")
    assert sent.code == 200 and isinstance(sent.data["idMessage"], str)
    id_message = sent.data["idMessage"]

    incoming = wait_for(b, lambda n: n["typeWebhook"] == "incomingMessageReceived")
    assert incoming["idMessage"] == id_message
    assert isinstance(incoming["timestamp"], int)
    assert incoming["instanceData"] == {
        "idInstance": b_inst["idInstance"],
        "wid": b_inst["wid"],
        "typeInstance": "whatsapp",
    }
    assert incoming["senderData"]["chatId"] == a_inst["wid"]
    assert incoming["senderData"]["sender"] == a_inst["wid"]
    assert incoming["messageData"] == {
        "typeMessage": "textMessage",
        "textMessageData": {"textMessage": "Hello *B*", "isTemplateMessage": False},
    }

    # A sees its own API message and the statuses, in order.
    seen = []
    while len(seen) < 3:
        r = a.receiving.receiveNotification(5)
        assert r.code == 200 and r.data is not None
        seen.append(r.data["body"])
        a.receiving.deleteNotification(r.data["receiptId"])
    assert seen[0]["typeWebhook"] == "outgoingAPIMessageReceived"
    assert [n.get("status") for n in seen[1:]] == ["sent", "delivered"]
    assert all(n["idMessage"] == id_message for n in seen)
    assert seen[1]["chatId"] == b_inst["wid"] and seen[1]["sendByApi"] is True

    # B reads the chat: A learns it was read.
    assert b.marking.readChat(a_inst["wid"]).data == {"setRead": True}
    read = wait_for(a, lambda n: n["typeWebhook"] == "outgoingMessageStatus")
    assert read["status"] == "read" and read["idMessage"] == id_message

    # Journals on both sides.
    history = b.journals.getChatHistory(a_inst["wid"], 10).data
    assert history[0]["idMessage"] == id_message and history[0]["type"] == "incoming"
    assert history[0]["textMessage"] == "Hello *B*" and history[0]["senderId"] == a_inst["wid"]
    out = a.journals.getMessage(b_inst["wid"], id_message).data
    assert out["type"] == "outgoing" and out["statusMessage"] == "read" and out["sendByApi"] is True
    assert [m["idMessage"] for m in a.journals.lastOutgoingMessages(60).data][:1] == [id_message]
    assert [m["idMessage"] for m in b.journals.lastIncomingMessages(60).data][:1] == [id_message]


def test_quoted_reply_and_link_preview(server: Server) -> None:
    a_inst, b_inst = _fresh_pair(server, "79991110003", "79991110004")
    a, b = server.api(a_inst), server.api(b_inst)
    first = a.sending.sendMessage(b_inst["wid"], "Shall I ship it?").data["idMessage"]
    wait_for(b, lambda n: n.get("idMessage") == first)
    reply = b.sending.sendMessage(a_inst["wid"], "Yes, please", quotedMessageId=first).data["idMessage"]
    body = wait_for(a, lambda n: n["typeWebhook"] == "incomingMessageReceived" and n["idMessage"] == reply)
    data = body["messageData"]
    assert data["typeMessage"] == "quotedMessage"
    assert data["extendedTextMessageData"]["text"] == "Yes, please"
    assert data["extendedTextMessageData"]["stanzaId"] == first
    assert data["extendedTextMessageData"]["participant"] == a_inst["wid"]
    assert data["quotedMessage"] == {
        "stanzaId": first,
        "participant": a_inst["wid"],
        "typeMessage": "textMessage",
        "textMessage": "Shall I ship it?",
    }

    link = a.sending.sendMessage(b_inst["wid"], "see https://example.org/x").data["idMessage"]
    body = wait_for(b, lambda n: n.get("idMessage") == link)
    assert body["messageData"]["typeMessage"] == "extendedTextMessage"
    assert body["messageData"]["extendedTextMessageData"]["text"] == "see https://example.org/x"
    plain = a.sending.sendMessage(b_inst["wid"], "see https://example.org/y", linkPreview=False).data[
        "idMessage"
    ]
    assert wait_for(b, lambda n: n.get("idMessage") == plain)["messageData"]["typeMessage"] == "textMessage"

    # Quoting a message that is not in this chat is refused and nothing is queued.
    before = a.queues.getMessagesCount().data["count"]
    bad = a.sending.sendMessage(b_inst["wid"], "x", quotedMessageId="NOPE")
    assert bad.code == 400 and "quotedMessageId" in bad.error
    assert a.queues.getMessagesCount().data["count"] == before


def test_async_sdk_send_receive_and_lenient_delete(server: Server) -> None:
    a_inst, b_inst = _fresh_pair(server, "79991110005", "79991110006")
    a, b = server.api(a_inst), server.api(b_inst)
    drain(b)

    async def scenario() -> None:
        sent = await a.sending.sendMessageAsync(b_inst["wid"], "async hello")
        assert sent.code == 200
        r = None
        for _ in range(10):
            r = await b.receiving.receiveNotificationAsync(5)
            if r.data is not None:
                break
        assert r is not None and r.data["body"]["idMessage"] == sent.data["idMessage"]
        # The async SDK deletes with DELETE .../deleteNotification/{token}/ and the id as JSON body.
        deleted = await b.receiving.deleteNotificationAsync(r.data["receiptId"])
        assert deleted.code == 200 and deleted.data == {"result": True}
        settings = await b.account.getSettingsAsync()
        assert settings.data["wid"] == b_inst["wid"]

    asyncio.run(scenario())
    assert b.receiving.receiveNotification(1).data is None


def test_chatbot_answers_and_sender_receives(server: Server) -> None:
    a_inst, b_inst = _fresh_pair(server, "79991110007", "79991110008")
    a = server.api(a_inst)
    bot = subprocess.Popen(
        [sys.executable, str(BOT), str(b_inst["idInstance"]), b_inst["apiTokenInstance"], server.url],
        env=server_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert bot.stdout is not None
        for line in bot.stdout:  # start-up drains the queue first (one 5 s long-poll)
            if "bot ready" in line:
                break
        drain(a)
        a.sending.sendMessage(b_inst["wid"], "/start")
        welcome = wait_for(a, lambda n: n["typeWebhook"] == "incomingMessageReceived", timeout=60)
        # A phone created without a name shows its number as its name.
        assert welcome["messageData"]["textMessageData"]["textMessage"] == "Welcome, 79991110007!"
        ping = a.sending.sendMessage(b_inst["wid"], "ping").data["idMessage"]
        pong = wait_for(a, lambda n: n["typeWebhook"] == "incomingMessageReceived", timeout=60)
        assert pong["messageData"]["typeMessage"] == "quotedMessage"
        assert pong["messageData"]["extendedTextMessageData"]["text"] == "pong"
        assert pong["messageData"]["quotedMessage"]["stanzaId"] == ping
        a.sending.sendMessage(b_inst["wid"], "anything")
        echo = wait_for(a, lambda n: n["typeWebhook"] == "incomingMessageReceived", timeout=60)
        assert echo["messageData"]["textMessageData"]["textMessage"] == "echo: anything"
    finally:
        bot.kill()
        bot.wait()


def test_sandbox_phone_talks_to_instance(server: Server) -> None:
    inst = server.new_instance("--link", "79991110009")
    api = server.api(inst)
    drain(api)
    server.new_phone("79991110010", "Dora")
    r = server.sandbox(
        "POST", "/phones/79991110010/messages", json={"chatId": inst["wid"], "message": "hi there"}
    )
    assert r.status_code == 200, r.text
    body = wait_for(api, lambda n: n["typeWebhook"] == "incomingMessageReceived")
    assert body["idMessage"] == r.json()["idMessage"]
    assert body["senderData"]["senderName"] == "Dora"
    reply = api.sending.sendMessage("79991110010@c.us", "hello Dora").data["idMessage"]
    wait_for(api, lambda n: n.get("status") == "delivered" and n["idMessage"] == reply)
    inbox = server.sandbox("GET", "/phones/79991110010/messages", params={"direction": "incoming"}).json()
    assert inbox[-1]["idMessage"] == reply and inbox[-1]["content"]["text"] == "hello Dora"
    assert server.sandbox("POST", "/phones/79991110010/read", json={"chatId": inst["wid"]}).json() == {
        "read": 1
    }
    assert wait_for(api, lambda n: n.get("status") == "read")["idMessage"] == reply


def test_message_to_number_without_account_gets_no_account(server: Server) -> None:
    inst = server.new_instance("--link", "79991110011")
    api = server.api(inst)
    drain(api)
    sent = api.sending.sendMessage("79000000000@c.us", "anyone?").data["idMessage"]
    status = wait_for(
        api, lambda n: n["typeWebhook"] in ("outgoingMessageStatus", "outgoingAPIMessageReceived")
    )
    # No outgoingAPIMessageReceived for a number without an account, only the status.
    assert status["typeWebhook"] == "outgoingMessageStatus"
    assert status["status"] == "noAccount" and status["idMessage"] == sent


@pytest.mark.slow
def test_long_poll_waits_and_wakes(server: Server) -> None:
    a_inst, b_inst = _fresh_pair(server, "79991110012", "79991110013")
    b = server.api(b_inst)
    drain(b)
    started = time.monotonic()
    assert b.receiving.receiveNotification(5).data is None
    waited = time.monotonic() - started
    assert waited >= 4.0  # loosely: it did wait for the timeout, it did not answer at once

    def send_later() -> None:
        time.sleep(1.0)
        API.GreenAPI(
            str(a_inst["idInstance"]), a_inst["apiTokenInstance"], host=server.url
        ).sending.sendMessage(b_inst["wid"], "wake up")

    import threading

    threading.Thread(target=send_later).start()
    started = time.monotonic()
    r = b.receiving.receiveNotification(30)
    assert r.data is not None and r.data["body"]["messageData"]["textMessageData"]["textMessage"] == "wake up"
    assert time.monotonic() - started < 25  # woken by the message, not by the timeout
