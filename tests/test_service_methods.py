"""Service methods against the sandbox network, with the official SDK: who is on the network,
avatars, the phonebook and the names it feeds, chats, archive, disappearing messages, and editing
and deleting messages with their notifications on the other side.
"""

from __future__ import annotations

from typing import Any

from harness import Server
from rich_support import (
    assert_400,
    incoming,
    new_number,
    of_type,
    phone_inbox,
    phone_only,
    sent,
    side,
    unchanged,
)


def test_check_whatsapp_looks_up_the_network(server: Server) -> None:
    a = side(server)
    c = phone_only(server)
    r = a.api.serviceMethods.checkWhatsapp(int(c.number))
    assert r.code == 200 and r.data == {"existsWhatsapp": True}
    assert a.api.serviceMethods.checkWhatsapp(int(new_number())).data == {"existsWhatsapp": False}
    # A number whose account has an instance linked to it is on the network too.
    b = side(server)
    assert a.api.serviceMethods.checkWhatsapp(chatId=b.wid).data == {"existsWhatsapp": True}

    assert_400(a.wire("checkWhatsapp", {}), "'value' must have at least 1 key")
    assert_400(
        a.wire("checkWhatsapp", {"phoneNumber": "7900abc"}),
        "Wrong format. 'phoneNumber' must contain only digits",
    )
    assert_400(a.wire("checkWhatsapp", {"phoneNumber": 123}), "bad phone number")
    # An instance that is not linked cannot ask the network.
    lone = server.new_instance()
    r = server.wire(lone, "checkWhatsapp", verb="POST", json={"phoneNumber": int(c.number)})
    assert r.status_code == 400 and "not authorized" in r.json()["message"]


def test_get_avatar(server: Server) -> None:
    a = side(server)
    c = phone_only(server)
    r = a.api.serviceMethods.getAvatar(c.wid)
    assert r.code == 200 and r.data["urlAvatar"] == "" and r.data["available"] is True
    r = a.api.serviceMethods.getAvatar(f"{new_number()}@c.us")
    assert r.data["available"] is False and r.data["existsWhatsapp"] is False
    assert_400(a.wire("getAvatar", {"chatId": "nobody"}), "chat id")


def test_phonebook_feeds_contact_names(server: Server) -> None:
    a = side(server)
    c = phone_only(server, name="Cleo P.")
    r = a.api.contacts.addContact(c.wid, "Cleo", "Customer")
    assert r.code == 200 and r.data == {"addContact": True}

    first = c.phone("POST", "/messages", json={"chatId": a.wid, "message": "hello"})
    body = a.wait(incoming(first.json()["idMessage"]))
    assert body["senderData"]["senderName"] == "Cleo P."
    assert body["senderData"]["senderContactName"] == "Cleo Customer"
    assert body["senderData"]["chatName"] == "Cleo Customer"
    entry = a.api.journals.getMessage(c.wid, first.json()["idMessage"]).data
    assert entry["senderName"] == "Cleo P." and entry["senderContactName"] == "Cleo Customer"

    contacts = a.api.serviceMethods.getContacts().data
    mine = [x for x in contacts if x["id"] == c.wid]
    assert mine == [{"id": c.wid, "name": "Cleo P.", "contactName": "Cleo Customer", "type": "user"}]
    assert a.api.serviceMethods.getContacts(group=True).data == []
    assert (
        a.api.serviceMethods.getContacts(count=1).code == 200
        and len(a.api.serviceMethods.getContacts(count=1).data) == 1
    )

    info = a.api.serviceMethods.getContactInfo(c.wid).data
    assert (
        info["name"] == "Cleo Customer" and info["contactName"] == "Cleo Customer" and info["chatId"] == c.wid
    )
    assert info["isArchive"] is False and info["isDisappearing"] is False

    assert a.api.contacts.editContact(c.wid, "Cleo", "VIP").data == {"editContact": True}
    second = c.phone("POST", "/messages", json={"chatId": a.wid, "message": "again"})
    assert a.wait(incoming(second.json()["idMessage"]))["senderData"]["senderContactName"] == "Cleo VIP"

    assert a.api.contacts.deleteContact(c.wid).data == {"deleteContact": True}
    third = c.phone("POST", "/messages", json={"chatId": a.wid, "message": "third"})
    body = a.wait(incoming(third.json()["idMessage"]))
    assert body["senderData"]["senderContactName"] == "" and body["senderData"]["chatName"] == "Cleo P."
    assert a.api.serviceMethods.getContactInfo(c.wid).data["contactName"] == ""


