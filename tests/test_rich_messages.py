"""Rich messages through the sandbox network, both directions, with the official SDK:
locations, contacts, polls and votes, forwards, interactive buttons, typing, reactions, the
deprecated send methods, and the ``quotedMessage`` shape of replies.
"""

from __future__ import annotations

import time

from harness import Server
from rich_support import (
    assert_400,
    incoming,
    phone_inbox,
    phone_only,
    sent,
    side,
    unchanged,
)


def test_location_both_ways_and_quoted_reply(server: Server) -> None:
    a, b = side(server), side(server)
    r = a.api.sending.sendLocation(b.wid, 55.7558, 37.6173, "Red Square", "Moscow, Russia")
    assert r.code == 200, r.error
    body = b.wait(incoming(r.data["idMessage"]))
    data = body["messageData"]
    assert data["typeMessage"] == "locationMessage"
    loc = data["locationMessageData"]
    assert (loc["latitude"], loc["longitude"]) == (55.7558, 37.6173)
    assert loc["nameLocation"] == "Red Square" and loc["address"] == "Moscow, Russia"
    assert loc["isForwarded"] is False and loc["forwardingScore"] == 0
    # B's journal has it too.
    entry = b.api.journals.getMessage(a.wid, r.data["idMessage"]).data
    assert entry["typeMessage"] == "locationMessage" and entry["location"]["nameLocation"] == "Red Square"

    # B answers the location with a text reply: a quotedMessage that carries the location.
    reply = b.api.sending.sendMessage(a.wid, "see you there", quotedMessageId=r.data["idMessage"])
    assert reply.code == 200, reply.error
    got = a.wait(incoming(reply.data["idMessage"]))["messageData"]
    assert got["typeMessage"] == "quotedMessage"
    assert got["extendedTextMessageData"]["text"] == "see you there"
    assert got["extendedTextMessageData"]["stanzaId"] == r.data["idMessage"]
    assert got["extendedTextMessageData"]["participant"] == a.wid
    quoted = got["quotedMessage"]
    assert quoted["stanzaId"] == r.data["idMessage"] and quoted["participant"] == a.wid
    assert quoted["typeMessage"] == "locationMessage"
    assert quoted["location"]["latitude"] == 55.7558

    # A phone shares a location that quotes A's text: the location keeps its type and adds quotedMessage.
    c = phone_only(server)
    text = a.api.sending.sendMessage(c.wid, "where are you?")
    phone_inbox(c, "textMessage")
    shared = c.phone(
        "POST",
        "/locations",
        json={
            "chatId": a.wid,
            "latitude": -33.86,
            "longitude": 151.21,
            "quotedMessageId": text.data["idMessage"],
        },
    )
    assert shared.status_code == 200, shared.text
    got = a.wait(incoming(shared.json()["idMessage"]))["messageData"]
    assert got["typeMessage"] == "locationMessage"
    assert got["locationMessageData"]["latitude"] == -33.86
    assert got["quotedMessage"] == {
        "stanzaId": text.data["idMessage"],
        "participant": a.wid,
        "typeMessage": "textMessage",
        "textMessage": "where are you?",
    }


def test_location_bad_input_changes_nothing(server: Server) -> None:
    a, b = side(server), side(server)
    before = unchanged(a)
    assert_400(a.wire("sendLocation", {"chatId": b.wid, "latitude": 91, "longitude": 0}), "'latitude'")
    assert_400(a.wire("sendLocation", {"chatId": b.wid, "latitude": "north", "longitude": 0}), "'latitude'")
    assert_400(a.wire("sendLocation", {"chatId": b.wid, "latitude": 1}), "'longitude' is required")
    assert_400(
        a.wire("sendLocation", {"chatId": b.wid, "latitude": 1, "longitude": 1, "quotedMessageId": "NOPE"}),
        "quotedMessageId",
    )
    assert unchanged(a) == before


