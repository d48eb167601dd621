"""The WhatsApp Web channel end to end: a real server, the official SDK and bot library on the
instance's side, and tests/fake_wa_gateway.py playing the gateway process and WhatsApp behind it.

An instance on this channel is linked by QR code or pairing code, sends text through the durable
queue (statuses from receipts), receives text into its notification queue, and loses its link the
ways a linked device does. Nothing here reaches WhatsApp.
"""

from __future__ import annotations

import hashlib
import itertools
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from fake_wa_gateway import FakeWaGateway
from harness import Server, check_contract, decode_qr, drain, server_env, wait_for
from sandbox_kit import wait_until

BOT = Path(__file__).parent / "bots" / "echo_bot.py"
_phones = itertools.count(1)


def env_for(gateway: FakeWaGateway) -> dict[str, str]:
    return {
        "VERDIGRIS_WHATSAPP_WEB_ENABLED": "true",
        "VERDIGRIS_WHATSAPP_WEB_GATEWAY": "false",  # the fake plays the gateway
        "VERDIGRIS_WHATSAPP_WEB_SOCKET": str(gateway.socket),
        "VERDIGRIS_WHATSAPP_WEB_SECRET_FILE": str(gateway.secret_file),
    }


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeWaGateway]:
    fake = FakeWaGateway(tmp_path_factory.mktemp("wa")).start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def srv(gateway: FakeWaGateway, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = Server(tmp_path_factory.mktemp("waweb"), env=env_for(gateway)).start()
    wait_until(lambda: gateway.listener is not None and gateway.listener.connections > 0)
    yield server
    server.stop()
    server.drop_database()


def phone() -> str:
    return f"7999300{next(_phones):04d}"


def new_instance(srv: Server) -> tuple[dict[str, Any], Any]:
    inst = srv.new_instance("--channel", "whatsapp_web")
    api = srv.api(inst)
    assert api.account.setSettings({"stateWebhook": "yes"}).code == 200
    drain(api, timeout=1)
    return inst, api


def linked(srv: Server, gateway: FakeWaGateway) -> tuple[dict[str, Any], Any, str]:
    """A new instance on this channel, linked by scanning its QR code; returns its number too."""
    inst, api = new_instance(srv)
    number = phone()
    code = api.account.qr().data
    assert code["type"] == "qrCode"
    gateway.scan(str(inst["idInstance"]), number, "Shop")
    wait_for(api, lambda b: b.get("stateInstance") == "authorized")
    drain(api, timeout=1)
    return inst, api, number


def states(bodies: list[dict[str, Any]]) -> list[str]:
    return [b["stateInstance"] for b in bodies if b["typeWebhook"] == "stateInstanceChanged"]


def test_link_by_qr_code_send_statuses_receive_and_read(srv: Server, gateway: FakeWaGateway) -> None:
    inst, api = new_instance(srv)
    session = str(inst["idInstance"])
    assert api.account.getStateInstance().data == {"stateInstance": "notAuthorized"}

    # qr: the gateway's QR text, rendered as the PNG the SDK expects (a phone camera reads it back).
    first = api.account.qr().data
    assert first["type"] == "qrCode"
    assert decode_qr(first["message"]) == f"2@fake-ref-{session}-1,fake-noise-key,fake-identity-key,fake-adv"
    assert decode_qr(api.account.qr().data["message"]).startswith(f"2@fake-ref-{session}-2,")  # it rotates

    number = phone()
    gateway.scan(session, number, "Shop")
    assert states(drain(api, timeout=5)) == ["starting", "authorized"]
    assert api.account.getStateInstance().data == {"stateInstance": "authorized"}
    assert api.account.getSettings().data["wid"] == f"{number}@c.us"
    assert api.account.qr().data["type"] == "alreadyLogged"

    # Sending: the text goes to the gateway for the customer's JID; statuses follow its receipts.
    sent = api.sending.sendMessage("79995550001@c.us", "Your order has shipped")
    assert sent.code == 200
    out = gateway.next_sent()
    assert out["to"] == "79995550001@s.whatsapp.net"
    assert out["message"] == {"kind": "text", "text": "Your order has shipped"}
    bodies = drain(api)
    assert [(b["typeWebhook"], b.get("status")) for b in bodies] == [
        ("outgoingAPIMessageReceived", None),
        ("outgoingMessageStatus", "sent"),
        ("outgoingMessageStatus", "delivered"),  # the receipt overtook the answer on the socket
    ]
    assert all(b["idMessage"] == sent.data["idMessage"] for b in bodies)
    gateway.receipt(session, [out["id"]], out["to"], "read")
    read = wait_for(api, lambda b: b["typeWebhook"] == "outgoingMessageStatus")
    assert (read["idMessage"], read["status"]) == (sent.data["idMessage"], "read")
    gateway.receipt(session, [out["id"]], out["to"], "delivered")  # late: statuses only go forward
    assert api.journals.getMessage("79995550001@c.us", sent.data["idMessage"]).data["statusMessage"] == "read"

    # Receiving: a customer replies, quoting the business's message.
    wa_id = gateway.incoming(session, "79995550001", "Thanks! When?", name="Ann", quoted_id=out["id"])
    got = wait_for(api, lambda b: b["typeWebhook"] == "incomingMessageReceived")
    check_contract(got)
    assert got["idMessage"] == wa_id
    assert got["senderData"]["chatId"] == "79995550001@c.us" and got["senderData"]["senderName"] == "Ann"
    assert got["messageData"]["typeMessage"] == "quotedMessage"
    assert got["messageData"]["extendedTextMessageData"]["text"] == "Thanks! When?"
    assert got["messageData"]["quotedMessage"]["stanzaId"] == sent.data["idMessage"]

    # The gateway sends the same event again (its acknowledgement was lost): recorded once.
    gateway.incoming(session, "79995550001", "Thanks! When?", name="Ann", wa_id=wa_id)
    history = api.journals.getChatHistory("79995550001@c.us", 10).data
    assert [m["idMessage"] for m in history if m["type"] == "incoming"] == [wa_id]
    assert drain(api, timeout=5) == []

    # The business reads the chat: WhatsApp is told, with WhatsApp's ids.
    assert api.marking.readChat("79995550001@c.us").data == {"setRead": True}
    told = gateway.reads.get(timeout=30)
    assert told["ids"] == [wa_id] and told["chat"] == "79995550001@s.whatsapp.net"

    # A reply quoting the customer's message carries WhatsApp's id of it to the gateway.
    api.sending.sendMessage("79995550001@c.us", "Tomorrow.", quotedMessageId=wa_id)
    reply = gateway.next_sent()
    assert reply["message"]["quoted"] == {
        "id": wa_id,
        "sender": "79995550001@s.whatsapp.net",
        "text": "Thanks! When?",
    }


def test_link_by_pairing_code(srv: Server, gateway: FakeWaGateway) -> None:
    inst, api = new_instance(srv)
    number = phone()
    r = srv.wire(inst, "getAuthorizationCode", verb="POST", json={"phoneNumber": int(number)})
    assert r.status_code == 200, r.text
    code = r.json()["code"]
    assert r.json()["status"] is True and len(code) == 8 and code.isalnum()
    gateway.enter_pairing_code(str(inst["idInstance"]), code)
    assert states(drain(api, timeout=5)) == ["starting", "authorized"]
    assert api.account.getSettings().data["wid"] == f"{number}@c.us"
    again = srv.wire(inst, "getAuthorizationCode", verb="POST", json={"phoneNumber": int(number)})
    assert again.status_code == 400 and "already authorized" in again.text


def test_losing_the_link_logout_and_reboot(srv: Server, gateway: FakeWaGateway) -> None:
    inst, api, _ = linked(srv, gateway)
    session = str(inst["idInstance"])

    # Another client took the session over: not authorized, the number kept; reboot takes it back.
    gateway.stream_replaced(session)
    assert states(drain(api, timeout=5)) == ["notAuthorized"]
    assert api.account.getSettings().data["wid"] != ""
    assert api.account.reboot().data == {"isReboot": True}
    wait_until(lambda: api.account.getStateInstance().data == {"stateInstance": "authorized"})

    # WhatsApp bans the number for a while: blocked; back when the connection is.
    gateway.temporary_ban(session, 3600)
    assert states(drain(api))[-1:] == ["blocked"]
    gateway.emit(session, "connected", {})
    wait_until(lambda: api.account.getStateInstance().data == {"stateInstance": "authorized"})

    # The phone removes the linked device: the link is gone.
    gateway.phone_logs_out(session)
    assert states(drain(api, timeout=5))[-1:] == ["notAuthorized"]
    assert api.account.getSettings().data["wid"] == ""

    # Linked again, then logged out through the API: the gateway ends the session.
    gateway.scan(session, phone())
    wait_until(lambda: api.account.getStateInstance().data == {"stateInstance": "authorized"})
    assert api.account.logout().data == {"isLogout": True}
    assert api.account.getStateInstance().data == {"stateInstance": "notAuthorized"}
    assert "logout" in gateway.requests and gateway.session(session).jid == ""


def test_sends_wait_while_whatsapp_is_unreachable(srv: Server, gateway: FakeWaGateway) -> None:
    inst, api, _ = linked(srv, gateway)
    gateway.accepting = False
    try:
        sent = api.sending.sendMessage("79995550002@c.us", "queued while offline")
        assert sent.code == 200
        wait_until(lambda: gateway.requests.count("send") >= 1)
        assert gateway.sent.empty()
        status = api.journals.getMessage("79995550002@c.us", sent.data["idMessage"]).data["statusMessage"]
        assert status == "pending"  # in the queue again, not failed
    finally:
        gateway.accepting = True
    out = gateway.next_sent(timeout=60)  # the retry after the pause
    assert out["message"]["text"] == "queued while offline"
    wait_until(
        lambda: (
            api.journals.getMessage("79995550002@c.us", sent.data["idMessage"]).data["statusMessage"]
            == "delivered"
        )
    )


def test_a_server_error_receipt_fails_a_message_not_yet_delivered(
    srv: Server, gateway: FakeWaGateway
) -> None:
    inst, api, _ = linked(srv, gateway)
    session = str(inst["idInstance"])
    gateway.auto_deliver = False
    try:
        sent = api.sending.sendMessage("79995550020@c.us", "to a phone that never takes it")
        out = gateway.next_sent()
        wait_for(api, lambda b: b.get("status") == "sent")
        gateway.receipt(session, [out["id"]], out["to"], "failed")
        failed = wait_for(api, lambda b: b["typeWebhook"] == "outgoingMessageStatus")
        assert (failed["idMessage"], failed["status"]) == (sent.data["idMessage"], "failed")
        # Once delivered, a late server error changes nothing.
        other = api.sending.sendMessage("79995550020@c.us", "this one arrives")
        second = gateway.next_sent()
        gateway.receipt(session, [second["id"]], second["to"], "delivered")
        gateway.receipt(session, [second["id"]], second["to"], "failed")
        status = api.journals.getMessage("79995550020@c.us", other.data["idMessage"]).data["statusMessage"]
        assert status == "delivered"
    finally:
        gateway.auto_deliver = True


def test_what_the_channel_does_not_offer_is_refused_clearly(srv: Server, gateway: FakeWaGateway) -> None:
    inst, api, _ = linked(srv, gateway)
    r = srv.wire(inst, "sendTextStatus", verb="POST", json={"message": "hi"})
    assert r.status_code == 501 and "sendTextStatus is not available for this instance" in r.text
    assert gateway.sent.empty()


def test_files_polls_edits_deletions_typing_and_checks(
    srv: Server, gateway: FakeWaGateway, tmp_path: Path
) -> None:
    inst, api, _ = linked(srv, gateway)
    session = str(inst["idInstance"])
    chat, jid = "79995550010@c.us", "79995550010@s.whatsapp.net"
    assert api.account.setSettings({"pollMessageWebhook": "yes"}).code == 200

    # A file is uploaded first, then sent by the upload's reference.
    photo = tmp_path / "shelf.png"
    photo.write_bytes(b"\x89PNG\r\n\x1a\n" + b"shelf" * 40)
    sent = api.sending.sendFileByUpload(chat, str(photo), "shelf.png", "in stock")
    assert sent.code == 200
    out = gateway.next_sent()
    body = out["message"]
    assert (body["kind"], body["media_type"], body["mime_type"], body["caption"]) == (
        "file",
        "image",
        "image/png",
        "in stock",
    )
    assert gateway.uploads[body["upload"]["direct_path"]] == photo.read_bytes()

    poll = api.sending.sendPoll(chat, "Size?", [{"optionName": "S"}, {"optionName": "M"}], True)
    assert gateway.next_sent()["message"] == {
        "kind": "poll",
        "name": "Size?",
        "options": ["S", "M"],
        "multiple": True,
    }
    # A customer's vote names the options by their hashes (as WhatsApp's decrypted votes do).
    poll_wa = gateway.session(session).sent[-1]["id"]
    wait_until(
        lambda: api.journals.getMessage(chat, poll.data["idMessage"]).data["statusMessage"] != "pending"
    )
    m_hash = hashlib.sha256(b"M").hexdigest()
    gateway.message(session, "79995550010", {"kind": "poll_vote", "target_id": poll_wa, "selected": [m_hash]})
    vote = wait_for(api, lambda b: b.get("messageData", {}).get("typeMessage") == "pollUpdateMessage")
    assert vote["messageData"]["pollMessageData"]["stanzaId"] == poll.data["idMessage"]
    assert [v["optionVoters"] for v in vote["messageData"]["pollMessageData"]["votes"]] == [[], [chat]]

    # Edit and delete the photo's caption, then the photo: WhatsApp's id names it.
    assert api.serviceMethods.editMessage(chat, sent.data["idMessage"], "sold out").code == 200
    edit = gateway.next_sent()["message"]
    assert edit["kind"] == "edit" and edit["caption"] == "sold out" and edit["media_type"] == "image"
    assert edit["target"] == {"id": out["id"], "chat": jid, "from_me": True}
    wait_until(
        lambda: api.journals.getMessage(chat, sent.data["idMessage"]).data.get("caption") == "sold out"
    )
    assert api.serviceMethods.deleteMessage(chat, sent.data["idMessage"]).code == 200
    deletion = gateway.next_sent()["message"]
    assert deletion["kind"] == "delete" and deletion["target"]["id"] == out["id"]

    # Typing is shown, never journalled.
    r = srv.wire(inst, "sendTyping", verb="POST", json={"chatId": chat, "typingTime": 3000})
    assert r.status_code == 200, r.text
    typing = gateway.typing.get(timeout=30)
    assert (typing["chat"], typing["ms"], typing["recording"]) == (jid, 3000, False)


def test_received_files_edits_deletions_and_checks(srv: Server, gateway: FakeWaGateway) -> None:
    inst, api, _ = linked(srv, gateway)
    session = str(inst["idInstance"])
    assert (
        api.account.setSettings({"editedMessageWebhook": "yes", "deletedMessageWebhook": "yes"}).code == 200
    )

    # A received file is downloaded through the gateway into the media store.
    wa_id = gateway.sends_file(
        session, "79995550010", b"%PDF-1.4 invoice", "application/pdf", file_name="inv.pdf"
    )
    got = wait_for(api, lambda b: b.get("idMessage") == wa_id)
    check_contract(got)
    data = got["messageData"]["fileMessageData"]
    assert data["fileName"] == "inv.pdf"
    assert httpx.get(data["downloadUrl"], timeout=30, verify=srv.verify).content == b"%PDF-1.4 invoice"
    # One WhatsApp no longer has: announced without its file, not lost.
    gone = gateway.message(
        session,
        "79995550010",
        {"kind": "file", "media_type": "video", "mime_type": "video/mp4", "media": "nope"},
    )
    got = wait_for(api, lambda b: b.get("idMessage") == gone)
    assert got["messageData"]["typeMessage"] == "videoMessage"
    assert got["messageData"]["fileMessageData"]["downloadUrl"] == ""

    # The customer edits and deletes a message of theirs.
    said = gateway.incoming(session, "79995550010", "at 5")
    wait_for(api, lambda b: b.get("idMessage") == said)
    gateway.message(session, "79995550010", {"kind": "edit", "target_id": said, "text": "at 6"})
    edited = wait_for(api, lambda b: b.get("messageData", {}).get("typeMessage") == "editedMessage")
    assert edited["messageData"]["editedMessageData"] == {"stanzaId": said, "textMessage": "at 6"}
    gateway.message(session, "79995550010", {"kind": "delete", "target_id": said})
    deleted = wait_for(api, lambda b: b.get("messageData", {}).get("typeMessage") == "deletedMessage")
    assert deleted["messageData"]["deletedMessageData"] == {"stanzaId": said}

    # checkWhatsapp asks WhatsApp through the session.
    gateway.registered.add("79995550011")
    assert api.serviceMethods.checkWhatsapp(79995550011).data == {"existsWhatsapp": True}
    assert api.serviceMethods.checkWhatsapp(79995550012).data == {"existsWhatsapp": False}


def test_files_over_one_frame_cross_in_parts(srv: Server, gateway: FakeWaGateway, tmp_path: Path) -> None:
    """A file bigger than one protocol frame (16 MiB) goes to the gateway and comes back from it
    in parts, both ways: nothing is refused for its size below the media store's limit."""
    inst, api, _ = linked(srv, gateway)
    session = str(inst["idInstance"])
    big = b"%PDF-1.4\n" + bytes(range(256)) * (20 * 4096)  # 20 MiB and 9 bytes
    path = tmp_path / "catalogue.pdf"
    path.write_bytes(big)
    sent = api.sending.sendFileByUpload("79995550020@c.us", str(path), "catalogue.pdf")
    assert sent.code == 200, sent.data
    body = gateway.next_sent(timeout=60)["message"]
    assert body["media_type"] == "document"
    assert gateway.uploads[body["upload"]["direct_path"]] == big
    assert gateway.parts == {}  # every part was handed over

    wa_id = gateway.sends_file(session, "79995550020", big, "application/pdf", file_name="back.pdf")
    got = wait_for(api, lambda b: b.get("idMessage") == wa_id, timeout=60)
    check_contract(got)
    url = got["messageData"]["fileMessageData"]["downloadUrl"]
    assert httpx.get(url, timeout=60, verify=srv.verify).content == big


def test_events_wait_for_a_server_that_is_down(make_server: Any, tmp_path: Path) -> None:
    """The gateway keeps each event until the server committed it: what happens while the server
    is stopped reaches it when it is back, once."""
    gateway = FakeWaGateway(tmp_path).start()
    try:
        events_survive(gateway, make_server(env=env_for(gateway), data_dir=tmp_path / "down"))
    finally:
        gateway.stop()


def events_survive(gateway: FakeWaGateway, srv: Server) -> None:
    inst, api, _ = linked(srv, gateway)
    session = str(inst["idInstance"])
    srv.stop()
    wa_id = f"A5F0DOWN{next(_phones):012d}"
    seq = gateway.emit(
        session,
        "message",
        {
            "id": wa_id,
            "chat": "79995550004@s.whatsapp.net",
            "sender": "79995550004@s.whatsapp.net",
            "sender_name": "Bo",
            "kind": "text",
            "text": "are you there?",
            "timestamp_ms": int(time.time() * 1000),
        },
    )
    assert gateway.listener is not None and seq in gateway.listener.unacked
    srv.start()
    got = wait_for(srv.api(inst), lambda b: b["typeWebhook"] == "incomingMessageReceived")
    assert (got["idMessage"], got["messageData"]["textMessageData"]["textMessage"]) == (
        wa_id,
        "are you there?",
    )
    gateway.wait_acked(seq)
    srv.stop()


def test_the_bot_library_echo_bot_runs_unchanged(srv: Server, gateway: FakeWaGateway) -> None:
    inst, api, _ = linked(srv, gateway)
    session = str(inst["idInstance"])
    bot = subprocess.Popen(
        [sys.executable, str(BOT), str(inst["idInstance"]), inst["apiTokenInstance"], srv.url],
        env=server_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert bot.stdout is not None
        for line in bot.stdout:
            if "bot ready" in line:
                break
        gateway.incoming(session, "79995550005", "/start", name="Cy")
        assert gateway.next_sent(timeout=60)["message"]["text"] == "Welcome, Cy!"
        ping = gateway.incoming(session, "79995550005", "ping", name="Cy")
        pong = gateway.next_sent(timeout=60)
        assert pong["to"] == "79995550005@s.whatsapp.net"
        assert pong["message"]["text"] == "pong" and pong["message"]["quoted"]["id"] == ping
        gateway.incoming(session, "79995550005", "anything", name="Cy")
        assert gateway.next_sent(timeout=60)["message"]["text"] == "echo: anything"
    finally:
        bot.kill()
        bot.wait()


def test_locations_contacts_and_reactions_both_ways(srv: Server, gateway: FakeWaGateway) -> None:
    inst, api, _ = linked(srv, gateway)
    session = str(inst["idInstance"])
    chat = "79995550006@c.us"

    api.sending.sendLocation(chat, 55.7558, 37.6173, "Shop", "Tverskaya 1")
    assert gateway.next_sent()["message"] == {
        "kind": "location",
        "latitude": 55.7558,
        "longitude": 37.6173,
        "name": "Shop",
        "address": "Tverskaya 1",
    }
    api.sending.sendContact(chat, {"phoneContact": 79990004444, "firstName": "Ann", "lastName": "Lee"})
    card = gateway.next_sent()["message"]
    assert card["kind"] == "contacts" and card["contacts"][0]["display_name"] == "Ann Lee"
    assert "79990004444" in card["contacts"][0]["vcard"]

    # The customer writes; the business reacts to that message: WhatsApp's key names it.
    wa_id = gateway.incoming(session, "79995550006", "Is it open today?", name="Dee")
    wait_for(api, lambda b: b.get("idMessage") == wa_id)
    r = srv.wire(
        inst, "sendReaction", verb="POST", json={"chatId": chat, "idMessage": wa_id, "reaction": "👍"}
    )
    assert r.status_code == 200, r.text
    reaction = gateway.next_sent()["message"]
    assert reaction["kind"] == "reaction" and reaction["emoji"] == "👍"
    assert reaction["target"] == {"id": wa_id, "chat": "79995550006@s.whatsapp.net", "from_me": False}
    drain(api)

    # What the customer sends back: a location, a contact, a reaction to the business's location.
    located = gateway.emit(
        session,
        "message",
        {
            "id": "A5F0LOC1",
            "chat": "79995550006@s.whatsapp.net",
            "sender": "79995550006@s.whatsapp.net",
            "sender_name": "Dee",
            "kind": "location",
            "latitude": 1.5,
            "longitude": 2.5,
            "name": "Home",
            "address": "Main st",
            "timestamp_ms": int(time.time() * 1000),
        },
    )
    gateway.wait_acked(located)
    got = wait_for(api, lambda b: b["typeWebhook"] == "incomingMessageReceived")
    assert got["messageData"]["typeMessage"] == "locationMessage"
    assert got["messageData"]["locationMessageData"]["latitude"] == 1.5
    assert got["messageData"]["locationMessageData"]["nameLocation"] == "Home"
    carded = gateway.emit(
        session,
        "message",
        {
            "id": "A5F0VCF1",
            "chat": "79995550006@s.whatsapp.net",
            "sender": "79995550006@s.whatsapp.net",
            "sender_name": "Dee",
            "kind": "contacts",
            "contacts": [{"display_name": "Bo", "vcard": "BEGIN:VCARD\nVERSION:3.0\nFN:Bo\nEND:VCARD"}],
            "timestamp_ms": int(time.time() * 1000),
        },
    )
    gateway.wait_acked(carded)
    got = wait_for(api, lambda b: b["typeWebhook"] == "incomingMessageReceived")
    assert got["messageData"]["typeMessage"] == "contactMessage"
    assert got["messageData"]["contactMessageData"]["displayName"] == "Bo"
    sent_so_far = api.journals.lastOutgoingMessages(60).data
    location_id = next(m["idMessage"] for m in sent_so_far if m["typeMessage"] == "locationMessage")
    location_wa = next(s["id"] for s in gateway.session(session).sent if s["message"]["kind"] == "location")
    reacted = gateway.emit(
        session,
        "message",
        {
            "id": "A5F0RCT1",
            "chat": "79995550006@s.whatsapp.net",
            "sender": "79995550006@s.whatsapp.net",
            "sender_name": "Dee",
            "kind": "reaction",
            "emoji": "❤",
            "target_id": location_wa,
            "timestamp_ms": int(time.time() * 1000),
        },
    )
    gateway.wait_acked(reacted)
    got = wait_for(api, lambda b: b["typeWebhook"] == "incomingMessageReceived")
    assert got["messageData"]["typeMessage"] == "reactionMessage"
    assert got["messageData"]["extendedTextMessageData"]["text"] == "❤"
    assert got["messageData"]["quotedMessage"]["stanzaId"] == location_id


def test_messages_sent_from_the_phone_are_announced(srv: Server, gateway: FakeWaGateway) -> None:
    inst, api, number = linked(srv, gateway)
    session = str(inst["idInstance"])
    wa_id = gateway.phone_sends(session, "79995550007", "typed on the phone")
    got = wait_for(api, lambda b: b["typeWebhook"] == "outgoingMessageReceived")
    assert got["idMessage"] == wa_id
    assert (
        got["senderData"]["chatId"] == "79995550007@c.us" and got["senderData"]["sender"] == f"{number}@c.us"
    )
    assert got["messageData"]["textMessageData"]["textMessage"] == "typed on the phone"
    gateway.receipt(session, [wa_id], "79995550007@s.whatsapp.net", "delivered")
    status = wait_for(api, lambda b: b["typeWebhook"] == "outgoingMessageStatus")
    assert (status["idMessage"], status["status"], status["sendByApi"]) == (wa_id, "delivered", False)
    history = api.journals.getChatHistory("79995550007@c.us", 5).data
    assert [(m["idMessage"], m["type"]) for m in history] == [(wa_id, "outgoing")]


def test_group_chats_both_ways(srv: Server, gateway: FakeWaGateway) -> None:
    """A group the linked number is in: a member's message names the group as the chat and the
    member as the sender; an answer goes to the group's JID."""
    inst, api, _ = linked(srv, gateway)
    session = str(inst["idInstance"])
    group = "120363000000000042"
    wa_id = gateway.message(
        session,
        "79995550030",
        {
            "chat": f"{group}@g.us",
            "sender": "79995550030@s.whatsapp.net",
            "sender_name": "Eve",
            "kind": "text",
            "text": "who brings the cake?",
        },
    )
    got = wait_for(api, lambda b: b.get("idMessage") == wa_id)
    check_contract(got)
    assert got["senderData"]["chatId"] == f"{group}@g.us"
    assert got["senderData"]["sender"] == "79995550030@c.us" and got["senderData"]["senderName"] == "Eve"
    api.sending.sendMessage(f"{group}@g.us", "I do", quotedMessageId=wa_id)
    out = gateway.next_sent()
    assert out["to"] == f"{group}@g.us"
    assert out["message"]["quoted"] == {
        "id": wa_id,
        "sender": "79995550030@s.whatsapp.net",
        "text": "who brings the cake?",
    }


def test_groups_through_the_linked_account(srv: Server, gateway: FakeWaGateway) -> None:
    inst, api, number = linked(srv, gateway)
    me = f"{number}@c.us"
    made = api.groups.createGroup("Team", ["79995550040@c.us", "79995550041@c.us"]).data
    assert made["created"] is True and made["chatId"].endswith("@g.us")
    group_id = made["chatId"]
    assert made["groupInviteLink"].startswith("https://chat.whatsapp.com/FakeInvite")
    data = api.groups.getGroupData(group_id).data
    assert data["subject"] == "Team" and data["owner"] == me
    assert {p["id"]: (p["isAdmin"], p["isSuperAdmin"]) for p in data["participants"]} == {
        me: (True, True),
        "79995550040@c.us": (False, False),
        "79995550041@c.us": (False, False),
    }
    assert api.groups.updateGroupName(group_id, "Team A").data == {"updateGroupName": True}
    assert api.groups.addGroupParticipant(group_id, "79995550042@c.us").data == {"addParticipant": True}
    assert api.groups.addGroupParticipant(group_id, "79995550042@c.us").data == {"addParticipant": False}
    assert api.groups.setGroupAdmin(group_id, "79995550040@c.us").data == {"setGroupAdmin": True}
    assert api.groups.removeGroupParticipant(group_id, "79995550041@c.us").data == {"removeParticipant": True}
    r = srv.wire(
        inst,
        "updateGroupSettings",
        verb="POST",
        json={"groupId": group_id, "allowParticipantsSendMessages": False},
    )
    assert r.json() == {"updateGroupSettings": True}
    data = api.groups.getGroupData(group_id).data
    assert data["subject"] == "Team A"
    roles = {p["id"]: p["isAdmin"] for p in data["participants"]}
    assert roles == {me: True, "79995550040@c.us": True, "79995550042@c.us": False}
    assert gateway.groups[group_id.replace("@g.us", "@g.us")]["announce"] is True
    assert api.groups.leaveGroup(group_id).data == {"leaveGroup": True}
    r = srv.wire(inst, "getGroupData", verb="POST", json={"groupId": group_id})
    assert r.status_code == 400 and "Group not found" in r.text
    r = srv.wire(inst, "getGroupData", verb="POST", json={"groupId": "120363999999999999@g.us"})
    assert r.status_code == 400 and "Group not found" in r.text


PNG = b"\x89PNG\r\n\x1a\n" + b"picture" * 20


def test_avatars_contact_profiles_address_book_and_pictures(make_server: Any, tmp_path: Path) -> None:
    """Asked of WhatsApp as the linked account sees it; avatars are no number lookups (they never
    count against the checkWhatsapp cap), contact profiles are."""
    gateway = FakeWaGateway(tmp_path).start()
    try:
        env = {**env_for(gateway), "VERDIGRIS_WHATSAPP_WEB_CHECKS_PER_HOUR": "1"}
        profiles_as_seen(gateway, make_server(env=env), tmp_path)
    finally:
        gateway.stop()


def profiles_as_seen(gateway: FakeWaGateway, srv: Server, tmp_path: Path) -> None:
    inst, api, number = linked(srv, gateway)
    session = str(inst["idInstance"])
    ann, bob, zed = "79995550050", "79995550051", "79995550052"
    gateway.registered |= {ann, bob}
    gateway.pictures[f"{ann}@s.whatsapp.net"] = "https://pps.fake/ann.jpg"
    gateway.hidden.add(f"{bob}@s.whatsapp.net")
    gateway.profiles[f"{ann}@s.whatsapp.net"] = {"about": "Florist", "business": True, "push_name": "Ann's"}

    for _ in range(3):  # over the cap of 1 lookup an hour: avatars do not count
        assert api.serviceMethods.getAvatar(f"{ann}@c.us").data == {
            "urlAvatar": "https://pps.fake/ann.jpg",
            "available": True,
            "existsWhatsapp": True,
            "reason": "",
        }
    hidden = api.serviceMethods.getAvatar(f"{bob}@c.us").data
    assert (hidden["urlAvatar"], hidden["available"]) == ("", False)

    info = api.serviceMethods.getContactInfo(f"{ann}@c.us")
    assert info.code == 200, info.data
    assert (info.data["avatar"], info.data["name"], info.data["description"], info.data["isBusiness"]) == (
        "https://pps.fake/ann.jpg",
        "Ann's",
        "Florist",
        True,
    )
    r = srv.wire(inst, "getContactInfo", verb="POST", json={"chatId": f"{zed}@c.us"})
    assert r.status_code == 429 and "number lookups" in r.text  # that one was the hour's lookup
    assert api.serviceMethods.getAvatar(f"{bob}@c.us").code == 200

    # The address book the phone synced (whatsmeow's contact store), next to the phonebook and chats.
    gateway.address_books[session] = [
        {
            "jid": f"{ann}@s.whatsapp.net",
            "full_name": "Ann Florist",
            "push_name": "Ann's",
            "business_name": "",
        },
        {"jid": f"{bob}@s.whatsapp.net", "full_name": "", "push_name": "Bobby", "business_name": ""},
    ]
    contacts = {c["id"]: c for c in api.serviceMethods.getContacts().data}
    assert contacts[f"{ann}@c.us"] == {
        "id": f"{ann}@c.us",
        "name": "Ann Florist",
        "contactName": "",
        "type": "user",
    }
    assert contacts[f"{bob}@c.us"]["name"] == "Bobby"
    assert len(api.serviceMethods.getContacts(group=False, count=1).data) == 1
    gateway.accepting = False  # WhatsApp out of reach: the server's phonebook and chats still list
    assert api.serviceMethods.getContacts().code == 200
    gateway.accepting = True

    # Pictures: the account's own and a group's, as bytes through the gateway.
    picture = tmp_path / "me.png"
    picture.write_bytes(PNG)
    set_own = api.account.setProfilePicture(str(picture)).data
    assert set_own["setProfilePicture"] is True
    assert set_own["urlAvatar"] == gateway.pictures[f"{number}@s.whatsapp.net"]
    assert api.account.getWaSettings().data["avatar"] == set_own["urlAvatar"]
    group_id = api.groups.createGroup("Shop", [f"{ann}@c.us"]).data["chatId"]
    set_group = api.groups.setGroupPicture(group_id, str(picture)).data
    assert set_group["setGroupPicture"] is True and set_group["urlAvatar"].startswith("https://pps.fake/")
    assert api.serviceMethods.getAvatar(group_id).data["urlAvatar"] == set_group["urlAvatar"]


def test_history_sync_fills_the_journal_without_notifications(srv: Server, gateway: FakeWaGateway) -> None:
    inst, api, number = linked(srv, gateway)
    session = str(inst["idInstance"])
    chat, jid = "79995550060@c.us", "79995550060@s.whatsapp.net"
    now = int(time.time() * 1000)
    live = gateway.incoming(session, "79995550060", "hello again")  # arrives live before the sync
    wait_for(api, lambda b: b.get("idMessage") == live)

    def past(wa_id: str, ago_s: int, text: str, *, from_me: bool = False) -> dict[str, Any]:
        return {
            "id": wa_id,
            "chat": jid,
            "sender": "" if from_me else jid,
            "sender_name": "" if from_me else "Ann",
            "from_me": from_me,
            "timestamp_ms": now - ago_s * 1000,
            "kind": "text",
            "text": text,
        }

    gateway.history(
        session,
        [
            past("HIST0OLD", 30 * 86_400, "a month ago"),  # older than the 7 days kept
            past("HIST0ASK", 3600, "do you deliver?"),
            past("HIST0ANS", 3500, "we do", from_me=True),
            {
                **past("HIST0PIC", 3400, ""),
                "kind": "file",
                "media_type": "image",
                "mime_type": "image/jpeg",
                "media": "x",
            },
            past(live, 0, "hello again"),  # the live message, in the sync too: counts once
        ],
    )
    assert drain(api, timeout=2) == []  # never announced
    history = api.journals.getChatHistory(chat, 10).data
    by_id = {m["idMessage"]: m for m in history}
    assert set(by_id) == {"HIST0ASK", "HIST0ANS", "HIST0PIC", live}
    assert (by_id["HIST0ASK"]["type"], by_id["HIST0ASK"]["textMessage"]) == ("incoming", "do you deliver?")
    assert (by_id["HIST0ANS"]["type"], by_id["HIST0ANS"]["statusMessage"]) == ("outgoing", "sent")
    assert by_id["HIST0ANS"]["chatId"] == chat and by_id["HIST0ANS"]["textMessage"] == "we do"
    assert by_id["HIST0PIC"]["typeMessage"] == "imageMessage" and by_id["HIST0PIC"]["downloadUrl"] == ""
    incoming = [m["idMessage"] for m in api.journals.lastIncomingMessages(120).data if m["chatId"] == chat]
    assert sorted(incoming) == sorted(["HIST0ASK", "HIST0PIC", live])
    # A customer's reply quoting a message from the history is resolved to it.
    gateway.incoming(session, "79995550060", "so?", quoted_id="HIST0ANS")
    got = wait_for(api, lambda b: b.get("messageData", {}).get("typeMessage") == "quotedMessage")
    assert got["messageData"]["quotedMessage"]["stanzaId"] == "HIST0ANS"