def test_phonebook_bad_input_changes_nothing(server: Server) -> None:
    a = side(server)
    c = phone_only(server)
    stranger = f"{new_number()}@c.us"
    r = a.wire("addContact", {"chatId": stranger, "firstName": "X"})
    assert r.status_code == 404 and r.json()["message"] == f"{stranger} is not on WhatsApp"
    assert_400(a.wire("addContact", {"chatId": c.wid}), "'firstName' is required")
    assert_400(
        a.wire("addContact", {"chatId": c.wid, "firstName": ""}), "'firstName' is not allowed to be empty"
    )
    assert_400(a.wire("addContact", {"chatId": "120363000000000001@g.us", "firstName": "G"}), "personal chat")
    assert_400(a.wire("editContact", {"chatId": c.wid, "firstName": "X"}), "not in the phonebook")
    assert_400(a.wire("deleteContact", {"chatId": c.wid}), "not in the phonebook")
    assert a.api.serviceMethods.getContacts().data == []
    r = a.wire("getContactInfo", {"chatId": stranger})
    assert r.status_code == 404
    assert_400(a.wire("getContactInfo", {}), "'value' must have at least 1 key")


def test_chats_archive_and_disappearing(server: Server) -> None:
    a = side(server)
    c, d = phone_only(server, name="Cleo"), phone_only(server, name="Dan")
    out = a.api.sending.sendMessage(d.wid, "hi Dan")
    sent(a, out.data["idMessage"])
    got = c.phone("POST", "/messages", json={"chatId": a.wid, "message": "hi"})
    a.wait(incoming(got.json()["idMessage"]))

    chats = a.api.serviceMethods.getChats().data
    assert [x["id"] for x in chats] == [c.wid, d.wid]  # most recently active first
    assert chats[0] == {
        "id": c.wid,
        "name": "Cleo",
        "type": "user",
        "archive": False,
        "ephemeralExpiration": 0,
        "ephemeralSettingTimestamp": 0,
    }
    assert [x["id"] for x in a.api.serviceMethods.getChats(count=1).data] == [c.wid]

    # Only chats with an incoming message can be archived (documented error), nothing changes.
    r = a.wire("archiveChat", {"chatId": d.wid})
    assert_400(r, "ArchiveChatError: cannot archive chat cause last message not found in chat")
    assert a.api.serviceMethods.getChats().data == chats

    r = a.wire("archiveChat", {"chatId": c.wid})
    assert r.status_code == 200 and r.content == b""
    assert a.api.serviceMethods.getChats().data[0]["archive"] is True
    assert a.api.serviceMethods.getContactInfo(c.wid).data["isArchive"] is True
    assert a.api.serviceMethods.unarchiveChat(c.wid).code == 200
    assert a.api.serviceMethods.getChats().data[0]["archive"] is False

    r = a.api.serviceMethods.setDisappearingChat(c.wid, 86400)
    assert r.data == {"chatId": c.wid, "disappearingMessagesInChat": True, "ephemeralExpiration": 86400}
    chat = a.api.serviceMethods.getChats().data[0]
    assert chat["ephemeralExpiration"] == 86400 and chat["ephemeralSettingTimestamp"] > 0
    info = a.api.serviceMethods.getContactInfo(c.wid).data
    assert info["isDisappearing"] is True and info["messageExpiration"] == 86400
    before = a.api.serviceMethods.getChats().data
    assert_400(
        a.wire("setDisappearingChat", {"chatId": c.wid, "ephemeralExpiration": 5}),
        "'ephemeralExpiration' must be one of",
    )
    assert_400(a.wire("setDisappearingChat", {"ephemeralExpiration": 0}), "'chatId' is required")
    assert a.api.serviceMethods.getChats().data == before
    assert a.api.serviceMethods.setDisappearingChat(c.wid, 0).data["disappearingMessagesInChat"] is False
    assert_400(server.wire(a.inst, "getContacts", params={"group": "maybe"}), "'group' must be a boolean")