def test_contact_builds_vcard_and_phone_shares_several(server: Server) -> None:
    a, b = side(server), side(server)
    card = {"phoneContact": 79001234569, "firstName": "Ivan", "lastName": "Petrov", "company": "Acme"}
    r = a.api.sending.sendContact(b.wid, card)
    assert r.code == 200, r.error
    data = b.wait(incoming(r.data["idMessage"]))["messageData"]
    assert data["typeMessage"] == "contactMessage"
    contact = data["contactMessageData"]
    assert contact["displayName"] == "Ivan Petrov"
    vcard = contact["vcard"]
    assert vcard.startswith("BEGIN:VCARD\nVERSION:3.0\n") and vcard.endswith("END:VCARD")
    assert "N:Petrov;Ivan;;;" in vcard and "FN:Ivan Petrov" in vcard and "ORG:Acme;" in vcard
    assert "item1.TEL;waid=79001234569:+7 900 123-45-69" in vcard

    two = b.phone(
        "POST",
        "/contacts",
        json={
            "chatId": a.wid,
            "contacts": [
                {"phoneContact": 79001112233, "firstName": "Ann"},
                {"phoneContact": 79004445566, "company": "Shop"},
            ],
        },
    )
    assert two.status_code == 200, two.text
    data = a.wait(incoming(two.json()["idMessage"]))["messageData"]
    assert data["typeMessage"] == "contactsArrayMessage"
    # The documented doubled key.
    cards = data["messageData"]["contacts"]
    assert [c["displayName"] for c in cards] == ["Ann", "Shop"]
    assert "waid=79004445566" in cards[1]["vcard"]
    assert data["messageData"]["isForwarded"] is False


def test_contact_bad_input_changes_nothing(server: Server) -> None:
    a, b = side(server), side(server)
    before = unchanged(a)
    assert_400(
        a.wire("sendContact", {"chatId": b.wid, "contact": {"phoneContact": 79001234567}}), "at least one"
    )
    assert_400(
        a.wire("sendContact", {"chatId": b.wid, "contact": {"firstName": "X"}}),
        "'contact.phoneContact' is required",
    )
    assert_400(a.wire("sendContact", {"chatId": b.wid}), "'contact' is required")
    assert_400(
        a.wire("sendContact", {"chatId": b.wid, "contact": {"phoneContact": 12, "firstName": "X"}}),
        "phoneContact",
    )
    assert unchanged(a) == before


def test_poll_votes_from_phones_and_instances(server: Server) -> None:
    a = side(server, pollMessageWebhook="yes")
    b = side(server, pollMessageWebhook="yes")
    options = [{"optionName": "Red"}, {"optionName": "Green"}, {"optionName": "Blue"}]
    r = a.api.sending.sendPoll(b.wid, "Colour?", options, multipleAnswers=True)
    assert r.code == 200, r.error
    poll_id = r.data["idMessage"]
    data = b.wait(incoming(poll_id))["messageData"]
    assert data["typeMessage"] == "pollMessage"
    assert data["pollMessageData"] == {"name": "Colour?", "options": options, "multipleAnswers": True}
    assert a.wait(lambda n: n["typeWebhook"] == "outgoingAPIMessageReceived" and n["idMessage"] == poll_id)

    # The person behind instance B votes on the phone: A sees one pollUpdateMessage per action,
    # each with only this voter's current choice; B's instance sees its own vote as outgoing.
    vote = b.phone("POST", f"/messages/{poll_id}/vote", json={"options": ["Green", "Red"]})
    assert vote.status_code == 200, vote.text
    update = a.wait(incoming(vote.json()["idMessage"]))
    assert update["senderData"]["sender"] == b.wid
    pmd = update["messageData"]["pollMessageData"]
    assert update["messageData"]["typeMessage"] == "pollUpdateMessage"
    assert pmd["stanzaId"] == poll_id and pmd["name"] == "Colour?" and pmd["multipleAnswers"] is True
    assert pmd["votes"] == [
        {"optionName": "Red", "optionVoters": [b.wid]},
        {"optionName": "Green", "optionVoters": [b.wid]},
        {"optionName": "Blue", "optionVoters": []},
    ]
    own = b.wait(
        lambda n: n["typeWebhook"] == "outgoingMessageReceived" and n["idMessage"] == vote.json()["idMessage"]
    )
    assert own["messageData"]["typeMessage"] == "pollUpdateMessage"

    # Changing the vote, then withdrawing it: two more events, each the complete current choice.
    again = b.phone("POST", f"/messages/{poll_id}/vote", json={"options": ["Blue"]})
    pmd = a.wait(incoming(again.json()["idMessage"]))["messageData"]["pollMessageData"]
    assert [v["optionVoters"] for v in pmd["votes"]] == [[], [], [b.wid]]
    gone = b.phone("POST", f"/messages/{poll_id}/vote", json={"options": []})
    pmd = a.wait(incoming(gone.json()["idMessage"]))["messageData"]["pollMessageData"]
    assert all(v["optionVoters"] == [] for v in pmd["votes"])

    # A customer's phone votes on a single-answer poll; a second option is refused.
    c = phone_only(server)
    single = a.api.sending.sendPoll(c.wid, "Deliver today?", [{"optionName": "Yes"}, {"optionName": "No"}])
    phone_inbox(c, "pollMessage")
    refused = c.phone("POST", f"/messages/{single.data['idMessage']}/vote", json={"options": ["Yes", "No"]})
    assert refused.status_code == 400 and "one answer" in refused.text
    unknown = c.phone("POST", f"/messages/{single.data['idMessage']}/vote", json={"options": ["Maybe"]})
    assert unknown.status_code == 400
    ok = c.phone("POST", f"/messages/{single.data['idMessage']}/vote", json={"options": ["Yes"]})
    update = a.wait(incoming(ok.json()["idMessage"]))
    assert update["senderData"]["sender"] == c.wid
    assert update["messageData"]["pollMessageData"]["votes"][0] == {
        "optionName": "Yes",
        "optionVoters": [c.wid],
    }


