"""The WhatsApp Web gateway with neonize's real code, offline.

Incoming: WhatsApp events are neonize's own event protobufs (proto2, every required field filled),
built here and pushed through neonize's own dispatcher, ``client.event.execute(uuid, address,
size, code)``, exactly as the Go side calls it. Outgoing: the client's Go core is replaced by a
recorder, so the exact message protobufs that would go to WhatsApp are asserted. The server in
between is real; the notifications it makes are checked against the official JSON Schema.
Nothing here reaches WhatsApp (no client ever connects).
"""

from __future__ import annotations

import asyncio
import ctypes
import hashlib
import threading
import time
from collections.abc import Coroutine, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message as Proto
from neonize.client import NewClient
from neonize.events import EVENT_TO_INT
from neonize.proto import Neonize_pb2 as ev
from neonize.proto.waCommon.WACommon_pb2 import MessageKey
from neonize.proto.waE2E.WAWebProtobufsE2E_pb2 import (
    ContactMessage,
    ContextInfo,
    DocumentMessage,
    ExtendedTextMessage,
    FutureProofMessage,
    GroupInviteMessage,
    ImageMessage,
    LocationMessage,
    PollCreationMessage,
    PollUpdateMessage,
    PollVoteMessage,
    ProtocolMessage,
    ReactionMessage,
)
from neonize.proto.waE2E.WAWebProtobufsE2E_pb2 import Message as WaMessage
from neonize.proto.waHistorySync.WAWebProtobufsHistorySync_pb2 import (
    Conversation,
    HistorySync,
    HistorySyncMsg,
)
from neonize.proto.waWeb.WAWebProtobufsWeb_pb2 import WebMessageInfo

from harness import Server, check_contract, drain, wait_for
from sandbox_kit import wait_until
from verdigris.channels.whatsapp_web import protocol
from verdigris.channels.whatsapp_web.gateway import Gateway, outgoing_message, translate
from verdigris.channels.whatsapp_web.protocol import Event, GatewayLink

NUMBER = "79990001111"
CUSTOMER = "79995550001"


def filled(cls: type[Proto], **values: Any) -> Any:
    """A proto2 message of ``cls`` with ``values`` and every other required field at its zero value."""
    message = cls(**values)
    for field in cls.DESCRIPTOR.fields:
        if not field.is_required or message.HasField(field.name):
            continue
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            getattr(message, field.name).CopyFrom(filled(field.message_type._concrete_class))
        elif field.type == FieldDescriptor.TYPE_ENUM:
            setattr(message, field.name, field.enum_type.values[0].number)
        elif field.type == FieldDescriptor.TYPE_STRING:
            setattr(message, field.name, "")
        elif field.type == FieldDescriptor.TYPE_BYTES:
            setattr(message, field.name, b"")
        elif field.type == FieldDescriptor.TYPE_BOOL:
            setattr(message, field.name, False)
        else:
            setattr(message, field.name, 0)
    return message


def jid(user: str, server: str = "s.whatsapp.net", device: int = 0) -> Any:
    return filled(ev.JID, User=user, Server=server, Device=device)


def source(chat: Any, sender: Any, *, from_me: bool = False, sender_alt: Any = None) -> Any:
    return filled(
        ev.MessageSource,
        Chat=chat,
        Sender=sender,
        IsFromMe=from_me,
        SenderAlt=sender_alt if sender_alt is not None else jid(""),
    )


def incoming(wa_id: str, message: WaMessage, *, sender: Any = None, name: str = "Ann", at_s: int = 0) -> Any:
    who = sender if sender is not None else jid(CUSTOMER)
    info = filled(
        ev.MessageInfo,
        MessageSource=source(who, who),
        ID=wa_id,
        Pushname=name,
        Timestamp=at_s or int(time.time()),
        Type="text",
    )
    return filled(ev.Message, Info=info, Message=message)


