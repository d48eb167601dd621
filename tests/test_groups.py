"""Groups on the sandbox network, driven with the official SDK; effects checked on the other side."""

from __future__ import annotations

import io
import re
import time
from pathlib import Path
from typing import Any

import httpx

from harness import Server, wait_for
from sandbox_kit import fresh_number as kit_number
from sandbox_kit import wait_until, wire


def fresh_number() -> str:
    return kit_number("7956")


def member(server: Server) -> tuple[dict[str, Any], Any]:
    """A new instance linked to a new sandbox phone (message notifications on)."""
    inst = server.new_instance("--link", fresh_number())
    return inst, server.api(inst)


def phone(server: Server) -> str:
    number = fresh_number()
    server.new_phone(number, f"Phone {number[-4:]}")
    return number


def group_data(api: Any, group_id: str) -> dict[str, Any]:
    r = api.groups.getGroupData(group_id)
    assert r.code == 200, r.error
    return dict(r.data)


def roles(data: dict[str, Any]) -> dict[str, tuple[bool, bool]]:
    return {p["id"]: (p["isAdmin"], p["isSuperAdmin"]) for p in data["participants"]}


def phone_inbox(server: Server, number: str, chat_id: str) -> list[dict[str, Any]]:
    r = server.sandbox("GET", f"/phones/{number}/messages", params={"chatId": chat_id})
    assert r.status_code == 200, r.text
    return list(r.json())


def status_of(api: Any, id_message: str, status: str) -> dict[str, Any]:
    return wait_for(
        api,
        lambda n: (
            n["typeWebhook"] == "outgoingMessageStatus"
            and n["idMessage"] == id_message
            and n["status"] == status
        ),
    )


def check_message_notification(body: dict[str, Any]) -> None:
    """The fields the official webhook JSON Schema requires of a message notification."""
    assert {"typeWebhook", "instanceData", "timestamp", "idMessage", "senderData", "messageData"} <= set(body)
    assert isinstance(body["timestamp"], int) and isinstance(body["instanceData"]["idInstance"], int)
    assert {"idInstance", "wid", "typeInstance"} <= set(body["instanceData"])
    sender = body["senderData"]
    assert all(isinstance(sender[k], str) for k in ("chatId", "sender", "senderName"))
    assert isinstance(body["messageData"]["typeMessage"], str)


def check_status_notification(body: dict[str, Any]) -> None:
    assert {"typeWebhook", "chatId", "instanceData", "timestamp", "idMessage", "status", "sendByApi"} <= set(
        body
    )
    assert isinstance(body["sendByApi"], bool) and isinstance(body["timestamp"], int)


def test_create_group_and_every_member_receives(server: Server) -> None:
    a_inst, a = member(server)
    b_inst, b = member(server)
    c = phone(server)
    nobody = fresh_number()  # no account: left out, as WhatsApp does
    created = a.groups.createGroup("Team", [b_inst["wid"], f"{c}@c.us", f"{nobody}@c.us"])
    assert created.code == 200, created.error
    group_id = created.data["chatId"]
    assert created.data["created"] is True
    assert re.fullmatch(r"\d{18}@g\.us", group_id)
    assert created.data["groupInviteLink"].startswith("https://chat.whatsapp.com/")

    data = group_data(b, group_id)
    assert data["groupId"] == group_id and data["subject"] == "Team" and data["owner"] == a_inst["wid"]
    assert data["subjectOwner"] == a_inst["wid"]
    assert isinstance(data["creation"], int) and isinstance(data["subjectTime"], int)
    assert data["groupInviteLink"] == created.data["groupInviteLink"]
    assert roles(data) == {
        a_inst["wid"]: (True, True),
        b_inst["wid"]: (False, False),
        f"{c}@c.us": (False, False),
    }

    sent = a.sending.sendMessage(group_id, "hello team")
    assert sent.code == 200, sent.error
    id_message = sent.data["idMessage"]
    got = wait_for(b, lambda n: n.get("idMessage") == id_message)
    assert got["typeWebhook"] == "incomingMessageReceived"
    assert got["senderData"]["chatId"] == group_id
    assert got["senderData"]["sender"] == a_inst["wid"]
    assert got["senderData"]["chatName"] == "Team"
    assert got["messageData"]["textMessageData"]["textMessage"] == "hello team"
    check_message_notification(got)
    inbox = wait_until(lambda: phone_inbox(server, c, group_id))
    assert inbox[-1]["idMessage"] == id_message and inbox[-1]["sender"] == a_inst["wid"]
    echo = wait_for(
        a, lambda n: n["typeWebhook"] == "outgoingAPIMessageReceived" and n["idMessage"] == id_message
    )
    assert echo["senderData"]["chatId"] == group_id and echo["senderData"]["sender"] == a_inst["wid"]
    assert echo["senderData"]["chatName"] == "Team"
    check_message_notification(echo)
    status_of(a, id_message, "delivered")

    # Read by one member is not enough; read by every member is.
    r = server.sandbox("POST", f"/phones/{c}/read", json={"chatId": group_id})
    assert r.json() == {"read": 1}
    assert a.journals.getMessage(group_id, id_message).data["statusMessage"] == "delivered"
    assert b.marking.readChat(group_id).code == 200
    body = status_of(a, id_message, "read")
    assert body["chatId"] == group_id
    check_status_notification(body)

    # A phone member writes to the group: both instances get it, sender = the phone.
    r = server.sandbox(
        "POST", f"/phones/{c}/messages", json={"chatId": group_id, "message": "from the phone"}
    )
    assert r.status_code == 200, r.text
    from_phone = r.json()["idMessage"]
    for api in (a, b):
        n = wait_for(api, lambda n: n.get("idMessage") == from_phone)
        assert n["senderData"]["chatId"] == group_id and n["senderData"]["sender"] == f"{c}@c.us"
        check_message_notification(n)
    history = a.journals.getChatHistory(group_id).data
    assert [m["idMessage"] for m in history[:2]] == [from_phone, id_message]
    assert history[0]["senderId"] == f"{c}@c.us"


