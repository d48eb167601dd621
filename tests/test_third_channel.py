"""A third channel needs no change outside channels/: this test declares a minimal one (an
in-memory network), names it in VERDIGRIS_CHANNELS, and drives it with the official SDK through
linking by QR code, sending, receiving, statuses and a capability it lacks (501)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import httpx
from fastapi import APIRouter

from harness import SRC, decode_qr, wait_for
from verdigris.channels.base import BaseChannel
from verdigris.instances import service as instances
from verdigris.instances.service import InstanceRecord
from verdigris.messaging import lifecycle
from verdigris.messaging.content import new_device_id, text_content
from verdigris.messaging.incoming import IncomingMessage, receive
from verdigris.messaging.service import StoredMessage
from verdigris.messaging.vocabulary import MessageType, Status
from verdigris.store.clock import now_ms

TESTS = str(Path(__file__).resolve().parent)


class MemoryChannel(BaseChannel):
    """A network that lives in a list: accounts are numbers; what instances send is kept in
    ``outbox``; its control API scans QR codes, writes to instances and reads messages."""

    name = "memory"
    title = "Memory"
    missing = {"groups": "the memory network has no group chats"}

    def __init__(self, core: Any) -> None:
        super().__init__(core)
        self.outbox: list[StoredMessage] = []
        self.logouts: list[int] = []

    async def qr_payload(self, rec: InstanceRecord) -> str:
        return f"memory-link:{rec.id}"

    async def has_account(self, rec: InstanceRecord, phone: str) -> bool:
        return True

    async def logout(self, rec: InstanceRecord) -> None:
        self.logouts.append(rec.id)

    async def deliver(self, tx: Any, rec: InstanceRecord, message: StoredMessage) -> None:
        self.outbox.append(message)
        for status in (Status.SENT, Status.DELIVERED):
            await lifecycle.set_status(tx, rec, message.row_id, message.chat_id, message.id_message, status)

    def routers(self) -> list[Any]:
        core, router = self.core, APIRouter(prefix="/memory")

        @router.post("/scan")
        async def scan(body: dict[str, str]) -> dict[str, str]:
            rec = await core.instances.get(int(body["qr"].removeprefix("memory-link:")))
            assert rec is not None
            await instances.link(core, rec, f"{body['phone']}@c.us", channel=self.name)
            return {"linked": rec.wid}

        @router.post("/say")
        async def say(body: dict[str, str]) -> dict[str, str]:
            rec = await core.instances.get(int(body["instance"]))
            assert rec is not None
            wid, content = f"{body['phone']}@c.us", text_content(body["text"])
            incoming = IncomingMessage(new_device_id(), wid, wid, "", MessageType.TEXT, content, now_ms())
            async with core.tx() as tx:
                await receive(tx, rec, incoming)
            return {"idMessage": incoming.id_message}

        @router.get("/logouts")
        async def logouts() -> list[int]:
            return self.logouts

        @router.get("/outbox")
        async def outbox() -> list[dict[str, str]]:
            return [{"to": m.chat_id, "text": m.content.get("text", "")} for m in self.outbox]

        @router.post("/read")
        async def read(body: dict[str, str]) -> dict[str, bool]:
            sent = next(m for m in self.outbox if m.id_message == body["idMessage"])
            rec = await core.instances.get(sent.instance_id)
            async with core.tx() as tx:
                done = await lifecycle.set_status(
                    tx, rec, sent.row_id, sent.chat_id, sent.id_message, Status.READ, current=Status.DELIVERED
                )
            return {"read": done}

        return [router]


def test_a_channel_declared_in_a_test_is_driven_by_the_official_sdk(make_server: Any) -> None:
    srv = make_server(
        env={
            "VERDIGRIS_CHANNELS": "test_third_channel:MemoryChannel",
            "PYTHONPATH": SRC + os.pathsep + TESTS,
        }
    )
    inst = srv.new_instance("--channel", "memory")
    api = srv.api(inst)
    assert api.account.getStateInstance().data == {"stateInstance": "notAuthorized"}

    # Link: the QR code carries the channel's payload; an account of the network scans it.
    qr = api.account.qr().data
    assert qr["type"] == "qrCode"
    r = httpx.post(f"{srv.url}/memory/scan", json={"qr": decode_qr(qr["message"]), "phone": "15550001"})
    assert r.status_code == 200, r.text
    assert api.account.getStateInstance().data == {"stateInstance": "authorized"}

    # Send: queued, handed to the channel, statuses back as notifications.
    sent = api.sending.sendMessage("15550002@c.us", "hello, memory")
    assert sent.code == 200, sent.error
    id_message = sent.data["idMessage"]
    for status in ("sent", "delivered"):
        wait_for(
            api,
            lambda n, s=status: (
                n["typeWebhook"] == "outgoingMessageStatus"
                and n["idMessage"] == id_message
                and n["status"] == s
            ),
        )
    assert httpx.get(f"{srv.url}/memory/outbox").json() == [{"to": "15550002@c.us", "text": "hello, memory"}]
    assert httpx.post(f"{srv.url}/memory/read", json={"idMessage": id_message}).json() == {"read": True}
    wait_for(api, lambda n: n["typeWebhook"] == "outgoingMessageStatus" and n["status"] == "read")

    # Receive: the network writes to the instance.
    r = httpx.post(
        f"{srv.url}/memory/say",
        json={"instance": str(inst["idInstance"]), "phone": "15550002", "text": "hi!"},
    )
    got = wait_for(
        api,
        lambda n: n["typeWebhook"] == "incomingMessageReceived" and n["idMessage"] == r.json()["idMessage"],
    )
    assert got["messageData"]["textMessageData"]["textMessage"] == "hi!"
    assert api.serviceMethods.checkWhatsapp(15550002).data == {"existsWhatsapp": True}

    # A capability it lacks answers 501 with the channel's reason; so does linking by pairing code.
    group = api.groups.createGroup("team", ["15550002@c.us"])
    assert group.code == 501 and "the memory network has no group chats" in group.error
    assert api.account.getAuthorizationCode(15550001).code == 501

    # Logout goes through the channel (it ends the session), then the instance is unlinked.
    assert api.account.logout().data == {"isLogout": True}
    assert httpx.get(f"{srv.url}/memory/logouts").json() == [inst["idInstance"]]
    assert api.account.getStateInstance().data == {"stateInstance": "notAuthorized"}
