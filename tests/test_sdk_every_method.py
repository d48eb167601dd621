"""Every method the official whatsapp-api-client-python exposes, called through the SDK unchanged.

Each call must answer HTTP 200 as the spec documents (the focused test files check the effects in
depth; this one makes sure nothing the SDK can call is missing or broken). The async twins are
called too, except where the SDK itself is broken (spec: green-api-sdks.md §1.6).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from PIL import Image
from whatsapp_api_client_python import API

from harness import Server, drain, wait_for


def _picture(tmp_path: Path) -> Path:
    path = tmp_path / "logo.jpg"
    Image.new("RGB", (64, 64), (20, 140, 90)).save(path, "JPEG")
    return path


def _ok(response: Any, what: str) -> Any:
    assert response.code == 200, f"{what}: {response.code} {response.error}"
    return response.data


def test_every_sync_method(server: Server, tmp_path: Path) -> None:
    a_inst = server.new_instance("--link", "79993000001")
    b_inst = server.new_instance("--link", "79993000002")
    a, b = server.api(a_inst), server.api(b_inst)
    b_wid, a_wid = b_inst["wid"], a_inst["wid"]
    picture = _picture(tmp_path)
    for api in (a, b):
        _ok(
            api.account.setSettings(
                {
                    "pollMessageWebhook": "yes",
                    "incomingCallWebhook": "yes",
                    "outgoingCallWebhook": "yes",
                    "editedMessageWebhook": "yes",
                    "deletedMessageWebhook": "yes",
                }
            ),
            "setSettings",
        )
    drain(b)

    # account / device
    assert _ok(a.account.getSettings(), "getSettings")["wid"] == a_wid
    assert _ok(a.account.getWaSettings(), "getWaSettings")["stateInstance"] == "authorized"
    assert _ok(a.account.getStateInstance(), "getStateInstance") == {"stateInstance": "authorized"}
    assert _ok(a.account.getStatusInstance(), "getStatusInstance") == {"statusInstance": "online"}
    assert _ok(a.account.qr(), "qr")["type"] == "alreadyLogged"
    assert isinstance(_ok(a.account.getStateInstanceHistory(), "getStateInstanceHistory"), list)
    _ok(a.account.setProfilePicture(str(picture)), "setProfilePicture")
    _ok(a.device.getDeviceInfo(), "getDeviceInfo")

    # sending (each reaches B)
    text = _ok(a.sending.sendMessage(b_wid, "every method"), "sendMessage")["idMessage"]
    wait_for(b, lambda n: n.get("idMessage") == text)
    sent = {
        "sendLocation": a.sending.sendLocation(b_wid, 55.75, 37.62, "Square", "Centre"),
        "sendContact": a.sending.sendContact(b_wid, {"phoneContact": 79001234567, "firstName": "Ann"}),
        "sendPoll": a.sending.sendPoll(b_wid, "Colour?", [{"optionName": "Red"}, {"optionName": "Green"}]),
        "sendLink": a.sending.sendLink(b_wid, "https://example.org/page"),
        "sendButtons": a.sending.sendButtons(b_wid, "Pick", [{"buttonId": 1, "buttonText": "Yes"}]),
        "sendTemplateButtons": a.sending.sendTemplateButtons(
            b_wid, "Pick", [{"index": 1, "quickReplyButton": {"displayText": "Yes", "id": "y"}}]
        ),
        "sendListMessage": a.sending.sendListMessage(
            b_wid, "Menu", "Open", [{"title": "S", "rows": [{"title": "A", "rowId": "a"}]}]
        ),
        "sendInteractiveButtons": a.sending.sendInteractiveButtons(
            b_wid,
            "Body",
            [{"type": "url", "buttonId": "1", "buttonText": "Site", "url": "https://example.org"}],
        ),
        "sendInteractiveButtonsReply": a.sending.sendInteractiveButtonsReply(
            b_wid, "Body", [{"buttonId": "1", "buttonText": "Yes"}]
        ),
        "sendFileByUpload": a.sending.sendFileByUpload(b_wid, str(picture), "logo.jpg", "a picture"),
    }
    ids = {name: _ok(r, name)["idMessage"] for name, r in sent.items()}
    uploaded = _ok(a.sending.uploadFile(str(picture)), "uploadFile")["urlFile"]
    assert uploaded.endswith(".jpg")
    ids["sendFileByUrl"] = _ok(a.sending.sendFileByUrl(b_wid, uploaded, "logo.jpg"), "sendFileByUrl")[
        "idMessage"
    ]
    forwarded = _ok(a.sending.forwardMessages(b_wid, b_wid, [text]), "forwardMessages")
    assert len(forwarded["messages"]) == 1
    arrived = set()
    deadline = time.monotonic() + 90
    while set(ids.values()) - arrived and time.monotonic() < deadline:
        r = b.receiving.receiveNotification(5)
        if r.data is None:
            continue
        arrived.add(r.data["body"].get("idMessage"))
        _ok(b.receiving.deleteNotification(r.data["receiptId"]), "deleteNotification")
    assert not set(ids.values()) - arrived, f"not delivered: {set(ids.values()) - arrived}"
    file_url = _ok(b.receiving.downloadFile(a_wid, ids["sendFileByUpload"]), "downloadFile")["downloadUrl"]
    assert file_url

    # service methods
    assert _ok(a.serviceMethods.checkWhatsapp(79993000002), "checkWhatsapp") == {"existsWhatsapp": True}
    _ok(a.serviceMethods.getAvatar(b_wid), "getAvatar")
    _ok(a.serviceMethods.getContactInfo(b_wid), "getContactInfo")
    assert isinstance(_ok(a.serviceMethods.getContacts(), "getContacts"), list)
    assert isinstance(_ok(a.serviceMethods.getChats(), "getChats"), list)
    _ok(a.serviceMethods.editMessage(b_wid, text, "every method, edited"), "editMessage")
    _ok(a.serviceMethods.sendTyping(b_wid, 1000), "sendTyping")
    _ok(b.serviceMethods.archiveChat(a_wid), "archiveChat")
    _ok(b.serviceMethods.unarchiveChat(a_wid), "unarchiveChat")
    _ok(a.serviceMethods.setDisappearingChat(b_wid, 86400), "setDisappearingChat")
    _ok(a.serviceMethods.deleteMessage(b_wid, ids["sendLink"]), "deleteMessage")

    # contacts
    _ok(a.contacts.addContact(b_wid, "Ben", "Sandbox"), "addContact")
    _ok(a.contacts.editContact(b_wid, "Benjamin", "Sandbox"), "editContact")
    _ok(a.contacts.deleteContact(b_wid), "deleteContact")

    # journals and marks
    assert _ok(b.journals.getChatHistory(a_wid, 5), "getChatHistory")
    assert _ok(b.journals.getMessage(a_wid, text), "getMessage")["idMessage"] == text
    assert _ok(b.journals.lastIncomingMessages(60), "lastIncomingMessages")
    assert _ok(a.journals.lastOutgoingMessages(60), "lastOutgoingMessages")
    assert isinstance(_ok(b.journals.lastIncomingCalls(60), "lastIncomingCalls"), list)
    assert isinstance(_ok(a.journals.lastOutgoingCalls(60), "lastOutgoingCalls"), list)
    assert _ok(b.marking.readChat(a_wid), "readChat") == {"setRead": True}

    # groups
    group = _ok(a.groups.createGroup("Every method", [b_wid]), "createGroup")
    group_id = group["chatId"]
    assert _ok(a.groups.updateGroupName(group_id, "Renamed"), "updateGroupName") == {"updateGroupName": True}
    assert _ok(a.groups.getGroupData(group_id), "getGroupData")["subject"] == "Renamed"
    assert _ok(a.groups.updateGroupSettings(group_id, True, True), "updateGroupSettings")[
        "updateGroupSettings"
    ]
    server.new_phone("79993000003")
    assert _ok(a.groups.addGroupParticipant(group_id, "79993000003@c.us"), "addGroupParticipant")[
        "addParticipant"
    ]
    assert _ok(a.groups.setGroupAdmin(group_id, "79993000003@c.us"), "setGroupAdmin")["setGroupAdmin"]
    assert _ok(a.groups.removeAdmin(group_id, "79993000003@c.us"), "removeAdmin")["removeAdmin"]
    assert _ok(a.groups.removeGroupParticipant(group_id, "79993000003@c.us"), "removeGroupParticipant")[
        "removeParticipant"
    ]
    assert _ok(a.groups.setGroupPicture(group_id, str(picture)), "setGroupPicture")["setGroupPicture"]
    assert _ok(b.groups.leaveGroup(group_id), "leaveGroup")["leaveGroup"]

    # statuses
    status_id = _ok(a.statuses.sendTextStatus("hello status"), "sendTextStatus")["idMessage"]
    _ok(a.statuses.sendMediaStatus(uploaded, "logo.jpg", "caption"), "sendMediaStatus")
    _ok(a.statuses.sendVoiceStatus(uploaded, "voice.ogg"), "sendVoiceStatus")
    assert isinstance(_ok(a.statuses.getStatusStatistic(status_id), "getStatusStatistic"), list)
    assert isinstance(_ok(b.statuses.getIncomingStatuses(60), "getIncomingStatuses"), list)
    assert isinstance(_ok(a.statuses.getOutgoingStatuses(60), "getOutgoingStatuses"), list)
    _ok(a.statuses.deleteStatus(status_id), "deleteStatus")

    # queues
    assert isinstance(_ok(a.queues.showMessagesQueue(), "showMessagesQueue"), list)
    assert _ok(a.queues.getMessagesCount(), "getMessagesCount")["count"] >= 0
    assert _ok(b.queues.getWebhooksCount(), "getWebhooksCount")["count"] >= 0
    assert _ok(a.queues.clearMessagesQueue(), "clearMessagesQueue") == {"isCleared": True}
    assert _ok(b.queues.clearWebhooksQueue(), "clearWebhooksQueue")["isCleared"] is True

    # linking and lifecycle last: they change the instance
    fresh = server.new_instance()
    c = server.api(fresh)
    assert _ok(c.account.qr(), "qr")["type"] == "qrCode"
    assert _ok(c.account.getAuthorizationCode(79993000004), "getAuthorizationCode")["status"] is True
    assert _ok(a.account.reboot(), "reboot") == {"isReboot": True}
    assert _ok(c.account.logout(), "logout") == {"isLogout": True}
    assert len(_ok(c.account.updateApiToken(), "updateApiToken")["apiTokenInstance"]) == 50

    # partner
    partner = API.GreenApiPartner(server.demo["partnerToken"], host=server.url)
    created = _ok(
        partner.partner.createInstance({"name": "every-method", "delaySendMessagesMilliseconds": 1000}),
        "createInstance",
    )
    assert any(
        i["idInstance"] == created["idInstance"] for i in _ok(partner.partner.getInstances(), "getInstances")
    )
    assert _ok(partner.partner.deleteInstanceAccount(created["idInstance"]), "deleteInstanceAccount") == {
        "deleteInstanceAccount": True
    }


def test_every_async_method_that_the_sdk_can_send(server: Server, tmp_path: Path) -> None:
    a_inst = server.new_instance("--link", "79993000011")
    b_inst = server.new_instance("--link", "79993000012")
    a, b = server.api(a_inst), server.api(b_inst)
    b_wid, a_wid = b_inst["wid"], a_inst["wid"]
    picture = _picture(tmp_path)

    async def scenario() -> None:
        calls = {
            "getSettingsAsync": a.account.getSettingsAsync(),
            "getWaSettingsAsync": a.account.getWaSettingsAsync(),
            "getStateInstanceAsync": a.account.getStateInstanceAsync(),
            "qrAsync": a.account.qrAsync(),
            "getStateInstanceHistoryAsync": a.account.getStateInstanceHistoryAsync(),
            "sendMessageAsync": a.sending.sendMessageAsync(b_wid, "async every"),
            "sendLocationAsync": a.sending.sendLocationAsync(b_wid, 1.5, 2.5),
            "sendContactAsync": a.sending.sendContactAsync(
                b_wid, {"phoneContact": 79001234567, "firstName": "A"}
            ),
            "sendPollAsync": a.sending.sendPollAsync(b_wid, "Q?", [{"optionName": "x"}, {"optionName": "y"}]),
            "sendFileByUploadAsync": a.sending.sendFileByUploadAsync(b_wid, str(picture), "logo.jpg"),
            "checkWhatsappAsync": a.serviceMethods.checkWhatsappAsync(79993000012),
            "getContactsAsync": a.serviceMethods.getContactsAsync(),
            "getChatsAsync": a.serviceMethods.getChatsAsync(),
            "lastIncomingMessagesAsync": b.journals.lastIncomingMessagesAsync(60),
            "lastOutgoingMessagesAsync": a.journals.lastOutgoingMessagesAsync(60),
            "showMessagesQueueAsync": a.queues.showMessagesQueueAsync(),
            "getMessagesCountAsync": a.queues.getMessagesCountAsync(),
            "getWebhooksCountAsync": b.queues.getWebhooksCountAsync(),
            "createGroupAsync": a.groups.createGroupAsync("Async group", [b_wid]),
            "sendTextStatusAsync": a.statuses.sendTextStatusAsync("async status"),
            "getIncomingStatusesAsync": b.statuses.getIncomingStatusesAsync(60),
        }
        results = dict(zip(calls, await asyncio.gather(*calls.values()), strict=True))
        for name, r in results.items():
            _ok(r, name)
        group_id = results["createGroupAsync"].data["chatId"]
        _ok(await a.groups.getGroupDataAsync(group_id), "getGroupDataAsync")
        _ok(await a.groups.updateGroupNameAsync(group_id, "Async renamed"), "updateGroupNameAsync")
        _ok(await b.marking.readChatAsync(a_wid), "readChatAsync")
        _ok(await b.journals.getChatHistoryAsync(a_wid, 10), "getChatHistoryAsync")

    asyncio.run(scenario())


def test_profile_picture_is_what_others_see(server: Server, tmp_path: Path) -> None:
    import httpx

    a_inst = server.new_instance("--link", "79993000021")
    b_inst = server.new_instance("--link", "79993000022")
    a, b = server.api(a_inst), server.api(b_inst)
    picture = _picture(tmp_path)
    assert _ok(b.serviceMethods.getAvatar(a_inst["wid"]), "getAvatar")["urlAvatar"] == ""
    r = _ok(a.account.setProfilePicture(str(picture)), "setProfilePicture")
    assert r["setProfilePicture"] is True and r["urlAvatar"]
    seen = _ok(b.serviceMethods.getAvatar(a_inst["wid"]), "getAvatar")["urlAvatar"]
    assert seen == r["urlAvatar"]
    assert httpx.get(seen).content == picture.read_bytes()
    assert _ok(b.serviceMethods.getContactInfo(a_inst["wid"]), "getContactInfo")["avatar"] == seen
    assert _ok(a.account.getWaSettings(), "getWaSettings")["avatar"] == seen
    # A second change within 10 s is the documented soft failure, and changes nothing.
    again = _ok(a.account.setProfilePicture(str(picture)), "setProfilePicture")
    assert again == {"reason": "rate-overlimit", "urlAvatar": "", "setProfilePicture": False}
    assert _ok(b.serviceMethods.getAvatar(a_inst["wid"]), "getAvatar")["urlAvatar"] == seen
    # Not a picture: 400, nothing changes.
    text = tmp_path / "not.jpg"
    text.write_text("hello")
    bad = server.wire(
        a_inst, "setProfilePicture", verb="POST", files={"file": ("not.jpg", b"hello", "image/jpeg")}
    )
    assert bad.status_code == 400 and bad.json()["message"] == "Unsupported media type"
