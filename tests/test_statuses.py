"""Statuses (stories) on the sandbox network: posted with the official SDK, seen and viewed by phones."""

from __future__ import annotations

import time
from typing import Any

from harness import Server, wait_for
from sandbox_kit import fresh_number as kit_number
from sandbox_kit import wire


def fresh_number() -> str:
    return kit_number("7957")


def phone(server: Server) -> str:
    number = fresh_number()
    server.new_phone(number, f"Phone {number[-4:]}")
    return number


def author(server: Server) -> tuple[dict[str, Any], Any]:
    inst = server.new_instance("--link", fresh_number())
    return inst, server.api(inst)


def seen_by(server: Server, number: str) -> dict[str, dict[str, Any]]:
    r = server.sandbox("GET", f"/phones/{number}/statuses")
    assert r.status_code == 200, r.text
    return {s["idMessage"]: s for s in r.json()}


def wait_status(api: Any, id_message: str, status: str) -> dict[str, Any]:
    return wait_for(
        api,
        lambda n: (
            n["typeWebhook"] == "outgoingMessageStatus"
            and n["idMessage"] == id_message
            and n["status"] == status
        ),
    )


def test_text_status_reaches_contacts_and_views_count(server: Server) -> None:
    inst, api = author(server)
    friend, stranger = phone(server), phone(server)
    # Having a chat with someone makes them a contact who sees "everyone" statuses.
    chat = api.sending.sendMessage(f"{friend}@c.us", "hi").data["idMessage"]
    wait_status(api, chat, "delivered")

    r = api.statuses.sendTextStatus("Out for lunch", "#228B22", "SERIF")
    assert r.code == 200, r.error
    id_message = r.data["idMessage"]
    body = wait_status(api, id_message, "delivered")
    assert body["chatId"] == "status@broadcast" and body["sendByApi"] is True

    assert id_message in seen_by(server, friend)
    assert seen_by(server, friend)[id_message]["content"]["text"] == "Out for lunch"
    assert id_message not in seen_by(server, stranger)

    out = api.statuses.getOutgoingStatuses().data
    mine = [s for s in out if s["idMessage"] == id_message]
    assert len(mine) == 1
    entry = mine[0]
    assert entry["type"] == "outgoing" and entry["typeMessage"] == "extendedTextMessage"
    assert entry["chatId"] == inst["wid"] and entry["textMessage"] == "Out for lunch"
    assert entry["extendedTextMessage"]["backgroundColor"] == "#228B22"
    assert entry["statusMessage"] == "delivered" and entry["sendByApi"] is True
    # Statuses have their own journals: the message journal does not list them.
    assert id_message not in [m["idMessage"] for m in api.journals.lastOutgoingMessages().data]

    stats = api.statuses.getStatusStatistic(id_message).data
    assert [(s["participant"], s["status"]) for s in stats] == [(f"{friend}@c.us", "delivered")]

    # The friend views it on the phone: the author sees "read".
    r = server.sandbox("POST", f"/phones/{friend}/statuses/{id_message}/view")
    assert r.status_code == 200, r.text
    wait_status(api, id_message, "read")
    stats = api.statuses.getStatusStatistic(id_message).data
    assert stats[0]["status"] == "read" and isinstance(stats[0]["timestamp"], int)
    assert api.statuses.getOutgoingStatuses(60).data[0]["statusMessage"] == "read"
    # A stranger cannot view what never reached them.
    r = server.sandbox("POST", f"/phones/{stranger}/statuses/{id_message}/view")
    assert r.status_code == 404

    # A contact who blocked the account sees none of its statuses, listed as audience or not.
    blocked = server.sandbox("POST", f"/phones/{friend}/block", json={"chatId": inst["wid"]})
    assert blocked.status_code == 200, blocked.text
    for participants in (None, [f"{friend}@c.us"]):
        hidden = api.statuses.sendTextStatus("Closed today", participants=participants).data["idMessage"]
        wait_status(api, hidden, "sent")
        assert hidden not in seen_by(server, friend)
        assert api.statuses.getStatusStatistic(hidden).data == []


def test_participants_choose_the_audience(server: Server) -> None:
    _, api = author(server)
    chosen, other = phone(server), phone(server)
    api.sending.sendMessage(f"{other}@c.us", "we chat")
    r = api.statuses.sendTextStatus("Only for you", participants=[f"{chosen}@c.us"])
    id_message = r.data["idMessage"]
    wait_status(api, id_message, "delivered")
    assert id_message in seen_by(server, chosen)
    assert id_message not in seen_by(server, other)


def test_incoming_statuses_from_a_phone(server: Server) -> None:
    inst, api = author(server)
    poster = phone(server)
    r = server.sandbox(
        "POST", f"/phones/{poster}/statuses", json={"message": "Hello world", "participants": [inst["wid"]]}
    )
    assert r.status_code == 200, r.text
    id_message = r.json()["idMessage"]
    incoming = api.statuses.getIncomingStatuses().data
    assert [s["idMessage"] for s in incoming] == [id_message]
    entry = incoming[0]
    assert entry["type"] == "incoming" and entry["typeMessage"] == "extendedTextMessage"
    assert entry["chatId"] == entry["senderId"] == f"{poster}@c.us"
    assert entry["senderName"] == f"Phone {poster[-4:]}" and entry["textMessage"] == "Hello world"
    assert api.statuses.getIncomingStatuses(1).data[0]["idMessage"] == id_message
    # Nobody else got it, and the poster's own journal is not the instance's.
    assert api.statuses.getOutgoingStatuses().data == []