def test_edit_message_tells_the_other_side(server: Server) -> None:
    a = side(server, editedMessageWebhook="yes")
    b = side(server, editedMessageWebhook="yes")
    msg = a.api.sending.sendMessage(b.wid, "meet at 5")
    b.wait(incoming(msg.data["idMessage"]))
    r = a.api.serviceMethods.editMessage(b.wid, msg.data["idMessage"], "meet at 6")
    assert r.code == 200, r.error
    edit_id = r.data["idMessage"]
    assert edit_id != msg.data["idMessage"]
    body = b.wait(incoming(edit_id))
    assert body["messageData"] == {
        "typeMessage": "editedMessage",
        "editedMessageData": {"stanzaId": msg.data["idMessage"], "textMessage": "meet at 6"},
    }
    # Both journals (and the phone) now hold the new text.
    theirs = b.api.journals.getMessage(a.wid, msg.data["idMessage"]).data
    assert theirs["textMessage"] == "meet at 6" and theirs["isEdited"] is True
    mine = a.api.journals.getMessage(b.wid, msg.data["idMessage"]).data
    assert mine["textMessage"] == "meet at 6" and mine["isEdited"] is True
    # A's own instance sees its API edit as outgoingAPIMessageReceived.
    own = a.wait(lambda n: n["typeWebhook"] == "outgoingAPIMessageReceived" and n["idMessage"] == edit_id)
    assert own["messageData"]["typeMessage"] == "editedMessage"

    # A phone edits its own message; the instance is told.
    back = b.phone("POST", "/messages", json={"chatId": a.wid, "message": "ok 6"})
    a.wait(incoming(back.json()["idMessage"]))
    e = b.phone("POST", f"/messages/{back.json()['idMessage']}/edit", json={"message": "ok, 6 it is"})
    assert e.status_code == 200, e.text
    data = a.wait(incoming(e.json()["idMessage"]))["messageData"]
    assert data["editedMessageData"] == {"stanzaId": back.json()["idMessage"], "textMessage": "ok, 6 it is"}
    # ...and cannot edit what it received.
    assert (
        b.phone("POST", f"/messages/{msg.data['idMessage']}/edit", json={"message": "x"}).status_code == 400
    )


def test_edit_notification_needs_its_setting(server: Server) -> None:
    a = side(server)
    b = side(server)  # editedMessageWebhook stays "no"
    msg = a.api.sending.sendMessage(b.wid, "v1")
    b.wait(incoming(msg.data["idMessage"]))
    edit = a.api.serviceMethods.editMessage(b.wid, msg.data["idMessage"], "v2")
    marker = a.api.sending.sendMessage(b.wid, "marker")
    seen: list = []
    b.wait(lambda n: seen.append(n) or n.get("idMessage") == marker.data["idMessage"])
    assert all(n.get("idMessage") != edit.data["idMessage"] for n in seen)
    # The change itself still happened.
    assert b.api.journals.getMessage(a.wid, msg.data["idMessage"]).data["textMessage"] == "v2"