def test_poll_notifications_need_poll_setting(server: Server) -> None:
    a = side(server, pollMessageWebhook="yes")
    b = side(server)  # pollMessageWebhook stays "no"
    poll = a.api.sending.sendPoll(b.wid, "Q?", [{"optionName": "x"}, {"optionName": "y"}])
    marker = a.api.sending.sendMessage(b.wid, "after the poll")
    seen = []
    b.wait(lambda n: seen.append(n) or n.get("idMessage") == marker.data["idMessage"])
    assert not any(n.get("idMessage") == poll.data["idMessage"] for n in seen if "messageData" in n)
    # ...but the poll is in B's journal and B's phone can vote on it.
    assert b.api.journals.getMessage(a.wid, poll.data["idMessage"]).data["typeMessage"] == "pollMessage"


def test_poll_bad_input_changes_nothing(server: Server) -> None:
    a, b = side(server), side(server)
    before = unchanged(a)
    one = {"chatId": b.wid, "message": "Q", "options": [{"optionName": "only"}]}
    assert_400(a.wire("sendPoll", one), "'options' must contain at least 2 items")
    dup = {"chatId": b.wid, "message": "Q", "options": [{"optionName": "a"}, {"optionName": "a"}]}
    assert_400(a.wire("sendPoll", dup), "unique")
    many = {"chatId": b.wid, "message": "Q", "options": [{"optionName": str(i)} for i in range(13)]}
    assert_400(a.wire("sendPoll", many), "'options' must contain less than or equal to 12 items")
    long_q = {"chatId": b.wid, "message": "Q" * 256, "options": [{"optionName": "a"}, {"optionName": "b"}]}
    assert_400(a.wire("sendPoll", long_q), "'message' length must be less than or equal to 255")
    assert_400(a.wire("sendPoll", {"chatId": b.wid, "options": []}), "'message' is required")
    assert unchanged(a) == before


