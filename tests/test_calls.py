"""Calls on the sandbox network: phones call instances (incomingCall offer → outcome) and journals."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from harness import Server, wait_for
from sandbox_kit import fresh_number as kit_number
from sandbox_kit import wire

CALL_FIELDS = {"typeWebhook", "instanceData", "timestamp", "idMessage", "from", "status"}


def fresh_number() -> str:
    return kit_number("7958")


def phone(server: Server) -> str:
    number = fresh_number()
    server.new_phone(number)
    return number


def callee(server: Server, **flags: str) -> tuple[dict[str, Any], Any]:
    inst = server.new_instance("--link", fresh_number())
    api = server.api(inst)
    if flags:
        assert api.account.setSettings(flags).code == 200
    return inst, api


def call(server: Server, number: str, **body: Any) -> str:
    r = server.sandbox("POST", f"/phones/{number}/calls", json=body)
    assert r.status_code == 200, r.text
    return str(r.json()["idMessage"])


def calls_of(api: Any, id_message: str) -> Callable[[dict[str, Any]], bool]:
    return lambda n: n["typeWebhook"] in ("incomingCall", "outgoingCall") and n["idMessage"] == id_message


def test_incoming_call_offer_then_outcome(server: Server) -> None:
    inst, api = callee(server, incomingCallWebhook="yes")
    caller = phone(server)
    call_id = call(server, caller, to=inst["wid"], outcome="declined", delaySeconds=0.5)
    offer = wait_for(api, calls_of(api, call_id))
    assert offer["typeWebhook"] == "incomingCall" and offer["status"] == "offer"
    assert offer["from"] == f"{caller}@c.us"
    assert set(offer) == CALL_FIELDS  # the official schema allows no other field
    assert offer["instanceData"]["idInstance"] == inst["idInstance"]
    end = wait_for(api, calls_of(api, call_id))
    assert end["status"] == "declined" and set(end) == CALL_FIELDS
    assert end["timestamp"] >= offer["timestamp"]

    journal = api.journals.lastIncomingCalls().data
    assert len(journal) == 1
    entry = journal[0]
    assert entry["type"] == "incoming" and entry["typeMessage"] == "incomingCall"
    assert entry["idMessage"] == call_id and entry["chatId"] == f"{caller}@c.us"
    assert entry["status"] == "declined" and entry["isVideo"] is False
    assert api.journals.lastIncomingCalls(5).data[0]["idMessage"] == call_id


def test_every_outcome_is_reported(server: Server) -> None:
    inst, api = callee(server, incomingCallWebhook="yes")
    caller = phone(server)
    ids = {
        outcome: call(server, caller, to=inst["wid"].split("@")[0], outcome=outcome)
        for outcome in ("pickUp", "hangUp", "missed")
    }
    for outcome, call_id in ids.items():
        statuses = [wait_for(api, calls_of(api, call_id))["status"] for _ in range(2)]
        assert statuses == ["offer", outcome]
    journal = {c["idMessage"]: c["status"] for c in api.journals.lastIncomingCalls().data}
    assert journal == {v: k for k, v in ids.items()}


def test_settings_gate_notifications_and_journal(server: Server) -> None:
    inst, api = callee(server)  # incomingCallWebhook is off
    caller = phone(server)
    call_id = call(server, caller, to=inst["wid"], outcome="hangUp")
    marker = api.sending.sendMessage(inst["wid"], "after the call").data["idMessage"]
    # Everything before the marker was delivered in order; no call notification among it.
    seen: list[dict[str, Any]] = []
    wait_for(api, lambda n: seen.append(n) or n.get("idMessage") == marker)
    assert not [n for n in seen if n["typeWebhook"] == "incomingCall"]
    time.sleep(0.5)
    assert api.journals.lastIncomingCalls().data == []
    assert call_id


def test_outgoing_call_from_the_linked_phone(server: Server) -> None:
    inst, api = callee(server, outgoingCallWebhook="yes")
    number = inst["wid"].split("@")[0]
    other = phone(server)
    call_id = call(server, number, to=f"{other}@c.us", outcome="pickUp", isVideo=True, durationSeconds=42)
    done = wait_for(api, calls_of(api, call_id))
    assert done["typeWebhook"] == "outgoingCall" and done["status"] == "pickUp"
    assert done["from"] == f"{other}@c.us" and done["duration"] == 42 and done["isVideo"] is True
    journal = api.journals.lastOutgoingCalls().data
    assert [(c["idMessage"], c["status"], c["duration"], c["typeMessage"]) for c in journal] == [
        (call_id, "pickUp", 42, "outgoingCall")
    ]
    assert api.journals.lastIncomingCalls().data == []


def test_bad_calls_change_nothing(server: Server) -> None:
    inst, api = callee(server, incomingCallWebhook="yes")
    caller = phone(server)
    for body in (
        {"to": f"{fresh_number()}@c.us"},  # no such account
        {"to": "120363000000000001@g.us"},
        {"to": f"{caller}@c.us"},  # itself
    ):
        r = server.sandbox("POST", f"/phones/{caller}/calls", json=body)
        assert r.status_code == 400, r.text
    r = server.sandbox("POST", f"/phones/{caller}/calls", json={"to": inst["wid"], "outcome": "exploded"})
    assert r.status_code == 422
    r = server.sandbox("POST", f"/phones/{fresh_number()}/calls", json={"to": inst["wid"]})
    assert r.status_code == 404
    r = wire(server, inst, "lastIncomingCalls", params={"minutes": "0"})
    assert r.status_code == 400
    assert api.journals.lastIncomingCalls().data == []


@pytest.mark.subprocess
def test_a_ringing_call_survives_a_restart(make_server: Callable[..., Server]) -> None:
    srv = make_server(subprocess=True)  # killed below
    inst, api = callee(srv, incomingCallWebhook="yes")
    caller = phone(srv)
    call_id = call(srv, caller, to=inst["wid"], outcome="missed", delaySeconds=3)
    assert wait_for(api, calls_of(api, call_id))["status"] == "offer"
    srv.kill()
    srv.start()
    assert wait_for(api, calls_of(api, call_id), timeout=60)["status"] == "missed"
    assert api.journals.lastIncomingCalls().data[0]["status"] == "missed"


def test_async_sdk_call_journals(server: Server) -> None:
    import asyncio

    inst, api = callee(server, incomingCallWebhook="yes", outgoingCallWebhook="yes")
    caller = phone(server)
    call_id = call(server, caller, to=inst["wid"], outcome="pickUp", durationSeconds=7)
    wait_for(api, lambda n: n["typeWebhook"] == "incomingCall" and n["status"] == "pickUp")

    async def scenario() -> None:
        incoming = (await api.journals.lastIncomingCallsAsync(30)).data  # minutes go as a GET body
        assert [(c["idMessage"], c["status"]) for c in incoming] == [(call_id, "pickUp")]
        assert (await api.journals.lastOutgoingCallsAsync()).data == []

    asyncio.run(scenario())