def test_admin_rights_and_membership_changes(server: Server) -> None:
    a_inst, a = member(server)
    b_inst, b = member(server)
    c, d = phone(server), phone(server)
    c_wid, d_wid = f"{c}@c.us", f"{d}@c.us"
    group_id = a.groups.createGroup("Club", [b_inst["wid"], c_wid]).data["chatId"]

    # A plain member may not manage the group: soft failures, nothing changes.
    assert b.groups.addGroupParticipant(group_id, d_wid).data == {"addParticipant": False}
    assert b.groups.setGroupAdmin(group_id, b_inst["wid"]).data == {"setGroupAdmin": False}
    assert b.groups.removeGroupParticipant(group_id, c_wid).data == {"removeParticipant": False}
    assert set(roles(group_data(a, group_id))) == {a_inst["wid"], b_inst["wid"], c_wid}

    # Members may rename while the group lets them edit its info.
    assert b.groups.updateGroupName(group_id, "Book club").data == {"updateGroupName": True}
    data = group_data(a, group_id)
    assert data["subject"] == "Book club" and data["subjectOwner"] == b_inst["wid"]

    assert a.groups.setGroupAdmin(group_id, b_inst["wid"]).data == {"setGroupAdmin": True}
    assert roles(group_data(a, group_id))[b_inst["wid"]] == (True, False)
    assert b.groups.addGroupParticipant(group_id, d_wid).data == {"addParticipant": True}
    assert b.groups.addGroupParticipant(group_id, d_wid).data == {"addParticipant": False}  # already in
    no_account = f"{fresh_number()}@c.us"
    assert b.groups.addGroupParticipant(group_id, no_account).data == {"addParticipant": False}
    assert b.groups.removeGroupParticipant(group_id, a_inst["wid"]).data == {"removeParticipant": False}
    assert a.groups.removeAdmin(group_id, b_inst["wid"]).data == {"removeAdmin": True}
    assert roles(group_data(a, group_id))[b_inst["wid"]] == (False, False)
    assert a.groups.removeGroupParticipant(group_id, c_wid).data == {"removeParticipant": True}
    data = group_data(a, group_id)
    assert set(roles(data)) == {a_inst["wid"], b_inst["wid"], d_wid}

    # The removed phone can no longer write to the group; the new member receives.
    r = server.sandbox("POST", f"/phones/{c}/messages", json={"chatId": group_id, "message": "still here?"})
    assert r.status_code == 200, r.text
    refused = r.json()["idMessage"]
    out = wait_until(lambda: [m for m in phone_inbox(server, c, group_id) if m["idMessage"] == refused])
    assert out[0]["status"] == "notInGroup"
    sent = a.sending.sendMessage(group_id, "welcome d").data["idMessage"]
    assert wait_until(lambda: [m for m in phone_inbox(server, d, group_id) if m["idMessage"] == sent])
    assert not [m for m in phone_inbox(server, c, group_id) if m["idMessage"] == sent]

    # The control API shows what happened to the group.
    events = server.sandbox("GET", f"/groups/{group_id}").json()["events"]
    kinds = [(e["kind"], e["target"]) for e in events]
    assert ("add", d_wid) in kinds and ("remove", c_wid) in kinds and ("promote", b_inst["wid"]) in kinds