def test_forward_copies_known_messages_and_echoes_unknown(server: Server) -> None:
    a, b = side(server), side(server)
    c = phone_only(server)
    got = c.phone("POST", "/messages", json={"chatId": a.wid, "message": "price list please"})
    a.wait(incoming(got.json()["idMessage"]))
    loc = a.api.sending.sendLocation(c.wid, 1.5, 2.5, "Shop")
    sent(a, loc.data["idMessage"])
    r = a.api.sending.forwardMessages(
        b.wid, c.wid, [got.json()["idMessage"], "UNKNOWN0000", loc.data["idMessage"]]
    )
    assert r.code == 200, r.error
    new_text, echoed, new_loc = r.data["messages"]
    assert echoed == "UNKNOWN0000"
    assert new_text not in (got.json()["idMessage"],) and new_loc != loc.data["idMessage"]
    text = b.wait(incoming(new_text))["messageData"]
    assert text["typeMessage"] == "extendedTextMessage"
    assert text["extendedTextMessageData"]["text"] == "price list please"
    assert text["extendedTextMessageData"]["isForwarded"] is True
    assert text["extendedTextMessageData"]["forwardingScore"] == 1
    location = b.wait(incoming(new_loc))["messageData"]
    assert location["locationMessageData"]["nameLocation"] == "Shop"
    assert location["locationMessageData"]["isForwarded"] is True
    # The unknown id was not delivered anywhere.
    history = b.api.journals.getChatHistory(a.wid).data
    assert {e["idMessage"] for e in history} == {new_text, new_loc}


def test_forward_bad_input_changes_nothing(server: Server) -> None:
    a, b = side(server), side(server)
    before = unchanged(a)
    assert_400(
        a.wire("forwardMessages", {"chatId": b.wid, "chatIdFrom": b.wid, "messages": []}),
        "'messages' must contain at least 1 items",
    )
    assert_400(a.wire("forwardMessages", {"chatId": b.wid, "messages": ["X"]}), "'chatIdFrom' is required")
    assert_400(
        a.wire("forwardMessages", {"chatId": b.wid, "chatIdFrom": "bob", "messages": ["X"]}), "chat id"
    )
    assert unchanged(a) == before
    only_unknown = a.wire("forwardMessages", {"chatId": b.wid, "chatIdFrom": b.wid, "messages": ["NOPE1"]})
    assert only_unknown.status_code == 200 and only_unknown.json() == {"messages": ["NOPE1"]}
    assert unchanged(a) == before


def test_interactive_buttons_and_reply_press(server: Server) -> None:
    a, b = side(server), side(server)
    buttons = [
        {"type": "copy", "buttonId": "1", "buttonText": "Copy code", "copyCode": "SAVE10"},
        {"type": "call", "buttonId": "2", "buttonText": "Call us", "phoneNumber": "79001234567"},
        {"type": "url", "buttonId": "3", "buttonText": "Open", "url": "https://example.com"},
    ]
    r = a.api.sending.sendInteractiveButtons(b.wid, "Your coupon", buttons, header="Hi", footer="Shop")
    assert r.code == 200, r.error
    data = b.wait(incoming(r.data["idMessage"]))["messageData"]
    assert data["typeMessage"] == "interactiveButtons"
    view = data["interactiveButtons"]
    assert (view["titleText"], view["contentText"], view["footerText"]) == ("Hi", "Your coupon", "Shop")
    assert view["buttons"][0]["copyCode"] == "SAVE10" and view["buttons"][2]["url"] == "https://example.com"

    c = phone_only(server)
    reply_buttons = [{"buttonId": "yes", "buttonText": "Yes"}, {"buttonId": "no", "buttonText": "No"}]
    q = a.api.sending.sendInteractiveButtonsReply(c.wid, "Confirm the order?", reply_buttons, footer="Shop")
    assert q.code == 200, q.error
    shown = phone_inbox(c, "interactiveButtonsReply")
    assert shown["idMessage"] == q.data["idMessage"]
    assert (
        c.phone("POST", f"/messages/{q.data['idMessage']}/press", json={"buttonId": "maybe"}).status_code
        == 400
    )
    pressed = c.phone("POST", f"/messages/{q.data['idMessage']}/press", json={"buttonId": "no"})
    assert pressed.status_code == 200, pressed.text
    data = a.wait(incoming(pressed.json()["idMessage"]))["messageData"]
    assert data["typeMessage"] == "interactiveButtonsResponse"
    assert data["interactiveButtonsResponse"]["selectedDisplayText"] == "No"
    assert data["interactiveButtonsResponse"]["selectedId"] == "no"
    assert data["interactiveButtonsResponse"]["selectedIndex"] == 1
    assert data["interactiveButtonsResponse"]["stanzaId"] == q.data["idMessage"]
    assert data["quotedMessage"]["stanzaId"] == q.data["idMessage"]
    assert data["quotedMessage"]["participant"] == a.wid


