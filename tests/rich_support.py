"""Helpers for the rich-message and service-method tests: fresh linked instances, raw wire calls."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Any

from harness import Server, wait_for


def new_number() -> str:
    return "7997" + "".join(secrets.choice("0123456789") for _ in range(7))


@dataclass
class Side:
    """One account on the sandbox network: its phone number and an instance linked to it."""

    server: Server
    number: str
    inst: dict[str, Any]

    @property
    def wid(self) -> str:
        return f"{self.number}@c.us"

    @property
    def api(self) -> Any:
        return self.server.api(self.inst)

    def wire(self, method: str, body: Any = None, verb: str = "POST") -> Any:
        return self.server.wire(self.inst, method, verb=verb, json=body)

    def phone(self, verb: str, path: str, **kwargs: Any) -> Any:
        return self.server.sandbox(verb, f"/phones/{self.number}{path}", **kwargs)

    def wait(self, predicate: Any, timeout: float = 30) -> dict[str, Any]:
        return wait_for(self.api, predicate, timeout)


def side(server: Server, name: str = "", **settings: str) -> Side:
    number = new_number()
    inst = server.new_instance("--link", number, "--name", name or number)
    server.new_phone(number, name or f"Person {number[-4:]}")
    s = Side(server, number, inst)
    if settings:
        r = s.api.account.setSettings(settings)
        assert r.code == 200, r.error
    return s


def phone_only(server: Server, name: str = "") -> Side:
    """A sandbox phone with no instance (a customer)."""
    number = new_number()
    server.new_phone(number, name or f"Customer {number[-4:]}")
    return Side(server, number, {})


def incoming(id_message: str) -> Any:
    return lambda n: n.get("typeWebhook") == "incomingMessageReceived" and n.get("idMessage") == id_message


def of_type(type_message: str, kind: str = "incomingMessageReceived") -> Any:
    return lambda n: (
        n.get("typeWebhook") == kind and n.get("messageData", {}).get("typeMessage") == type_message
    )


def phone_inbox(s: Side, type_message: str, timeout: float = 30) -> dict[str, Any]:
    """The newest message of a type a phone received (waits for it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = s.phone("GET", "/messages", params={"direction": "incoming"})
        r.raise_for_status()
        found = [m for m in r.json() if m["typeMessage"] == type_message]
        if found:
            return dict(found[-1])
        time.sleep(0.2)
    raise AssertionError(f"phone {s.number} received no {type_message}")


def sent(s: Side, id_message: str, timeout: float = 30) -> dict[str, Any]:
    """Wait until the instance's journal shows the message left the queue; returns the entry."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = s.api.journals.lastOutgoingMessages()
        assert r.code == 200, r.error
        for entry in r.data:
            if entry["idMessage"] == id_message and entry["statusMessage"] != "pending":
                return dict(entry)
        time.sleep(0.2)
    raise AssertionError(f"{id_message} was not sent")


def unchanged(s: Side) -> tuple[Any, ...]:
    """What a rejected request must not change: the queue and the outgoing journal."""
    queue = s.api.queues.showMessagesQueue()
    journal = s.api.journals.lastOutgoingMessages()
    return (queue.data, [(e["idMessage"], e["typeMessage"]) for e in journal.data or []])


def assert_400(response: Any, fragment: str) -> None:
    assert response.status_code == 400, response.text
    body = response.json()
    assert fragment in body["message"], body