def test_edit_bad_input_changes_nothing(server: Server) -> None:
    a, b = side(server), side(server)
    msg = a.api.sending.sendMessage(b.wid, "text")
    b.wait(incoming(msg.data["idMessage"]))
    back = b.api.sending.sendMessage(a.wid, "reply")
    a.wait(incoming(back.data["idMessage"]))
    loc = a.api.sending.sendLocation(b.wid, 1, 2)
    sent(a, loc.data["idMessage"])
    before = unchanged(a)
    assert_400(
        a.wire("editMessage", {"chatId": b.wid, "idMessage": "NOPE", "message": "x"}),
        "Message by id not found",
    )
    assert_400(
        a.wire("editMessage", {"chatId": b.wid, "idMessage": back.data["idMessage"], "message": "x"}),
        "only messages sent by this account",
    )
    assert_400(
        a.wire("editMessage", {"chatId": b.wid, "idMessage": msg.data["idMessage"], "message": "x" * 20001}),
        "20000",
    )
    assert_400(
        a.wire("editMessage", {"chatId": b.wid, "idMessage": msg.data["idMessage"]}), "'message' is required"
    )
    assert_400(
        a.wire("editMessage", {"chatId": b.wid, "idMessage": loc.data["idMessage"], "message": "x"}),
        "cannot be edited",
    )
    # The id exists, but in another chat: quoting and editing work within one chat only.
    assert_400(
        a.wire("editMessage", {"chatId": a.wid, "idMessage": back.data["idMessage"], "message": "x"}),
        "Message by id not found",
    )
    assert unchanged(a) == before
    assert b.api.journals.getMessage(a.wid, msg.data["idMessage"]).data["textMessage"] == "text"


def test_delete_for_everyone_and_for_me(server: Server) -> None:
    a = side(server, deletedMessageWebhook="yes")
    b = side(server, deletedMessageWebhook="yes")
    msg = a.api.sending.sendMessage(b.wid, "oops")
    b.wait(incoming(msg.data["idMessage"]))
    r = a.wire("deleteMessage", {"chatId": b.wid, "idMessage": msg.data["idMessage"]})
    assert r.status_code == 200 and r.content == b""
    body = b.wait(of_type("deletedMessage"))
    assert body["messageData"] == {
        "typeMessage": "deletedMessage",
        "deletedMessageData": {"stanzaId": msg.data["idMessage"]},
    }
    assert body["senderData"]["sender"] == a.wid
    assert b.api.journals.getMessage(a.wid, msg.data["idMessage"]).data["isDeleted"] is True
    # Deleting it again: it is gone for this account.
    assert_400(
        a.wire("deleteMessage", {"chatId": b.wid, "idMessage": msg.data["idMessage"]}),
        "Message by id not found",
    )

    # "Delete for me": only A's copy changes, B is not told.
    keep = a.api.sending.sendMessage(b.wid, "keep for them")
    b.wait(incoming(keep.data["idMessage"]))
    r = a.api.serviceMethods.deleteMessage(b.wid, keep.data["idMessage"], onlySenderDelete=True)
    assert r.code == 200
    assert a.api.journals.getMessage(b.wid, keep.data["idMessage"]).data["isDeleted"] is True
    marker = a.api.sending.sendMessage(b.wid, "marker")
    seen: list = []
    b.wait(lambda n: seen.append(n) or n.get("idMessage") == marker.data["idMessage"])
    assert not any(n.get("messageData", {}).get("typeMessage") == "deletedMessage" for n in seen)
    assert b.api.journals.getMessage(a.wid, keep.data["idMessage"]).data["isDeleted"] is False

    # A phone deletes its message for everyone; the instance is told.
    c = phone_only(server)
    said = c.phone("POST", "/messages", json={"chatId": a.wid, "message": "wrong chat"})
    a.wait(incoming(said.json()["idMessage"]))
    gone = c.phone("POST", f"/messages/{said.json()['idMessage']}/delete")
    assert gone.status_code == 200, gone.text
    data = a.wait(incoming(gone.json()["idMessage"]))["messageData"]
    assert data["deletedMessageData"]["stanzaId"] == said.json()["idMessage"]
    assert a.api.journals.getMessage(c.wid, said.json()["idMessage"]).data["isDeleted"] is True