def test_media_and_voice_statuses(server: Server) -> None:
    _, api = author(server)
    viewer = phone(server)
    viewer_wid = f"{viewer}@c.us"
    r = api.statuses.sendMediaStatus("https://example.com/pic.jpg", "pic.jpg", "A caption", [viewer_wid])
    assert r.code == 200, r.error
    media = r.data["idMessage"]
    r = api.statuses.sendVoiceStatus("https://example.com/voice.mp3", "voice.mp3", "#FFFFFF", [viewer_wid])
    assert r.code == 200, r.error
    voice = r.data["idMessage"]
    wait_status(api, voice, "delivered")
    seen = seen_by(server, viewer)
    assert seen[media]["typeMessage"] == "imageMessage" and seen[voice]["typeMessage"] == "audioMessage"
    out = {s["idMessage"]: s for s in api.statuses.getOutgoingStatuses().data}
    assert out[media]["caption"] == "A caption" and out[media]["mimeType"] == "image/jpeg"
    assert out[media]["downloadUrl"] == "https://example.com/pic.jpg"
    assert out[media]["participants"] == [viewer_wid]
    assert out[voice]["mimeType"] == "audio/mpeg"


def test_delete_status(server: Server) -> None:
    _, api = author(server)
    viewer = phone(server)
    id_message = api.statuses.sendTextStatus("Soon gone", participants=[f"{viewer}@c.us"]).data["idMessage"]
    wait_status(api, id_message, "delivered")
    r = api.statuses.deleteStatus(id_message)
    assert r.code == 200, r.error
    assert id_message not in seen_by(server, viewer)
    assert [s for s in api.statuses.getOutgoingStatuses().data if s["idMessage"] == id_message] == []
    r = api.statuses.deleteStatus(id_message)
    assert r.code == 400 and "ID message notfound" in r.error


def test_bad_input_changes_nothing(server: Server) -> None:
    inst, api = author(server)
    cases = [
        ("sendTextStatus", {}, "'value' must have at least 1 key"),
        ("sendTextStatus", {"message": "x" * 501}, "'message' length must be less than or equal to 500"),
        ("sendTextStatus", {"message": "hi", "backgroundColor": "green"}, "backgroundColor"),
        ("sendTextStatus", {"message": "hi", "font": "COMIC"}, "'font' must be one of"),
        ("sendTextStatus", {"message": "hi", "participants": ["120363000000000001@g.us"]}, "participants"),
        ("sendMediaStatus", {"urlFile": "https://example.com/a.pdf", "fileName": "a.pdf"}, "fileName"),
        ("sendMediaStatus", {"urlFile": "ftp://example.com/a.jpg", "fileName": "a.jpg"}, "urlFile"),
        ("sendVoiceStatus", {"urlFile": "https://example.com/a.jpg", "fileName": "a.jpg"}, "audio"),
        ("deleteStatus", {"idMessage": "BAE5000000000000"}, "ID message notfound"),
    ]
    for method, body, message in cases:
        r = wire(server, inst, method, verb="POST", json=body)
        assert r.status_code == 400, (method, r.text)
        assert message in r.json()["message"], (method, r.json())
    r = wire(server, inst, "getStatusStatistic")
    assert r.status_code == 400 and "'idMessage' is required" in r.json()["message"]
    r = api.statuses.getStatusStatistic("BAE5000000000000")
    assert r.code == 400
    r = wire(server, inst, "getOutgoingStatuses", params={"minutes": "abc"})
    assert r.status_code == 400
    time.sleep(0.5)  # nothing was queued: the journal stays empty
    assert api.statuses.getOutgoingStatuses().data == []
    assert api.queues.showMessagesQueue().data == []


def test_async_sdk_status_methods(server: Server) -> None:
    import asyncio

    inst, api = author(server)
    viewer = phone(server)
    r = server.sandbox(
        "POST", f"/phones/{viewer}/statuses", json={"message": "to you", "participants": [inst["wid"]]}
    )
    incoming_id = r.json()["idMessage"]

    async def scenario() -> None:
        r = await api.statuses.sendTextStatusAsync(
            "async status", "#112233", "OSWALD_HEAVY", [f"{viewer}@c.us"]
        )
        assert r.code == 200, r.error
        id_message = r.data["idMessage"]
        for _ in range(100):
            out = (await api.statuses.getOutgoingStatusesAsync(60)).data  # minutes go as a GET body
            if out and out[0]["idMessage"] == id_message:
                break
            await asyncio.sleep(0.2)
        assert out[0]["extendedTextMessage"]["font"] == "OSWALD_HEAVY"
        incoming = (await api.statuses.getIncomingStatusesAsync(60)).data
        assert [s["idMessage"] for s in incoming] == [incoming_id]
        r = await api.statuses.sendMediaStatusAsync("https://example.com/v.mp4", "v.mp4", "clip")
        assert r.code == 200, r.error
        assert (await api.statuses.deleteStatusAsync(id_message)).code == 200

    asyncio.run(scenario())
    assert id_not_listed(api, incoming_id)


def id_not_listed(api: Any, incoming_id: str) -> bool:
    return incoming_id not in [s["idMessage"] for s in api.statuses.getOutgoingStatuses().data]