def test_interactive_buttons_bad_input_changes_nothing(server: Server) -> None:
    a, b = side(server), side(server)
    before = unchanged(a)
    url = {"type": "url", "buttonText": "Open", "url": "https://example.com"}
    assert_400(
        a.wire("sendInteractiveButtons", {"chatId": b.wid, "body": "x", "buttons": [url] * 4}), "3 items"
    )
    assert_400(
        a.wire(
            "sendInteractiveButtons",
            {"chatId": b.wid, "body": "x", "buttons": [{"type": "url", "buttonText": "Open"}]},
        ),
        "needs 'url'",
    )
    assert_400(
        a.wire(
            "sendInteractiveButtons", {"chatId": "120363000000000001@g.us", "body": "x", "buttons": [url]}
        ),
        "personal chats",
    )
    long_text = {"buttonId": "1", "buttonText": "x" * 26}
    assert_400(
        a.wire("sendInteractiveButtonsReply", {"chatId": b.wid, "body": "x", "buttons": [long_text]}), "25"
    )
    assert_400(a.wire("sendInteractiveButtonsReply", {"chatId": b.wid, "buttons": []}), "'body' is required")
    assert unchanged(a) == before


def test_typing_goes_through_the_queue_and_sends_no_message(server: Server) -> None:
    a = side(server)
    c = phone_only(server)
    r = a.api.serviceMethods.sendTyping(c.wid, 20000, "recording")
    assert r.code == 200, r.error
    raw = a.wire("sendTyping", {"chatId": c.wid})
    assert raw.status_code == 200 and raw.content == b""
    deadline = time.monotonic() + 30
    shown: list = []
    while time.monotonic() < deadline and not shown:
        shown = c.phone("GET", "/typing").json()
        time.sleep(0.1)
    assert shown and shown[0]["chatId"] == a.wid
    assert shown[0]["typingType"] in ("recording", "typing")
    # Nothing reached the chat and the queue is empty again.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and a.api.queues.getMessagesCount().data["count"]:
        time.sleep(0.1)
    assert a.api.queues.getMessagesCount().data["count"] == 0
    assert a.api.journals.getChatHistory(c.wid).data == []
    assert c.phone("GET", "/messages").json() == []


def test_typing_bad_input(server: Server) -> None:
    a = side(server)
    before = unchanged(a)
    assert_400(
        a.wire("sendTyping", {"chatId": a.wid, "typingTime": 500}),
        "'typingTime' must be larger than or equal to 1000",
    )
    assert_400(
        a.wire("sendTyping", {"chatId": a.wid, "typingTime": 20001}),
        "'typingTime' must be less than or equal to 20000",
    )
    assert_400(a.wire("sendTyping", {"chatId": a.wid, "typingTime": "soon"}), "'typingTime' must be a number")
    assert_400(a.wire("sendTyping", {"typingTime": 2000}), "'chatId' is required")
    assert unchanged(a) == before


