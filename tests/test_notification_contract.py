"""Every notification the server emits meets the official webhook contract (tests/contract).

One scenario on a fresh instance produces each kind of notification the server emits today; every
body read is checked, unknown types included (an unregistered type fails here). Other tests get
the same check through ``harness.drain`` / ``harness.wait_for``.
"""

from __future__ import annotations

import copy
import time
from typing import Any

import pytest

from contract import notifications as contract
from harness import Server

INSTANCE_PHONE = "79995551001"
CUSTOMER_PHONE = "79995551002"


def kind(body: dict[str, Any]) -> str:
    """typeWebhook plus what distinguishes bodies of one type (the message type or the status)."""
    if "messageData" in body:
        return f"{body['typeWebhook']}/{body['messageData']['typeMessage']}"
    if body["typeWebhook"] == "outgoingMessageStatus":
        return f"outgoingMessageStatus/{body['status']}"
    if body["typeWebhook"] == "stateInstanceChanged":
        return f"stateInstanceChanged/{body['stateInstance']}"
    return str(body["typeWebhook"])


def collect(api: Any, expected: set[str], seen: dict[str, dict[str, Any]], timeout: float = 60) -> None:
    """Read (and delete) notifications until every kind in ``expected`` was seen; check each one."""
    deadline = time.monotonic() + timeout
    while not expected <= seen.keys() and time.monotonic() < deadline:
        r = api.receiving.receiveNotification(5)
        assert r.code == 200, r.error
        if r.data is None:
            continue
        body = r.data["body"]
        api.receiving.deleteNotification(r.data["receiptId"])
        contract.validate(body)  # strict: an unknown typeWebhook fails too
        seen.setdefault(kind(body), body)
    missing = expected - seen.keys()
    assert not missing, f"never received {sorted(missing)}; got {sorted(seen)}"


def test_every_notification_kind_meets_the_contract(server: Server) -> None:
    inst = server.new_instance("--link", INSTANCE_PHONE)
    server.new_phone(CUSTOMER_PHONE, "Contract Customer")
    api = server.api(inst)
    settings = {"stateWebhook": "yes", "statusInstanceWebhook": "yes", "incomingBlockWebhook": "yes"}
    assert api.account.setSettings(settings).code == 200
    customer = f"{CUSTOMER_PHONE}@c.us"
    seen: dict[str, dict[str, Any]] = {}

    # API send → outgoingAPIMessageReceived and its statuses (sent, delivered, then read).
    sent = api.sending.sendMessage(customer, "hello from the contract test")
    assert sent.code == 200, sent.error
    collect(
        api,
        {
            "outgoingAPIMessageReceived/textMessage",
            "outgoingMessageStatus/sent",
            "outgoingMessageStatus/delivered",
        },
        seen,
    )
    read = server.sandbox("POST", f"/phones/{CUSTOMER_PHONE}/read", json={"chatId": inst["wid"]})
    assert read.status_code == 200, read.text
    collect(api, {"outgoingMessageStatus/read"}, seen)

    # The customer writes, then replies quoting our message → incoming text and quoted reply.
    r = server.sandbox(
        "POST", f"/phones/{CUSTOMER_PHONE}/messages", json={"chatId": inst["wid"], "message": "hi"}
    )
    assert r.status_code == 200, r.text
    incoming_id = r.json()["idMessage"]
    r = server.sandbox(
        "POST",
        f"/phones/{CUSTOMER_PHONE}/messages",
        json={"chatId": inst["wid"], "message": "about that", "quotedMessageId": sent.data["idMessage"]},
    )
    assert r.status_code == 200, r.text
    collect(api, {"incomingMessageReceived/textMessage", "incomingMessageReceived/quotedMessage"}, seen)

    # We reply quoting the customer, and send a link (link preview) → API quoted and extended text.
    reply = api.sending.sendMessage(customer, "replying", quotedMessageId=incoming_id)
    assert reply.code == 200, reply.error
    link = api.sending.sendMessage(customer, "see https://example.com/page")
    assert link.code == 200, link.error
    collect(
        api,
        {"outgoingAPIMessageReceived/quotedMessage", "outgoingAPIMessageReceived/extendedTextMessage"},
        seen,
    )

    # The owner types on the linked phone itself → outgoingMessageReceived.
    r = server.sandbox(
        "POST", f"/phones/{INSTANCE_PHONE}/messages", json={"chatId": customer, "message": "typed"}
    )
    assert r.status_code == 200, r.text
    collect(api, {"outgoingMessageReceived/textMessage"}, seen)

    # A reboot passes through starting → stateInstanceChanged, and the socket closes and opens.
    assert api.account.reboot().code == 200
    collect(
        api,
        {"stateInstanceChanged/starting", "stateInstanceChanged/authorized", "statusInstanceChanged"},
        seen,
    )

    # The customer blocks the account on the phone → incomingBlock.
    r = server.sandbox("POST", f"/phones/{CUSTOMER_PHONE}/block", json={"chatId": inst["wid"]})
    assert r.status_code == 200, r.text
    collect(api, {"incomingBlock"}, seen)
    assert (
        server.sandbox("POST", f"/phones/{CUSTOMER_PHONE}/unblock", json={"chatId": inst["wid"]}).status_code
        == 200
    )

    quoted_in = seen["incomingMessageReceived/quotedMessage"]["messageData"]["quotedMessage"]
    assert quoted_in["stanzaId"] == sent.data["idMessage"]
    assert quoted_in["participant"] == inst["wid"]
    quoted_out = seen["outgoingAPIMessageReceived/quotedMessage"]["messageData"]["quotedMessage"]
    assert quoted_out["stanzaId"] == incoming_id and quoted_out["participant"] == customer