class GoRecorder:
    """Stands in for neonize's Go core: records what would go to WhatsApp, answers like it."""

    def __init__(self) -> None:
        self.sent: list[tuple[Any, WaMessage]] = []
        self.calls: list[str] = []
        self._ids = iter(range(1, 10**6))
        self.uploads, self.files, self.presences, self.on_whatsapp, self.votes = [], {}, [], set(), {}
        self.group_requests = []
        self.pictures, self.hidden, self.abouts, self.book, self.set_pictures = {}, set(), {}, [], []

    def SendMessage(self, uuid: bytes, to: bytes, to_size: int, message: bytes, size: int) -> bytes:
        self.sent.append((ev.JID.FromString(to[:to_size]), WaMessage.FromString(message[:size])))
        answer = filled(
            ev.SendResponse, ID=f"3EB0REC{next(self._ids):08d}", Timestamp=int(time.time()), ServerID=1
        )
        return bytes(filled(ev.SendMessageReturnFunction, SendResponse=answer).SerializeToString())

    # Files: an upload answers where WhatsApp keeps it; a download hands back the bytes put here.
    uploads: list[tuple[bytes, int]]
    files: dict[str, bytes]  # direct path -> bytes
    presences: list[tuple[str, int, int]]
    on_whatsapp: set[str]
    votes: dict[str, list[bytes]]  # poll id -> the option hashes a vote decrypts to

    def Upload(self, uuid: bytes, binary: bytes, size: int, media_type: int) -> bytes:
        self.uploads.append((bytes(binary[:size]), media_type))
        path = f"/v/t62/fake-{len(self.uploads)}"
        answer = filled(
            ev.UploadResponse,
            url=f"https://mmg.whatsapp.net{path}",
            DirectPath=path,
            Handle="h",
            MediaKey=b"k" * 32,
            FileEncSHA256=b"e" * 32,
            FileSHA256=hashlib.sha256(binary[:size]).digest(),
            FileLength=size,
        )
        return bytes(filled(ev.UploadReturnFunction, UploadResponse=answer).SerializeToString())

    def DownloadAny(self, uuid: bytes, message: bytes, size: int) -> bytes:
        wanted = WaMessage.FromString(message[:size])
        media = next(value for _, value in wanted.ListFields())
        return bytes(
            filled(ev.DownloadReturnFunction, Binary=self.files[media.directPath]).SerializeToString()
        )

    def SendChatPresence(self, uuid: bytes, jid: bytes, size: int, state: int, media: int) -> bytes:
        self.presences.append((ev.JID.FromString(jid[:size]).User, state, media))
        return b""

    def IsOnWhatsApp(self, uuid: bytes, numbers: bytes, size: int) -> bytes:
        query = bytes(numbers[:size]).decode()
        found = [
            filled(
                ev.IsOnWhatsAppResponse,
                Query=n,
                JID=jid(n.lstrip("+")),
                IsIn=n.lstrip("+") in self.on_whatsapp,
            )
            for n in query.split()
        ]
        return bytes(ev.IsOnWhatsAppReturnFunction(IsOnWhatsAppResponse=found).SerializeToString())

    def DecryptPollVote(self, uuid: bytes, message: bytes, size: int) -> bytes:
        event = ev.Message.FromString(message[:size])
        poll_id = event.Message.pollUpdateMessage.pollCreationMessageKey.ID
        if poll_id not in self.votes:
            return bytes(ev.ReturnFunctionWithError(Error="no secret for this poll").SerializeToString())
        vote = PollVoteMessage(selectedOptions=self.votes[poll_id])
        return bytes(ev.ReturnFunctionWithError(PollVoteMessage=vote).SerializeToString())

    # Groups: one group that CreateGroup makes and GetGroupInfo describes.
    group_requests: list[Any]

    def GenerateMessageID(self, uuid: bytes) -> bytes:
        return b"3EB0CREATEKEY"

    def _group_info(self, request: Any) -> Any:
        members = [
            filled(
                ev.GroupParticipant,
                JID=jid(NUMBER),
                LID=jid(""),
                PhoneNumber=jid(""),
                IsAdmin=True,
                IsSuperAdmin=True,
            ),
            *(
                filled(
                    ev.GroupParticipant,
                    JID=jid("123", "lid"),
                    LID=jid(""),
                    PhoneNumber=p,
                    IsAdmin=False,
                    IsSuperAdmin=False,
                )
                for p in request.Participants
            ),
        ]
        return filled(
            ev.GroupInfo,
            JID=jid("120363000000000077", "g.us"),
            OwnerJID=jid(NUMBER),
            OwnerPN=jid(NUMBER),
            GroupName=filled(ev.GroupName, Name=request.name, NameSetAt=1796300032, NameSetBy=jid(NUMBER)),
            GroupCreated=1796300032,
            Participants=members,
        )

    def CreateGroup(self, uuid: bytes, request: bytes, size: int) -> bytes:
        req = ev.ReqCreateGroup.FromString(request[:size])
        self.group_requests.append(req)
        return bytes(ev.GetGroupInfoReturnFunction(GroupInfo=self._group_info(req)).SerializeToString())

    def GetGroupInfo(self, uuid: bytes, group: bytes, size: int) -> bytes:
        assert ev.JID.FromString(group[:size]).User == "120363000000000077"
        info = self._group_info(self.group_requests[-1])
        return bytes(ev.GetGroupInfoReturnFunction(GroupInfo=info).SerializeToString())

    def GetGroupInviteLink(self, uuid: bytes, group: bytes, size: int, revoke: bool) -> bytes:
        link = "https://chat.whatsapp.com/AbCdEf123"
        return bytes(ev.GetGroupInviteLinkReturnFunction(InviteLink=link).SerializeToString())

    # Profiles: pictures by user (a missing one is "not set", one in ``hidden`` is hidden), what
    # people show of themselves, the address book, and the pictures set.
    pictures: dict[str, str]
    hidden: set[str]
    abouts: dict[str, str]
    book: list[tuple[str, str, str]]  # (user, full name, push name)
    set_pictures: list[tuple[str, bytes]]  # ("" for the own picture, else the group) and the bytes

    def GetProfilePicture(self, uuid: bytes, who: bytes, size: int, extra: bytes, extra_size: int) -> bytes:
        user = ev.JID.FromString(who[:size]).User
        if user in self.hidden:
            error = "the user has hidden their profile picture from you"
            return bytes(ev.GetProfilePictureReturnFunction(Error=error).SerializeToString())
        if user not in self.pictures:
            error = "that user has no profile picture"
            return bytes(ev.GetProfilePictureReturnFunction(Error=error).SerializeToString())
        picture = ev.ProfilePictureInfo(URL=self.pictures[user], ID="1", Type="image")
        return bytes(ev.GetProfilePictureReturnFunction(Picture=picture).SerializeToString())

    def GetUserInfo(self, uuid: bytes, jids: bytes, size: int) -> bytes:
        asked = ev.JIDArray.FromString(jids[:size]).JIDS
        found = [
            ev.GetUserInfoSingleReturnFunction(
                JID=j, UserInfo=filled(ev.UserInfo, Status=self.abouts[j.User], PictureID="1")
            )
            for j in asked
            if j.User in self.abouts
        ]
        return bytes(ev.GetUserInfoReturnFunction(UsersInfo=found).SerializeToString())

    def _contact(self, user: str) -> Any:
        full, push = next(((f, p) for u, f, p in self.book if u == user), ("", ""))
        return filled(ev.ContactInfo, Found=bool(full or push), FullName=full, PushName=push)

    def GetContact(self, uuid: bytes, who: bytes, size: int) -> bytes:
        info = self._contact(ev.JID.FromString(who[:size]).User)
        return bytes(ev.ContactsGetContactReturnFunction(ContactInfo=info).SerializeToString())

    def GetAllContacts(self, uuid: bytes) -> bytes:
        every = [ev.Contact(JID=jid(u), Info=self._contact(u)) for u, _, _ in self.book]
        return bytes(ev.ContactsGetAllContactsReturnFunction(Contact=every).SerializeToString())

    def SetProfilePhoto(self, uuid: bytes, data: bytes, size: int) -> bytes:
        self.set_pictures.append(("", bytes(data[:size])))
        self.pictures[NUMBER] = "https://pps.whatsapp.net/v/own.jpg"
        return bytes(filled(ev.SetGroupPhotoReturnFunction, PictureID="2").SerializeToString())

    def SetGroupPhoto(self, uuid: bytes, group: bytes, size: int, data: bytes, data_size: int) -> bytes:
        user = ev.JID.FromString(group[:size]).User
        self.set_pictures.append((user, bytes(data[:data_size])))
        self.pictures[user] = f"https://pps.whatsapp.net/v/{user}.jpg"
        return bytes(filled(ev.SetGroupPhotoReturnFunction, PictureID="3").SerializeToString())

    def MarkRead(self, *args: Any) -> bytes:
        self.calls.append("MarkRead")
        return b""

    def Logout(self, uuid: bytes) -> bytes:
        self.calls.append("Logout")
        return b""

    def Stop(self, uuid: bytes) -> None:
        self.calls.append("Stop")


def dispatch(client: NewClient, event: Proto) -> None:
    """Hand ``event`` to neonize's dispatcher as the Go side does: a pointer, a size, a code."""
    data = event.SerializeToString()
    buffer = ctypes.create_string_buffer(data, len(data))
    client.event.execute(0, ctypes.addressof(buffer), len(data), EVENT_TO_INT[type(event)])