def test_update_group_settings(server: Server) -> None:
    a_inst, a = member(server)
    b_inst, b = member(server)
    _, outsider = member(server)
    group_id = a.groups.createGroup("Announcements", [b_inst["wid"]]).data["chatId"]

    r = b.groups.updateGroupSettings(group_id, allowParticipantsSendMessages=False)
    assert r.code == 200 and r.data == {"updateGroupSettings": False, "reason": "NOT_ENOUGH_RIGHTS"}
    r = outsider.groups.updateGroupSettings(group_id, allowParticipantsSendMessages=False)
    assert r.code == 200 and r.data == {"updateGroupSettings": False, "reason": "FORBIDDEN"}
    r = a.groups.updateGroupSettings(
        group_id, allowParticipantsEditGroupSettings=False, allowParticipantsSendMessages=False
    )
    assert r.data == {"updateGroupSettings": True}

    # Only admins may now rename or write.
    assert b.groups.updateGroupName(group_id, "Mine").data == {"updateGroupName": False}
    assert group_data(a, group_id)["subject"] == "Announcements"
    blocked = b.sending.sendMessage(group_id, "may I?").data["idMessage"]
    failed = status_of(b, blocked, "failed")
    assert "admins" in failed["description"]
    ok = a.sending.sendMessage(group_id, "news").data["idMessage"]
    assert wait_for(b, lambda n: n.get("idMessage") == ok)["senderData"]["chatId"] == group_id

    # Nothing to change is bad input.
    r = wire(server, a_inst, "updateGroupSettings", verb="POST", json={"groupId": group_id})
    assert r.status_code == 400 and "Validation failed" in r.json()["message"]


def test_leave_group(server: Server) -> None:
    a_inst, a = member(server)
    b_inst, b = member(server)
    c = phone(server)
    group_id = a.groups.createGroup("Short-lived", [b_inst["wid"], f"{c}@c.us"]).data["chatId"]
    assert b.groups.leaveGroup(group_id).data == {"leaveGroup": True}
    assert b.groups.leaveGroup(group_id).data == {"leaveGroup": False}
    assert set(roles(group_data(a, group_id))) == {a_inst["wid"], f"{c}@c.us"}
    r = b.groups.getGroupData(group_id)
    assert r.code == 400 and "not found" in r.error.lower()

    gone = b.sending.sendMessage(group_id, "let me back in").data["idMessage"]
    refused = status_of(b, gone, "notInGroup")
    assert refused["chatId"] == group_id
    check_status_notification(refused)
    nowhere = b.sending.sendMessage("120363000000000002@g.us", "anyone?").data["idMessage"]
    assert status_of(b, nowhere, "notInGroup")["chatId"] == "120363000000000002@g.us"

    # The creator leaves last-admin: the longest-standing member becomes admin.
    assert a.groups.leaveGroup(group_id).data == {"leaveGroup": True}
    view = server.sandbox("GET", f"/groups/{group_id}").json()
    assert view["participants"] == [{"id": f"{c}@c.us", "role": "admin"}]


def jpeg_bytes(color: str = "red") -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (32, 32), color).save(buf, "JPEG")
    return buf.getvalue()


def test_set_group_picture(server: Server, tmp_path: Path) -> None:
    a_inst, a = member(server)
    b_inst, _ = member(server)
    group_id = a.groups.createGroup("Pictures", [b_inst["wid"]]).data["chatId"]
    picture = tmp_path / "group.jpg"
    picture.write_bytes(jpeg_bytes())
    r = a.groups.setGroupPicture(group_id, str(picture))
    assert r.code == 200, r.error
    assert r.data["setGroupPicture"] is True and r.data["reason"] == ""
    fetched = httpx.get(r.data["urlAvatar"], timeout=30)
    assert fetched.status_code == 200 and fetched.content == picture.read_bytes()

    # A group that does not exist: the documented soft failure.
    r = a.groups.setGroupPicture("120363999999999999@g.us", str(picture))
    assert r.code == 200 and r.data == {"reason": "Timed Out", "urlAvatar": None, "setGroupPicture": False}

    not_image = tmp_path / "notes.jpg"
    not_image.write_bytes(b"these are not image bytes")
    r = a.groups.setGroupPicture(group_id, str(not_image))
    assert r.code == 400 and "Unsupported media type" in r.error
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    r = a.groups.setGroupPicture(group_id, str(empty))
    assert r.code == 400 and "File is empty" in r.error
    r = wire(
        server, a_inst, "setGroupPicture", verb="POST", files={"file": ("x.jpg", jpeg_bytes(), "image/jpeg")}
    )
    assert r.status_code == 400 and "'groupId' is required" in r.json()["message"]
    huge = tmp_path / "huge.jpg"
    huge.write_bytes(jpeg_bytes() + b"\0" * (5 * 1024 * 1024))
    r = a.groups.setGroupPicture(group_id, str(huge))
    assert r.code == 400 and "File is too large" in r.error
    # The picture stayed the one set first.
    view = server.sandbox("GET", f"/groups/{group_id}").json()
    assert httpx.get(view["pictureUrl"], timeout=30).content == picture.read_bytes()