# --- the checker can fail ---------------------------------------------------------------------------

GOOD_INCOMING = {
    "typeWebhook": "incomingMessageReceived",
    "instanceData": {"idInstance": 7700000001, "wid": "79990000001@c.us", "typeInstance": "whatsapp"},
    "timestamp": 1700000000,
    "idMessage": "3EB0AAAAAAAAAAAAAAAA",
    "senderData": {"chatId": "79990000003@c.us", "sender": "79990000003@c.us", "senderName": "Cleo"},
    "messageData": {"typeMessage": "textMessage", "textMessageData": {"textMessage": "hi"}},
}
GOOD_STATE = {
    "typeWebhook": "stateInstanceChanged",
    "instanceData": GOOD_INCOMING["instanceData"],
    "timestamp": 1700000000,
    "stateInstance": "authorized",
}


def changed(base: dict[str, Any], path: list[str], value: Any) -> dict[str, Any]:
    body = copy.deepcopy(base)
    target = body
    for key in path[:-1]:
        target = target[key]
    if value is KeyError:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return body


def test_checker_accepts_good_bodies() -> None:
    assert contract.problems(GOOD_INCOMING) == []
    assert contract.problems(GOOD_STATE) == []


@pytest.mark.parametrize(
    "body,expected",
    [
        (changed(GOOD_INCOMING, ["senderData", "senderName"], KeyError), "senderName"),
        (changed(GOOD_INCOMING, ["timestamp"], 1700000000.5), "timestamp"),
        (changed(GOOD_INCOMING, ["instanceData", "idInstance"], "7700000001"), "idInstance"),
        (changed(GOOD_INCOMING, ["messageData", "textMessageData"], KeyError), "messageData"),
        (changed(GOOD_INCOMING, ["messageData", "typeMessage"], KeyError), "typeMessage"),
        (
            changed(
                GOOD_INCOMING,
                ["messageData", "quotedMessage"],
                {"stanzaId": "X", "typeMessage": "textMessage"},
            ),
            "participant",
        ),
        (
            changed(
                GOOD_INCOMING,
                ["messageData", "fileMessageData"],
                {"downloadUrl": "", "caption": "", "fileName": "a", "mimeType": "image/png"},
            ),
            "jpegThumbnail",
        ),
        (changed(GOOD_STATE, ["extra"], 1), "extra"),  # a closed object
        (changed(GOOD_STATE, ["typeWebhook"], "stateInstanceChange"), "unknown typeWebhook"),
        ([GOOD_STATE], "JSON object"),
    ],
)
def test_checker_rejects_broken_bodies(body: Any, expected: str) -> None:
    found = contract.problems(body)
    assert found and any(expected in p for p in found), found
    with pytest.raises(AssertionError):
        contract.validate(body)


def test_checker_is_extensible() -> None:
    name = "exampleEventForTheTest"
    assert not contract.known(name)
    contract.notification(name, {"typeWebhook": contract.STR, "timestamp": contract.INT}, closed=True)
    try:
        assert contract.problems({"typeWebhook": name, "timestamp": 1}) == []
        assert contract.problems({"typeWebhook": name, "timestamp": 1, "x": 2})
    finally:
        del contract.NOTIFICATIONS[name]