class NeonizeGateway:
    """The real Gateway (neonize clients with recorder cores) on a thread and loop of its own."""

    def __init__(self, directory: Path) -> None:
        self.socket = directory / "gw.sock"
        self.secret_file = directory / "gw.secret"
        self.store = directory / "stores"
        self.store.mkdir()
        self.cores: dict[str, GoRecorder] = {}
        self.clients: dict[str, NewClient] = {}
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.gateway: Gateway | None = None

    def make_client(self, name: str, store: Path | str) -> NewClient:
        client = NewClient(str(store), uuid=name)
        client._stop_finalizer.detach()  # never reach the real Go core, even when collected
        core = self.cores[name] = GoRecorder()
        client._NewClient__client = core  # type: ignore[attr-defined]
        client.contact._ContactStore__client = core  # type: ignore[attr-defined]
        self.clients[name] = client
        return client

    def run(self, coro: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)

    def start(self) -> NeonizeGateway:
        self.thread.start()

        async def up() -> None:
            self.gateway = Gateway(self.store, self.make_client)
            await self.gateway.listen(self.socket, protocol.load_secret(self.secret_file)).start()

        self.run(up())
        return self

    def stop(self) -> None:
        assert self.gateway is not None and self.gateway.listener is not None
        self.run(self.gateway.listener.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

    def session(self, name: str) -> NewClient:
        """The neonize client of a session (made as the gateway makes it, without connecting)."""
        assert self.gateway is not None

        async def get() -> None:
            assert self.gateway is not None
            self.gateway.session(name)

        self.run(get())
        return self.clients[name]

    def settled(self) -> None:
        """Every event dispatched so far has been committed by the server."""
        assert self.gateway is not None and self.gateway.listener is not None
        listener = self.gateway.listener
        self.run(asyncio.sleep(0))  # the events handed to the loop so far are queued now
        wait_until(lambda: not listener.unacked)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[NeonizeGateway]:
    gw = NeonizeGateway(tmp_path).start()
    yield gw
    gw.stop()


def test_neonize_events_translate_to_protocol_events() -> None:
    quoted = WaMessage(
        extendedTextMessage=ExtendedTextMessage(text="Yes", contextInfo=ContextInfo(stanzaID="3EB0Q"))
    )
    kind, data = translate(incoming("A5F01", quoted, at_s=1796300032)) or ("", {})
    assert kind == "message"
    assert data == {
        "id": "A5F01",
        "chat": f"{CUSTOMER}@s.whatsapp.net",
        "sender": f"{CUSTOMER}@s.whatsapp.net",
        "sender_name": "Ann",
        "from_me": False,
        "timestamp_ms": 1796300032000,
        "kind": "text",
        "text": "Yes",
        "quoted_id": "3EB0Q",
    }
    # A message addressed by a hidden id (LID): the phone number comes from the alternative JID.
    lid = jid("123456789", "lid")
    hidden = filled(
        ev.Message,
        Info=filled(ev.MessageInfo, MessageSource=source(lid, lid, sender_alt=jid(CUSTOMER)), ID="A5F02"),
        Message=WaMessage(conversation="hi"),
    )
    assert (translate(hidden) or ("", {}))[1]["chat"] == f"{CUSTOMER}@s.whatsapp.net"
    photo = filled(ev.Message, Info=filled(ev.MessageInfo, ID="A5F03"), Message=WaMessage(imageMessage={}))
    assert (translate(photo) or ("", {}))[1]["kind"] == "file"
    # A kind not mapped is named by the library's field, for the server's log.
    live = filled(
        ev.Message, Info=filled(ev.MessageInfo, ID="A5F04"), Message=WaMessage(liveLocationMessage={})
    )
    assert (translate(live) or ("", {}))[1]["kind"] == "liveLocationMessage"

    receipt = filled(
        ev.Receipt,
        MessageSource=source(jid(CUSTOMER), jid(CUSTOMER)),
        MessageIDs=["3EB0A", "3EB0B"],
        Timestamp=1796300001,
        Type=ev.Receipt.READ,
    )
    assert translate(receipt) == (
        "receipt",
        {
            "ids": ["3EB0A", "3EB0B"],
            "chat": f"{CUSTOMER}@s.whatsapp.net",
            "type": "read",
            "timestamp_ms": 1796300001000,
        },
    )
    assert translate(filled(ev.Receipt, Type=ev.Receipt.READ_SELF)) is None
    assert (translate(filled(ev.Receipt, Type=ev.Receipt.SERVER_ERROR)) or ("", {}))[1]["type"] == "failed"
    assert translate(filled(ev.PairStatus, ID=jid(NUMBER, device=7), Status=ev.PairStatus.SUCCESS)) == (
        "paired",
        {"jid": f"{NUMBER}@s.whatsapp.net", "push_name": ""},
    )
    assert translate(filled(ev.PairStatus, Status=ev.PairStatus.ERROR)) is None
    assert translate(filled(ev.LoggedOut, Reason=ev.ConnectFailureReason.Value("LOGGED_OUT"))) == (
        "logged_out",
        {"reason": "LOGGED_OUT"},
    )
    assert translate(filled(ev.StreamReplaced)) == ("stream_replaced", {})
    assert translate(filled(ev.ClientOutdated)) == ("client_outdated", {})
    ban = filled(ev.TemporaryBan, Code=ev.TemporaryBan.SENT_TOO_MANY_SAME_MESSAGE, Expire=3600)
    assert translate(ban) == (
        "temporary_ban",
        {"code": int(ev.TemporaryBan.SENT_TOO_MANY_SAME_MESSAGE), "expires_s": 3600},
    )


def test_the_real_dispatcher_and_recorder_core_behind_a_real_server(
    world: NeonizeGateway, make_server: Any, tmp_path: Path
) -> None:
    srv: Server = make_server(
        env={
            "VERDIGRIS_WHATSAPP_WEB_ENABLED": "true",
            "VERDIGRIS_WHATSAPP_WEB_GATEWAY": "false",
            "VERDIGRIS_WHATSAPP_WEB_SOCKET": str(world.socket),
            "VERDIGRIS_WHATSAPP_WEB_SECRET_FILE": str(world.secret_file),
        },
        data_dir=tmp_path / "srv",
    )
    inst = srv.new_instance("--channel", "whatsapp_web")
    api = srv.api(inst)
    assert api.account.setSettings({"stateWebhook": "yes"}).code == 200
    drain(api)
    session = str(inst["idInstance"])
    client = world.session(session)

    # The phone scans the QR code: whatsmeow reports PairSuccess, then Connected.
    dispatch(client, filled(ev.PairStatus, ID=jid(NUMBER, device=12), Status=ev.PairStatus.SUCCESS))
    dispatch(client, filled(ev.Connected, status=True))
    world.settled()
    assert [b["stateInstance"] for b in drain(api)] == ["starting", "authorized"]
    assert api.account.getSettings().data["wid"] == f"{NUMBER}@c.us"

    # sendMessage → exactly one WhatsApp message: plain conversation text, no mention made of "@digits".
    text = f"Hello @{CUSTOMER}, your order is ready"
    sent = api.sending.sendMessage(f"{CUSTOMER}@c.us", text)
    assert sent.code == 200
    core = world.cores[session]
    wait_until(lambda: len(core.sent) == 1)
    to, message = core.sent[0]
    assert (to.User, to.Server) == (CUSTOMER, "s.whatsapp.net")
    assert message == WaMessage(conversation=text)
    bodies = drain(api)
    assert [(b["typeWebhook"], b.get("status")) for b in bodies] == [
        ("outgoingAPIMessageReceived", None),
        ("outgoingMessageStatus", "sent"),
    ]
    wa_id = "3EB0REC00000001"

    # WhatsApp's receipts (through neonize's dispatcher) → delivered, read.
    for kind in (ev.Receipt.DELIVERED, ev.Receipt.READ):
        dispatch(
            client,
            filled(
                ev.Receipt,
                MessageSource=source(jid(CUSTOMER), jid(CUSTOMER), from_me=True),
                MessageIDs=[wa_id],
                Timestamp=int(time.time()),
                Type=kind,
            ),
        )
    world.settled()
    statuses = drain(api)
    assert [(b["idMessage"], b["status"]) for b in statuses] == [
        (sent.data["idMessage"], "delivered"),
        (sent.data["idMessage"], "read"),
    ]

    # The customer replies quoting it → incomingMessageReceived, a quotedMessage of our idMessage.
    reply = WaMessage(
        extendedTextMessage=ExtendedTextMessage(
            text="Thanks!", contextInfo=ContextInfo(stanzaID=wa_id, participant=f"{NUMBER}@s.whatsapp.net")
        )
    )
    dispatch(client, incoming("A5F0REPLY1", reply, name="Ann"))
    got = wait_for(api, lambda b: b["typeWebhook"] == "incomingMessageReceived")
    check_contract(got)
    assert got["idMessage"] == "A5F0REPLY1"
    assert got["senderData"]["sender"] == f"{CUSTOMER}@c.us" and got["senderData"]["senderName"] == "Ann"
    assert got["messageData"]["typeMessage"] == "quotedMessage"
    assert got["messageData"]["extendedTextMessageData"]["text"] == "Thanks!"
    assert got["messageData"]["quotedMessage"]["stanzaId"] == sent.data["idMessage"]
    dispatch(client, incoming("A5F0PLAIN1", WaMessage(conversation="One more thing")))
    plain = wait_for(api, lambda b: b["typeWebhook"] == "incomingMessageReceived")
    check_contract(plain)
    assert plain["messageData"]["textMessageData"]["textMessage"] == "One more thing"

    # Answering with a quote → an extendedTextMessage whose context names WhatsApp's id and sender.
    api.sending.sendMessage(f"{CUSTOMER}@c.us", "You are welcome", quotedMessageId="A5F0REPLY1")
    wait_until(lambda: len(core.sent) == 2)
    _, quoted = core.sent[1]
    assert quoted == WaMessage(
        extendedTextMessage=ExtendedTextMessage(
            text="You are welcome",
            contextInfo=ContextInfo(
                stanzaID="A5F0REPLY1",
                participant=f"{CUSTOMER}@s.whatsapp.net",
                quotedMessage=WaMessage(conversation="Thanks!"),
            ),
        )
    )

    losing_the_link(world, client, api)


def losing_the_link(world: NeonizeGateway, client: NewClient, api: Any) -> None:
    """Another client takes the session over, then the phone removes the device."""
    dispatch(client, filled(ev.StreamReplaced))
    world.settled()
    assert api.account.getStateInstance().data == {"stateInstance": "notAuthorized"}
    dispatch(client, filled(ev.LoggedOut, Reason=ev.ConnectFailureReason.Value("LOGGED_OUT")))
    world.settled()
    assert api.account.getSettings().data["wid"] == ""
    for body in drain(api):
        check_contract(body)


def recorded_client(name: str, store: Path | str) -> NewClient:
    client = NewClient(str(store), uuid=name)
    client._stop_finalizer.detach()
    client._NewClient__client = GoRecorder()  # type: ignore[attr-defined]
    return client


def test_events_stored_by_a_gateway_that_dies_reach_the_server_from_the_next_one(tmp_path: Path) -> None:
    """The event is on disk before neonize's callback returns: a gateway killed before the server
    acknowledged it (here: before any server connected) hands it over after its restart, once."""

    async def scenario() -> None:
        secret = protocol.load_secret(tmp_path / "secret")
        first = Gateway(tmp_path, recorded_client)
        first.listen(tmp_path / "gw.sock", secret)  # never started: no server ever hears it
        client = first.session("7700000001").client
        dispatch(client, incoming("A5F0KEPT1", WaMessage(conversation="kept on disk")))
        await asyncio.sleep(0)
        # kill -9: nothing of the first gateway is closed or flushed; a second one starts.
        second = Gateway(tmp_path, recorded_client)
        listener = second.listen(tmp_path / "gw.sock", secret)
        await listener.start()
        received: list[Event] = []

        async def on_event(event: Event) -> None:
            received.append(event)

        link = GatewayLink(tmp_path / "gw.sock", lambda: secret, on_event)
        link.start()
        wait = asyncio.get_running_loop().run_in_executor(None, wait_until, lambda: not listener.unacked)
        await asyncio.wait_for(wait, 30)
        assert [(e.session, e.kind, e.data["id"], e.data["text"]) for e in received] == [
            ("7700000001", "message", "A5F0KEPT1", "kept on disk")
        ]
        assert second.outbox.pending() == []  # acknowledged: forgotten
        await link.close()
        await listener.close()
        await second.close()

    asyncio.run(scenario())


def test_locations_contacts_and_reactions_as_whatsapp_protobufs() -> None:
    """Both ways through the gateway's mapping: the protocol's bodies become the exact WhatsApp
    messages neonize would send, and WhatsApp's messages become the protocol's events."""
    place = outgoing_message(
        {"kind": "location", "latitude": 55.75, "longitude": 37.61, "name": "Shop", "address": "A"}
    )
    assert place == WaMessage(
        locationMessage=LocationMessage(
            degreesLatitude=55.75, degreesLongitude=37.61, name="Shop", address="A"
        )
    )
    card = outgoing_message(
        {"kind": "contacts", "contacts": [{"display_name": "Ann", "vcard": "BEGIN:VCARD"}]}
    )
    assert card == WaMessage(contactMessage=ContactMessage(displayName="Ann", vcard="BEGIN:VCARD"))
    two = outgoing_message(
        {"kind": "contacts", "contacts": [{"display_name": n, "vcard": "V"} for n in ("A", "B")]}
    )
    assert [c.displayName for c in two.contactsArrayMessage.contacts] == ["A", "B"]
    liked = outgoing_message(
        {
            "kind": "reaction",
            "emoji": "👍",
            "at_ms": 1796300032000,
            "target": {"id": "A5F01", "chat": f"{CUSTOMER}@s.whatsapp.net", "from_me": False},
        }
    )
    assert liked == WaMessage(
        reactionMessage=ReactionMessage(
            key=MessageKey(remoteJID=f"{CUSTOMER}@s.whatsapp.net", fromMe=False, ID="A5F01"),
            text="👍",
            senderTimestampMS=1796300032000,
        )
    )
    with pytest.raises(protocol.GatewayError):
        outgoing_message({"kind": "sticker"})

    def received(message: WaMessage) -> dict[str, Any]:
        _, data = translate(incoming("A5F0X", message)) or ("", {})
        return {
            k: v
            for k, v in data.items()
            if k not in ("id", "chat", "sender", "sender_name", "from_me", "timestamp_ms")
        }

    assert received(place) == {
        "kind": "location",
        "latitude": 55.75,
        "longitude": 37.61,
        "name": "Shop",
        "address": "A",
    }
    assert received(card) == {
        "kind": "contacts",
        "contacts": [{"display_name": "Ann", "vcard": "BEGIN:VCARD"}],
    }
    assert received(liked) == {"kind": "reaction", "emoji": "👍", "target_id": "A5F01"}


def linked_server(
    world: NeonizeGateway, make_server: Any, tmp_path: Path, **env: str
) -> tuple[Server, Any, Any]:
    """A real server on the world's gateway, with one instance linked through neonize's dispatcher."""
    srv: Server = make_server(
        env={
            "VERDIGRIS_WHATSAPP_WEB_ENABLED": "true",
            "VERDIGRIS_WHATSAPP_WEB_GATEWAY": "false",
            "VERDIGRIS_WHATSAPP_WEB_SOCKET": str(world.socket),
            "VERDIGRIS_WHATSAPP_WEB_SECRET_FILE": str(world.secret_file),
            **env,
        },
        data_dir=tmp_path / "srv",
    )
    inst = srv.new_instance("--channel", "whatsapp_web")
    api = srv.api(inst)
    settings = {
        "stateWebhook": "yes",
        "incomingCallWebhook": "yes",
        "pollMessageWebhook": "yes",
        "editedMessageWebhook": "yes",
        "deletedMessageWebhook": "yes",
    }
    assert api.account.setSettings(settings).code == 200
    client = world.session(str(inst["idInstance"]))
    dispatch(client, filled(ev.PairStatus, ID=jid(NUMBER, device=12), Status=ev.PairStatus.SUCCESS))
    dispatch(client, filled(ev.Connected, status=True))
    world.settled()
    drain(api)
    return srv, inst, client


def test_files_polls_edits_deletions_and_typing_become_whatsapp_protobufs(
    world: NeonizeGateway, make_server: Any, tmp_path: Path
) -> None:
    srv, inst, client = linked_server(world, make_server, tmp_path)
    api = srv.api(inst)
    core = world.cores[str(inst["idInstance"])]
    chat = f"{CUSTOMER}@c.us"

    # A file: its bytes are uploaded first (to the library, as bytes), then sent by reference.
    report = tmp_path / "report.pdf"
    report.write_bytes(b"%PDF-1.4 quarterly figures" * 100)
    sent = api.sending.sendFileByUpload(chat, str(report), "report.pdf", "Q3 figures")
    assert sent.code == 200, sent.data
    wait_until(lambda: len(core.sent) == 1)
    assert core.uploads == [(report.read_bytes(), 3)]  # MediaDocument
    to, message = core.sent[0]
    assert (to.User, to.Server) == (CUSTOMER, "s.whatsapp.net")
    assert message == WaMessage(
        documentMessage=DocumentMessage(
            URL="https://mmg.whatsapp.net/v/t62/fake-1",
            directPath="/v/t62/fake-1",
            mediaKey=b"k" * 32,
            fileEncSHA256=b"e" * 32,
            fileSHA256=hashlib.sha256(report.read_bytes()).digest(),
            fileLength=len(report.read_bytes()),
            mimetype="application/pdf",
            fileName="report.pdf",
            title="report.pdf",
            caption="Q3 figures",
        )
    )
    assert [b.get("status") for b in drain(api) if b["typeWebhook"] == "outgoingMessageStatus"] == ["sent"]

    # A poll, with the secret its votes are encrypted with.
    options = [{"optionName": "Monday"}, {"optionName": "Friday"}]
    poll = api.sending.sendPoll(chat, "Which day?", options, False)
    assert poll.code == 200
    wait_until(lambda: len(core.sent) == 2)
    _, created = core.sent[1]
    assert created.pollCreationMessage == PollCreationMessage(
        name="Which day?",
        options=[PollCreationMessage.Option(optionName=n) for n in ("Monday", "Friday")],
        selectableOptionsCount=1,
    )
    assert len(created.messageContextInfo.messageSecret) == 32

    # A text, edited, then deleted for everyone: both name WhatsApp's id of the original.
    text = api.sending.sendMessage(chat, "Open till 6")
    wait_until(lambda: len(core.sent) == 3)
    wa_text = "3EB0REC00000003"
    assert api.serviceMethods.editMessage(chat, text.data["idMessage"], "Open till 7").code == 200
    wait_until(lambda: len(core.sent) == 4)
    edit = core.sent[3][1].editedMessage.message.protocolMessage
    assert (edit.type, edit.key.ID, edit.key.fromMe, edit.key.remoteJID) == (
        ProtocolMessage.MESSAGE_EDIT,
        wa_text,
        True,
        f"{CUSTOMER}@s.whatsapp.net",
    )
    assert edit.editedMessage == WaMessage(conversation="Open till 7")
    wait_until(
        lambda: api.journals.getMessage(chat, text.data["idMessage"]).data.get("textMessage") == "Open till 7"
    )
    assert api.serviceMethods.deleteMessage(chat, text.data["idMessage"]).code == 200
    wait_until(lambda: len(core.sent) == 5)
    assert core.sent[4][1] == WaMessage(
        protocolMessage=ProtocolMessage(
            type=ProtocolMessage.REVOKE,
            key=MessageKey(remoteJID=f"{CUSTOMER}@s.whatsapp.net", fromMe=True, ID=wa_text),
        )
    )

    # Typing: a chat presence, composing (recording: audio), never a message.
    r = srv.wire(
        inst, "sendTyping", verb="POST", json={"chatId": chat, "typingTime": 2000, "typingType": "recording"}
    )
    assert r.status_code == 200, r.text
    wait_until(lambda: (CUSTOMER, 0, 1) in core.presences)
    assert len(core.sent) == 5
    for body in drain(api):
        check_contract(body)

    # WhatsApp's receipts of the file → delivered.
    dispatch(
        client,
        filled(
            ev.Receipt,
            MessageSource=source(jid(CUSTOMER), jid(CUSTOMER), from_me=True),
            MessageIDs=["3EB0REC00000001"],
            Timestamp=int(time.time()),
            Type=ev.Receipt.DELIVERED,
        ),
    )
    status = wait_for(api, lambda b: b["typeWebhook"] == "outgoingMessageStatus")
    assert (status["idMessage"], status["status"]) == (sent.data["idMessage"], "delivered")

    # The customer votes: neonize decrypts the vote to option hashes; the server names the option.
    core.votes["3EB0REC00000002"] = [hashlib.sha256(b"Friday").digest()]
    vote = WaMessage(
        pollUpdateMessage=PollUpdateMessage(
            pollCreationMessageKey=MessageKey(
                remoteJID=f"{CUSTOMER}@s.whatsapp.net", fromMe=True, ID="3EB0REC00000002"
            )
        )
    )
    dispatch(client, incoming("A5F0VOTE1", vote))
    got = wait_for(api, lambda b: b["typeWebhook"] == "incomingMessageReceived")
    assert got["messageData"]["typeMessage"] == "pollUpdateMessage"
    data = got["messageData"]["pollMessageData"]
    assert data["stanzaId"] == poll.data["idMessage"]
    assert data["votes"] == [
        {"optionName": "Monday", "optionVoters": []},
        {"optionName": "Friday", "optionVoters": [chat]},
    ]


def test_received_files_polls_edits_deletions_and_calls(
    world: NeonizeGateway, make_server: Any, tmp_path: Path
) -> None:
    srv, inst, client = linked_server(world, make_server, tmp_path)
    api = srv.api(inst)
    core = world.cores[str(inst["idInstance"])]
    chat = f"{CUSTOMER}@c.us"

    # A photo: the gateway downloads it through the library; the server keeps it in its media store.
    photo = b"\x89PNG\r\n\x1a\n" + b"pixels" * 50
    core.files["/v/t62/in-1"] = photo
    image = ImageMessage(
        URL="https://mmg.whatsapp.net/v/t62/in-1",
        directPath="/v/t62/in-1",
        mediaKey=b"m" * 32,
        fileEncSHA256=b"e" * 32,
        fileSHA256=hashlib.sha256(photo).digest(),
        fileLength=len(photo),
        mimetype="image/png",
        caption="the broken part",
    )
    dispatch(client, incoming("A5F0IMG1", WaMessage(imageMessage=image)))
    got = wait_for(api, lambda b: b["typeWebhook"] == "incomingMessageReceived")
    assert got["messageData"]["typeMessage"] == "imageMessage"
    file_data = got["messageData"]["fileMessageData"]
    assert file_data["caption"] == "the broken part" and file_data["mimeType"] == "image/png"
    assert httpx.get(file_data["downloadUrl"], timeout=30, verify=srv.verify).content == photo

    # A poll from the customer.
    created = WaMessage(
        pollCreationMessage=PollCreationMessage(
            name="Delivery?",
            options=[PollCreationMessage.Option(optionName=n) for n in ("Yes", "No")],
            selectableOptionsCount=0,
        )
    )
    dispatch(client, incoming("A5F0POLL1", created))
    got = wait_for(api, lambda b: b["typeWebhook"] == "incomingMessageReceived")
    assert got["messageData"]["typeMessage"] == "pollMessage"
    assert got["messageData"]["pollMessageData"] == {
        "name": "Delivery?",
        "options": [{"optionName": "Yes"}, {"optionName": "No"}],
        "multipleAnswers": True,
    }

    # The customer edits, then deletes, a text: notifications name this server's id of it.
    dispatch(client, incoming("A5F0TXT1", WaMessage(conversation="see you at 5")))
    wait_for(api, lambda b: b.get("idMessage") == "A5F0TXT1")
    edit = WaMessage(
        editedMessage=FutureProofMessage(
            message=WaMessage(
                protocolMessage=ProtocolMessage(
                    type=ProtocolMessage.MESSAGE_EDIT,
                    key=MessageKey(remoteJID=f"{NUMBER}@s.whatsapp.net", fromMe=True, ID="A5F0TXT1"),
                    editedMessage=WaMessage(conversation="see you at 6"),
                )
            )
        )
    )
    dispatch(client, incoming("A5F0EDIT1", edit))
    got = wait_for(api, lambda b: b["typeWebhook"] == "incomingMessageReceived")
    assert got["messageData"]["typeMessage"] == "editedMessage"
    assert got["messageData"]["editedMessageData"] == {"stanzaId": "A5F0TXT1", "textMessage": "see you at 6"}
    assert api.journals.getMessage(chat, "A5F0TXT1").data["textMessage"] == "see you at 6"
    revoke = WaMessage(
        protocolMessage=ProtocolMessage(
            type=ProtocolMessage.REVOKE,
            key=MessageKey(remoteJID=f"{NUMBER}@s.whatsapp.net", fromMe=True, ID="A5F0TXT1"),
        )
    )
    dispatch(client, incoming("A5F0DEL1", revoke))
    got = wait_for(api, lambda b: b["typeWebhook"] == "incomingMessageReceived")
    assert got["messageData"]["typeMessage"] == "deletedMessage"
    assert got["messageData"]["deletedMessageData"] == {"stanzaId": "A5F0TXT1"}

    # A call: announced as an incoming call (offer).
    meta = filled(ev.BasicCallMeta, callCreator=jid(CUSTOMER), callID="CALL0001", timestamp=int(time.time()))
    dispatch(client, filled(ev.CallOffer, basicCallMeta=meta))
    call = wait_for(api, lambda b: b["typeWebhook"] == "incomingCall")
    assert (call["idMessage"], call["from"], call["status"]) == ("CALL0001", chat, "offer")


def test_check_whatsapp_asks_the_session_and_is_capped_per_hour(
    world: NeonizeGateway, make_server: Any, tmp_path: Path
) -> None:
    srv, inst, _ = linked_server(world, make_server, tmp_path, VERDIGRIS_WHATSAPP_WEB_CHECKS_PER_HOUR="2")
    core = world.cores[str(inst["idInstance"])]
    core.on_whatsapp.add(CUSTOMER)
    r = srv.wire(inst, "checkWhatsapp", verb="POST", json={"phoneNumber": int(CUSTOMER)})
    assert (r.status_code, r.json()) == (200, {"existsWhatsapp": True})
    r = srv.wire(inst, "checkWhatsapp", verb="POST", json={"phoneNumber": 79995559999})
    assert (r.status_code, r.json()) == (200, {"existsWhatsapp": False})
    r = srv.wire(inst, "checkWhatsapp", verb="POST", json={"phoneNumber": 79995559998})
    assert r.status_code == 429 and "checkWhatsapp is limited to 2 number lookups an hour" in r.text
    assert 0 < int(r.headers["Retry-After"]) <= 3601  # when the oldest check of the hour expires


def test_a_gateway_runs_at_most_its_sessions_and_spaces_their_resumes(tmp_path: Path) -> None:
    async def scenario() -> None:
        gateway = Gateway(tmp_path, recorded_client, max_sessions=2, open_spacing=3600)
        started: list[str] = []
        for name in ("7700000001", "7700000002"):
            session = gateway.session(name)
            session.start = partial(started.append, name)  # type: ignore[method-assign]
            assert await gateway.handle("open", {"session": name}) == {}
        # The first resumes at once, the second waits for its slot (an hour here).
        assert started == ["7700000001"]
        with pytest.raises(protocol.GatewayError) as full:
            await gateway.handle("open", {"session": "7700000003"})
        assert full.value.code == protocol.FULL and "maximum of 2 sessions" in full.value.message
        stats = await gateway.handle("stats", {})
        assert (stats["sessions"], stats["connected"], stats["max_sessions"]) == (2, 0, 2)
        assert stats["rss_bytes"] > 0 and stats["threads"] >= 1
        await gateway.close()

    asyncio.run(scenario())


def test_the_gateway_figures_reach_metrics(world: NeonizeGateway, make_server: Any, tmp_path: Path) -> None:
    srv, inst, _ = linked_server(world, make_server, tmp_path)

    def figures() -> dict[str, float]:
        body = httpx.get(f"{srv.url}/metrics", timeout=30, verify=srv.verify).text
        return {
            line.split()[0]: float(line.split()[1])
            for line in body.splitlines()
            if line.startswith("verdigris_wa_gateway_")
        }

    wait_until(lambda: figures().get("verdigris_wa_gateway_connected") == 1.0)
    seen = figures()
    assert seen["verdigris_wa_gateway_sessions"] == 1.0 and seen["verdigris_wa_gateway_up"] == 1.0
    assert (
        seen["verdigris_wa_gateway_rss_bytes"] > 10 * 1024 * 1024
        and seen["verdigris_wa_gateway_threads"] >= 1
    )


def test_groups_become_whatsmeow_requests_and_back(
    world: NeonizeGateway, make_server: Any, tmp_path: Path
) -> None:
    srv, inst, _ = linked_server(world, make_server, tmp_path)
    api = srv.api(inst)
    core = world.cores[str(inst["idInstance"])]
    made = api.groups.createGroup("Suppliers", [f"{CUSTOMER}@c.us"]).data
    assert made == {
        "created": True,
        "chatId": "120363000000000077@g.us",
        "groupInviteLink": "https://chat.whatsapp.com/AbCdEf123",
    }
    request = core.group_requests[0]
    assert request.name == "Suppliers" and request.CreateKey == "3EB0CREATEKEY"
    assert [(p.User, p.Server) for p in request.Participants] == [(CUSTOMER, "s.whatsapp.net")]
    data = api.groups.getGroupData("120363000000000077@g.us").data
    assert data["subject"] == "Suppliers" and data["owner"] == f"{NUMBER}@c.us"
    assert data["creation"] == 1796300032 and data["subjectOwner"] == f"{NUMBER}@c.us"
    # A member known to WhatsApp by a hidden id (LID) is shown by its phone number.
    assert [(p["id"], p["isSuperAdmin"]) for p in data["participants"]] == [
        (f"{NUMBER}@c.us", True),
        (f"{CUSTOMER}@c.us", False),
    ]


def test_avatars_profiles_and_pictures_become_whatsmeow_calls(
    world: NeonizeGateway, make_server: Any, tmp_path: Path
) -> None:
    srv, inst, _ = linked_server(world, make_server, tmp_path, VERDIGRIS_WHATSAPP_WEB_CHECKS_PER_HOUR="1")
    api = srv.api(inst)
    core = world.cores[str(inst["idInstance"])]
    core.pictures[CUSTOMER] = "https://pps.whatsapp.net/v/ann.jpg"
    core.hidden.add("79995550002")
    core.abouts[CUSTOMER] = "Florist"
    core.book.append((CUSTOMER, "Ann Florist", "Ann"))

    for _ in range(2):  # avatars are no number lookups: over the cap of 1 an hour
        got = api.serviceMethods.getAvatar(f"{CUSTOMER}@c.us").data
        assert (got["urlAvatar"], got["available"]) == ("https://pps.whatsapp.net/v/ann.jpg", True)
    got = api.serviceMethods.getAvatar("79995550002@c.us").data
    assert (got["urlAvatar"], got["available"]) == ("", False)
    got = api.serviceMethods.getAvatar("79995550003@c.us").data
    assert (got["urlAvatar"], got["available"]) == ("", True)  # none set

    info = api.serviceMethods.getContactInfo(f"{CUSTOMER}@c.us").data
    assert (info["name"], info["description"], info["avatar"]) == (
        "Ann",
        "Florist",
        "https://pps.whatsapp.net/v/ann.jpg",
    )
    assert (
        srv.wire(inst, "getContactInfo", verb="POST", json={"chatId": "79995550003@c.us"}).status_code == 429
    )
    contacts = api.serviceMethods.getContacts().data
    assert {"id": f"{CUSTOMER}@c.us", "name": "Ann Florist", "contactName": "", "type": "user"} in contacts

    picture = tmp_path / "me.jpg"
    picture.write_bytes(b"\xff\xd8\xff" + b"jpeg" * 30)
    own = api.account.setProfilePicture(str(picture)).data
    assert own["urlAvatar"] == "https://pps.whatsapp.net/v/own.jpg"
    group = api.groups.createGroup("Shop", [f"{CUSTOMER}@c.us"]).data["chatId"]
    assert api.groups.setGroupPicture(group, str(picture)).data["setGroupPicture"] is True
    assert core.set_pictures == [("", picture.read_bytes()), (group.split("@")[0], picture.read_bytes())]
    assert api.serviceMethods.getAvatar(group).data["urlAvatar"].endswith(f"/{group.split('@')[0]}.jpg")


def test_history_sync_through_the_real_dispatcher_fills_the_journal(
    world: NeonizeGateway, make_server: Any, tmp_path: Path
) -> None:
    """A history sync chunk as whatsmeow hands it over: per chat the newest messages within the
    limits go into the journal, nothing is announced, other chats (statuses) are left out."""
    assert world.gateway is not None
    world.gateway.history = (7, 2)  # days, messages per chat
    srv, inst, client = linked_server(world, make_server, tmp_path)
    api = srv.api(inst)
    now = int(time.time())

    def past(
        wa_id: str, ago_s: int, message: WaMessage, *, from_me: bool = False, chat: str = CUSTOMER
    ) -> Any:
        key = MessageKey(remoteJID=f"{chat}@s.whatsapp.net", fromMe=from_me, ID=wa_id)
        info = filled(WebMessageInfo, key=key, message=message, messageTimestamp=now - ago_s, pushName="Ann")
        return HistorySyncMsg(message=info)

    def text(body: str) -> WaMessage:
        return WaMessage(conversation=body)

    chunk = filled(
        HistorySync,
        syncType=HistorySync.INITIAL_BOOTSTRAP,
        conversations=[
            filled(
                Conversation,
                ID=f"{CUSTOMER}@s.whatsapp.net",
                messages=[
                    past("H1", 9 * 86_400, text("too old")),
                    past("H2", 7200, text("first, over the 2 kept")),
                    past("H3", 3600, text("do you deliver?")),
                    past("H4", 1800, text("we do"), from_me=True),
                ],
            ),
            filled(  # two messages of 2.5 MiB: over one history event's 4 MiB, sent in two
                Conversation,
                ID="79995550009@s.whatsapp.net",
                messages=[
                    past("H6", 600, text("6" * 2_500_000), chat="79995550009"),
                    past("H7", 500, text("7" * 2_500_000), chat="79995550009"),
                ],
            ),
            filled(
                Conversation,
                ID="status@broadcast",
                messages=[past("H5", 60, text("a status"), chat="status")],
            ),
        ],
    )
    emitted: list[int] = []
    emit = world.gateway.emit_threadsafe

    def counting(session: str, kind: str, data: dict[str, Any]) -> None:
        emitted.append(len(data["messages"]))
        emit(session, kind, data)

    world.gateway.emit_threadsafe = counting  # type: ignore[method-assign]
    dispatch(client, filled(ev.HistorySync, Data=chunk))
    world.settled()
    assert emitted == [3, 1]  # H3, H4, H6 (~2.5 MiB), then H7: no history event over 4 MiB
    assert drain(api, timeout=1) == []
    history = api.journals.getChatHistory(f"{CUSTOMER}@c.us", 10).data
    assert sorted((m["idMessage"], m["type"], m["textMessage"]) for m in history) == [
        ("H3", "incoming", "do you deliver?"),
        ("H4", "outgoing", "we do"),
    ]
    assert api.journals.lastIncomingMessages(120).data[0]["senderName"] == "Ann"
    big = api.journals.getChatHistory("79995550009@c.us", 10).data
    assert sorted((m["idMessage"], len(m["textMessage"])) for m in big) == [
        ("H6", 2_500_000),
        ("H7", 2_500_000),
    ]


def test_group_invites_are_announced_and_group_changes_are_not(
    world: NeonizeGateway, make_server: Any, tmp_path: Path
) -> None:
    """An invitation to a group is GREEN-API's groupInviteMessage; members joining, leaving,
    promoted or demoted and a new subject have no GREEN-API notification: acknowledged, not
    announced (getGroupData shows the group as WhatsApp has it)."""
    srv, inst, client = linked_server(world, make_server, tmp_path)
    api = srv.api(inst)
    invite = WaMessage(
        groupInviteMessage=GroupInviteMessage(
            groupJID="120363000000000088@g.us",
            inviteCode="InV1te",
            inviteExpiration=1796300032,
            groupName="Suppliers",
            caption="Join us",
            JPEGThumbnail=b"\xff\xd8",
        )
    )
    dispatch(client, incoming("A5F0INV", invite))
    got = wait_for(api, lambda b: b.get("idMessage") == "A5F0INV")
    check_contract(got)
    assert got["messageData"]["typeMessage"] == "groupInviteMessage"
    assert got["messageData"]["groupInviteMessageData"] == {
        "groupJid": "120363000000000088@g.us",
        "inviteCode": "InV1te",
        "groupName": "Suppliers",
        "caption": "Join us",
        "jpegThumbnail": "/9g=",
        "inviteExpiration": {"low": 1796300032, "high": 0, "unsigned": False},
    }

    group = jid("120363000000000077", "g.us")
    change = filled(
        ev.GroupInfoEvent,
        JID=group,
        Sender=jid(CUSTOMER),
        Timestamp=int(time.time()),
        Join=[jid("79995550007")],
        Promote=[jid(CUSTOMER)],
        Name=filled(ev.GroupName, Name="Suppliers 2", NameSetAt=1, NameSetBy=jid(CUSTOMER)),
    )
    assert translate(change) == (
        "group_change",
        {
            "group": "120363000000000077@g.us",
            "actor": f"{CUSTOMER}@s.whatsapp.net",
            "timestamp_ms": change.Timestamp * 1000,
            "joined": ["79995550007@s.whatsapp.net"],
            "left": [],
            "promoted": [f"{CUSTOMER}@s.whatsapp.net"],
            "demoted": [],
            "subject": "Suppliers 2",
        },
    )
    dispatch(client, change)
    info = filled(
        ev.GroupInfo,
        JID=group,
        OwnerJID=jid(CUSTOMER),
        GroupName=filled(ev.GroupName, Name="Suppliers", NameSetAt=1, NameSetBy=jid(CUSTOMER)),
        GroupCreated=1796300032,
    )
    joined = filled(ev.JoinedGroup, GroupInfo=info, Sender=jid(CUSTOMER))
    assert (translate(joined) or ("", {}))[1]["joined_self"] is True
    dispatch(client, joined)
    world.settled()  # both committed (acknowledged) by the server
    assert drain(api, timeout=1) == []