def test_bad_input_changes_nothing(server: Server) -> None:
    a_inst, a = member(server)
    b_inst, _ = member(server)
    number = a_inst["wid"].split("@")[0]

    def my_groups() -> int:
        return len(server.sandbox("GET", f"/phones/{number}/groups").json())

    cases = [
        ("createGroup", {"chatIds": [b_inst["wid"]]}, "'groupName' is required"),
        ("createGroup", {"groupName": "x" * 101, "chatIds": [b_inst["wid"]]}, "groupName"),
        ("createGroup", {"groupName": "G", "chatIds": []}, "'chatIds' must contain at least 1 items"),
        ("createGroup", {"groupName": "G", "chatIds": ["120363000000000001@g.us"]}, "personal chat ids"),
        ("createGroup", {"groupName": "G", "chatIds": "79990000001@c.us"}, "'chatIds' must be an array"),
        ("getGroupData", {"groupId": "79990000001@c.us"}, "'groupId' must be a group chat id"),
        ("getGroupData", {"groupId": "120363000000000001@g.us"}, "Group not found"),
        ("updateGroupName", {"groupId": "120363000000000001@g.us", "groupName": "N"}, "Group not found"),
        ("addGroupParticipant", {"groupId": "120363000000000001@g.us"}, "'participantChatId' is required"),
        ("leaveGroup", {"groupId": "120363000000000001@g.us"}, "Group not found"),
    ]
    for method, body, message in cases:
        r = wire(server, a_inst, method, verb="POST", json=body)
        assert r.status_code == 400, (method, body, r.text)
        assert message in r.json()["message"], (method, r.json())
    assert my_groups() == 0
    unlinked = server.new_instance()
    r = wire(
        server, unlinked, "createGroup", verb="POST", json={"groupName": "G", "chatIds": [b_inst["wid"]]}
    )
    assert r.status_code == 400 and r.json()["message"] == "instance is starting or not authorized"
    group_id = a.groups.createGroup("Real", [b_inst["wid"]]).data["chatId"]
    r = wire(
        server,
        a_inst,
        "addGroupParticipant",
        verb="POST",
        json={"groupId": group_id, "participantChatId": "x"},
    )
    assert r.status_code == 400
    assert my_groups() == 1 and len(group_data(a, group_id)["participants"]) == 2


def test_async_sdk_group_methods(server: Server, tmp_path: Path) -> None:
    import asyncio

    a_inst, a = member(server)
    b_inst, b = member(server)
    picture = tmp_path / "картинка.jpg"  # the async SDK percent-encodes this name
    picture.write_bytes(jpeg_bytes("blue"))

    async def scenario() -> None:
        created = await a.groups.createGroupAsync("Async", [b_inst["wid"]])
        assert created.code == 200, created.error
        group_id = created.data["chatId"]
        r = await a.groups.setGroupAdminAsync(group_id, b_inst["wid"])
        assert r.data == {"setGroupAdmin": True}
        r = await b.groups.updateGroupNameAsync(group_id, "Async renamed")
        assert r.data == {"updateGroupName": True}
        r = await a.groups.updateGroupSettingsAsync(group_id, allowParticipantsSendMessages=False)
        assert r.data == {"updateGroupSettings": True}
        r = await a.groups.setGroupPictureAsync(group_id, str(picture))
        assert r.code == 200 and r.data["setGroupPicture"] is True, r.error
        assert httpx.get(r.data["urlAvatar"], timeout=30).content == picture.read_bytes()
        data = (await b.groups.getGroupDataAsync(group_id)).data
        assert data["subject"] == "Async renamed"
        assert roles(data)[b_inst["wid"]] == (True, False)
        assert (await a.groups.removeAdminAsync(group_id, b_inst["wid"])).data == {"removeAdmin": True}
        r = await a.groups.removeGroupParticipantAsync(group_id, b_inst["wid"])
        assert r.data == {"removeParticipant": True}
        r = await a.groups.addGroupParticipantAsync(group_id, b_inst["wid"])
        assert r.data == {"addParticipant": True}
        assert (await b.groups.leaveGroupAsync(group_id)).data == {"leaveGroup": True}
        assert set(roles((await a.groups.getGroupDataAsync(group_id)).data)) == {a_inst["wid"]}

    asyncio.run(scenario())