def test_reactions_from_instances_and_phones(server: Server) -> None:
    a, b = side(server), side(server)
    msg = a.api.sending.sendMessage(b.wid, "parcel shipped")
    b.wait(incoming(msg.data["idMessage"]))
    r = b.wire("sendReaction", {"chatId": a.wid, "idMessage": msg.data["idMessage"], "reaction": "👍"})
    assert r.status_code == 200, r.text
    data = a.wait(incoming(r.json()["idMessage"]))["messageData"]
    assert data == {
        "typeMessage": "reactionMessage",
        "extendedTextMessageData": {"text": "👍"},
        "quotedMessage": {"stanzaId": msg.data["idMessage"], "participant": a.wid},
    }
    removed = b.wire("sendReaction", {"chatId": a.wid, "idMessage": msg.data["idMessage"], "reaction": ""})
    data = a.wait(incoming(removed.json()["idMessage"]))["messageData"]
    assert data["extendedTextMessageData"]["text"] == ""

    # The person behind A reacts on the phone to B's message; B's instance is told.
    back = b.api.sending.sendMessage(a.wid, "thanks!")
    a.wait(incoming(back.data["idMessage"]))
    heart = a.phone("POST", f"/messages/{back.data['idMessage']}/reaction", json={"reaction": "❤️"})
    assert heart.status_code == 200, heart.text
    data = b.wait(incoming(heart.json()["idMessage"]))["messageData"]
    assert data["extendedTextMessageData"]["text"] == "❤️"
    assert data["quotedMessage"] == {"stanzaId": back.data["idMessage"], "participant": b.wid}
    # A's instance sees its own account's reaction as a phone-sent message.
    own = a.wait(
        lambda n: (
            n["typeWebhook"] == "outgoingMessageReceived" and n["idMessage"] == heart.json()["idMessage"]
        )
    )
    assert own["messageData"]["typeMessage"] == "reactionMessage"

    # An unknown target is accepted, as the hosted API does.
    unknown = b.wire("sendReaction", {"chatId": a.wid, "idMessage": "NOSUCHID", "reaction": "👀"})
    assert unknown.status_code == 200 and unknown.json()["idMessage"]


def test_reaction_bad_input_changes_nothing(server: Server) -> None:
    a, b = side(server), side(server)
    before = unchanged(a)
    assert_400(a.wire("sendReaction", {"chatId": b.wid, "reaction": "👍"}), "'idMessage' is required")
    assert_400(a.wire("sendReaction", {"chatId": b.wid, "idMessage": "X"}), "'reaction' is required")
    assert_400(
        a.wire("sendReaction", {"chatId": b.wid, "idMessage": "X", "reaction": 5}),
        "'reaction' must be a string",
    )
    assert unchanged(a) == before


def test_deprecated_send_methods_deliver_legacy_types(server: Server) -> None:
    a = side(server)
    c = phone_only(server)
    buttons = [{"buttonId": 1, "buttonText": "Yes"}, {"buttonId": 2, "buttonText": "No"}]
    r = a.api.sending.sendButtons(c.wid, "Ready?", buttons, footer="f")
    assert r.code == 200, r.error
    shown = phone_inbox(c, "buttonsMessage")
    assert shown["idMessage"] == r.data["idMessage"]
    press = c.phone("POST", f"/messages/{r.data['idMessage']}/press", json={"buttonId": "2"})
    data = a.wait(incoming(press.json()["idMessage"]))["messageData"]
    assert data["typeMessage"] == "buttonsResponseMessage"
    assert data["buttonsResponseMessage"] == {
        "stanzaId": r.data["idMessage"],
        "selectedButtonId": "2",
        "selectedButtonText": "No",
    }

    template = [
        {"index": 1, "urlButton": {"displayText": "Site", "url": "https://example.com"}},
        {"index": 2, "quickReplyButton": {"displayText": "Call me back", "id": "cb"}},
    ]
    t = a.api.sending.sendTemplateButtons(c.wid, "Choose", template)
    assert t.code == 200, t.error
    phone_inbox(c, "templateMessage")
    press = c.phone("POST", f"/messages/{t.data['idMessage']}/press", json={"buttonId": "cb"})
    data = a.wait(incoming(press.json()["idMessage"]))["messageData"]
    assert data["typeMessage"] == "templateButtonsReplyMessage"
    assert data["templateButtonReplyMessage"]["selectedIndex"] == 2
    assert data["templateButtonReplyMessage"]["selectedDisplayText"] == "Call me back"

    sections = [
        {"title": "Sizes", "rows": [{"title": "Small", "rowId": "s"}, {"title": "Large", "rowId": "l"}]}
    ]
    lst = a.api.sending.sendListMessage(c.wid, "Pick a size", "Sizes", sections, title="Menu")
    assert lst.code == 200, lst.error
    phone_inbox(c, "listMessage")
    press = c.phone("POST", f"/messages/{lst.data['idMessage']}/press", json={"buttonId": "l"})
    data = a.wait(incoming(press.json()["idMessage"]))["messageData"]
    assert data["typeMessage"] == "listResponseMessage"
    assert (
        data["listResponseMessage"]["singleSelectReply"] == "l"
        and data["listResponseMessage"]["title"] == "Large"
    )

    b = side(server)
    link = a.api.sending.sendLink(b.wid, "https://example.com/page")
    data = b.wait(incoming(link.data["idMessage"]))["messageData"]
    assert data["typeMessage"] == "extendedTextMessage"
    assert data["extendedTextMessageData"]["text"] == "https://example.com/page"
    tpl = a.wire(
        "sendTemplate",
        {
            "chatId": b.wid,
            "namespace": "ns",
            "name": "order_ready",
            "languageCode": "en",
            "params": [{"default": "Order 42"}],
        },
    )
    assert tpl.status_code == 200, tpl.text
    data = b.wait(incoming(tpl.json()["idMessage"]))["messageData"]
    assert data["typeMessage"] == "templateMessage"
    assert data["templateMessage"]["contentText"] == "Order 42"
    lb = a.api.sending.sendButtons(b.wid, "Ready?", buttons)
    data = b.wait(incoming(lb.data["idMessage"]))["messageData"]
    assert data["buttonsMessage"]["contentText"] == "Ready?"
    assert data["buttonsMessage"]["buttons"] == [
        {"buttonId": "1", "buttonText": "Yes"},
        {"buttonId": "2", "buttonText": "No"},
    ]