def test_delete_bad_input_changes_nothing(server: Server) -> None:
    a, b = side(server), side(server)
    msg = a.api.sending.sendMessage(b.wid, "text")
    sent(a, msg.data["idMessage"])
    before = unchanged(a)
    assert_400(a.wire("deleteMessage", {"chatId": b.wid, "idMessage": "NOPE"}), "Message by id not found")
    assert_400(a.wire("deleteMessage", {"chatId": b.wid}), "'idMessage' is required")
    assert_400(
        a.wire(
            "deleteMessage", {"chatId": b.wid, "idMessage": msg.data["idMessage"], "onlySenderDelete": "yes"}
        ),
        "'onlySenderDelete' must be a boolean",
    )
    assert unchanged(a) == before
    assert a.api.journals.getMessage(b.wid, msg.data["idMessage"]).data["isDeleted"] is False


def test_async_sdk_variants(server: Server) -> None:
    """The SDK's async twins of the rich sending and service methods reach the same behaviour."""
    import asyncio

    a = side(server, editedMessageWebhook="yes", deletedMessageWebhook="yes", pollMessageWebhook="yes")
    c = phone_only(server, name="Async Cleo")
    api = a.api

    async def run() -> dict[str, Any]:
        out: dict[str, Any] = {}
        out["location"] = await api.sending.sendLocationAsync(c.wid, 10.5, 20.5, "Spot")
        out["contact"] = await api.sending.sendContactAsync(
            c.wid, {"phoneContact": 79001234567, "firstName": "Z"}
        )
        out["poll"] = await api.sending.sendPollAsync(c.wid, "Q?", [{"optionName": "a"}, {"optionName": "b"}])
        out["buttons"] = await api.sending.sendInteractiveButtonsReplyAsync(
            c.wid, "Pick", [{"buttonId": "1", "buttonText": "One"}]
        )
        out["check"] = await api.serviceMethods.checkWhatsappAsync(int(c.number))
        out["avatar"] = await api.serviceMethods.getAvatarAsync(c.wid)
        out["add"] = await api.contacts.addContactAsync(c.wid, "Cleo", "Async")
        out["info"] = await api.serviceMethods.getContactInfoAsync(c.wid)
        out["typing"] = await api.serviceMethods.sendTypingAsync(c.wid, 1000)
        out["text"] = await api.sending.sendMessageAsync(c.wid, "to edit")
        return out

    res = asyncio.run(run())
    for name, r in res.items():
        assert r.code == 200, (name, r.error)
    assert res["check"].data == {"existsWhatsapp": True}
    assert res["info"].data["contactName"] == "Cleo Async"
    for name in ("location", "contact", "poll", "buttons"):
        assert phone_inbox(
            c,
            {
                "location": "locationMessage",
                "contact": "contactMessage",
                "poll": "pollMessage",
                "buttons": "interactiveButtonsReply",
            }[name],
        )
    text_id = res["text"].data["idMessage"]
    sent(a, text_id)

    async def later() -> dict[str, Any]:
        return {
            "edit": await api.serviceMethods.editMessageAsync(c.wid, text_id, "edited"),
            "chats": await api.serviceMethods.getChatsAsync(),
            "contacts": await api.serviceMethods.getContactsAsync(group=False),
            "disappear": await api.serviceMethods.setDisappearingChatAsync(c.wid, 604800),
            "delete_contact": await api.contacts.deleteContactAsync(c.wid),
        }

    res = asyncio.run(later())
    for name, r in res.items():
        assert r.code == 200, (name, r.error)
    assert [x["id"] for x in res["chats"].data] == [c.wid]
    assert res["contacts"].data[0]["contactName"] == "Cleo Async"
    assert res["disappear"].data["ephemeralExpiration"] == 604800
    edited = phone_inbox(c, "editedMessage")
    assert edited["content"]["target_id"] == text_id
    mine = c.phone("GET", "/messages", params={"direction": "incoming"}).json()
    assert [m["content"]["text"] for m in mine if m["idMessage"] == text_id] == ["edited"]