def test_phones_manage_groups_and_join_by_link(server: Server) -> None:
    a_inst, a = member(server)
    owner, joiner = phone(server), phone(server)
    r = server.sandbox(
        "POST", f"/phones/{owner}/groups", json={"name": "Phone's group", "participants": [a_inst["wid"]]}
    )
    assert r.status_code == 200, r.text
    group_id = r.json()["id"]
    assert [g["id"] for g in server.sandbox("GET", f"/phones/{owner}/groups").json()] == [group_id]
    data = group_data(a, group_id)
    assert data["owner"] == f"{owner}@c.us" and roles(data)[a_inst["wid"]] == (False, False)

    # The instance is a plain member until the phone promotes it.
    assert a.groups.updateGroupSettings(group_id, allowParticipantsSendMessages=False).data["reason"] == (
        "NOT_ENOUGH_RIGHTS"
    )
    r = server.sandbox(
        "POST",
        f"/phones/{owner}/groups/{group_id}/participants",
        json={"participant": a_inst["wid"], "action": "promote"},
    )
    assert r.status_code == 200, r.text
    assert roles(group_data(a, group_id))[a_inst["wid"]] == (True, False)

    # Someone with the invite link joins and then hears the group.
    link = data["groupInviteLink"]
    r = server.sandbox("POST", f"/phones/{joiner}/groups/join", json={"inviteLink": link})
    assert r.status_code == 200 and r.json() == {"groupId": group_id}
    r = server.sandbox("POST", f"/phones/{joiner}/groups/join", json={"inviteLink": link})
    assert r.status_code == 400
    r = server.sandbox(
        "POST", f"/phones/{joiner}/groups/join", json={"inviteLink": "https://chat.whatsapp.com/nope"}
    )
    assert r.status_code == 404
    sent = a.sending.sendMessage(group_id, "welcome, joiner").data["idMessage"]
    assert wait_until(lambda: [m for m in phone_inbox(server, joiner, group_id) if m["idMessage"] == sent])

    # A phone that is not an admin cannot manage the group.
    r = server.sandbox(
        "POST",
        f"/phones/{joiner}/groups/{group_id}/participants",
        json={"participant": a_inst["wid"], "action": "remove"},
    )
    assert r.status_code == 400
    r = server.sandbox("POST", f"/phones/{joiner}/groups/{group_id}/leave")
    assert r.status_code == 200
    assert set(roles(group_data(a, group_id))) == {f"{owner}@c.us", a_inst["wid"]}


def test_a_burst_to_a_big_group_arrives_once_each(server: Server) -> None:
    a_inst, a = member(server)
    phones = [phone(server) for _ in range(30)]
    group_id = a.groups.createGroup("Crowd", [f"{p}@c.us" for p in phones]).data["chatId"]
    sent = [a.sending.sendMessage(group_id, f"burst {i}").data["idMessage"] for i in range(15)]
    for number in (phones[0], phones[-1]):
        inbox = wait_until(lambda n=number: (m := phone_inbox(server, n, group_id)) and len(m) >= 15 and m)
        time.sleep(0.5)  # anything duplicated would have arrived by now
        inbox = phone_inbox(server, number, group_id)
        assert [m["idMessage"] for m in inbox] == sent  # once each, in order


def test_sending_to_a_group_over_300_members_fails_with_swe004(server: Server) -> None:
    a_inst, a = member(server)
    numbers = [fresh_number() for _ in range(300)]
    for number in numbers:
        assert server.sandbox("POST", "/phones", json={"number": number}).status_code == 200
    group_id = a.groups.createGroup("Too big", [f"{n}@c.us" for n in numbers]).data["chatId"]
    assert len(group_data(a, group_id)["participants"]) == 301
    id_message = a.sending.sendMessage(group_id, "hello everyone").data["idMessage"]
    failed = status_of(a, id_message, "failed")
    assert failed["description"] == "SWE004: the number of participants in the group has been exceeded - 300"
    assert phone_inbox(server, numbers[0], group_id) == []