def test_deprecated_bad_input_changes_nothing(server: Server) -> None:
    a, b = side(server), side(server)
    before = unchanged(a)
    four = [{"buttonId": i, "buttonText": "b"} for i in range(4)]
    assert_400(a.wire("sendButtons", {"chatId": b.wid, "message": "x", "buttons": four}), "3 items")
    assert_400(a.wire("sendLink", {"chatId": b.wid, "urlLink": "ftp://x"}), "urlLink")
    assert_400(
        a.wire("sendListMessage", {"chatId": b.wid, "message": "x", "sections": []}),
        "'buttonText' is required",
    )
    bad_tpl = [{"index": 1}]
    assert_400(
        a.wire("sendTemplateButtons", {"chatId": b.wid, "message": "x", "templateButtons": bad_tpl}),
        "exactly one",
    )
    assert_400(
        a.wire("sendTemplate", {"chatId": b.wid, "namespace": "n", "languageCode": "en"}),
        "'name' is required",
    )
    assert unchanged(a) == before


def test_phone_reply_to_a_poll_quotes_it(server: Server) -> None:
    a = side(server)
    c = phone_only(server)
    poll = a.api.sending.sendPoll(c.wid, "Time?", [{"optionName": "9"}, {"optionName": "10"}])
    phone_inbox(c, "pollMessage")
    r = c.phone(
        "POST",
        "/messages",
        json={"chatId": a.wid, "message": "neither", "quotedMessageId": poll.data["idMessage"]},
    )
    data = a.wait(incoming(r.json()["idMessage"]))["messageData"]
    assert data["typeMessage"] == "quotedMessage"
    assert data["quotedMessage"]["stanzaId"] == poll.data["idMessage"]
    assert data["quotedMessage"]["typeMessage"] == "pollMessage"
    assert data["quotedMessage"]["participant"] == a.wid


def test_concurrent_sends_are_delivered_exactly_once(server: Server) -> None:
    """Sends accepted while another send of the instance is in flight go out once each."""
    from concurrent.futures import ThreadPoolExecutor

    a = side(server)
    c = phone_only(server)

    def one(i: int) -> str:
        r = a.api.sending.sendLocation(c.wid, float(i), float(i), f"spot {i}")
        assert r.code == 200, r.error
        return str(r.data["idMessage"])

    with ThreadPoolExecutor(8) as pool:
        ids = list(pool.map(one, range(24)))
    deadline = time.monotonic() + 60
    got: list = []
    while time.monotonic() < deadline:
        got = [m["idMessage"] for m in c.phone("GET", "/messages", params={"direction": "incoming"}).json()]
        if len(got) >= len(ids):
            break
        time.sleep(0.2)
    time.sleep(1)  # a duplicate would arrive right behind the original
    got = [m["idMessage"] for m in c.phone("GET", "/messages", params={"direction": "incoming"}).json()]
    assert sorted(got) == sorted(ids)
