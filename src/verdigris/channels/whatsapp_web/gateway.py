"""``verdigris wa-gateway``: the process that holds the WhatsApp Web sessions (decision 0010).

It runs neonize (Python over whatsmeow, the Go library inside its wheel) and speaks the gateway
protocol (protocol.py) to the server, which connects to its Unix socket. One neonize client per
session (an instance), each with a whatsmeow store of its own: ``{store_dir}/{session}.sqlite3``,
mode 0600 (the process runs with umask 077, so SQLite's journal files are private too). Neither
the keys in the stores nor QR texts or pairing codes are ever logged.

neonize calls back on threads of its own (the Go side): each callback turns the library's event
protobuf into a protocol event (:func:`translate`, no neonize type leaves this module) and hands
it to the event loop, which keeps it until the server acknowledges it.

Not yet here (docs/whatsapp-web.md): the database lease (one holder per session across gateway
processes), media, message kinds other than text, history sync, the number check.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

import orjson
import structlog
from google.protobuf.message import Message as Proto
from neonize.client import NewClient
from neonize.events import EVENT_TO_INT
from neonize.exc import SendMessageError
from neonize.proto import Neonize_pb2 as ev
from neonize.proto.waCommon.WACommon_pb2 import MessageKey
from neonize.proto.waE2E.WAWebProtobufsE2E_pb2 import (
    ContactMessage,
    ContactsArrayMessage,
    ContextInfo,
    ExtendedTextMessage,
    LocationMessage,
    ReactionMessage,
)
from neonize.proto.waE2E.WAWebProtobufsE2E_pb2 import Message as WaMessage
from neonize.utils.enum import ReceiptType
from neonize.utils.jid import build_jid

from verdigris.channels.whatsapp_web import protocol
from verdigris.channels.whatsapp_web.protocol import GatewayError, GatewayListener

log = structlog.get_logger("verdigris.wa_gateway")

QR_WAIT_SECONDS = 20.0
STOP_WAIT_SECONDS = 5.0
# Blocking library calls (send, logout, pairing) run on this many threads, shared by all sessions.
CALL_THREADS = 8

_RECEIPTS = {
    ev.Receipt.DELIVERED: "delivered",
    ev.Receipt.READ: "read",
    ev.Receipt.PLAYED: "played",
}


# --- from neonize's events to the protocol's ---------------------------------------------------


def jid_text(jid: ev.JID) -> str:
    """``user@server`` (the device part dropped)."""
    return f"{jid.User}@{jid.Server}" if jid.User else ""


def _phone_jid(primary: ev.JID, alternative: ev.JID) -> str:
    """Prefer the phone-number JID when WhatsApp addressed the message by a hidden id (LID)."""
    if primary.Server == "lid" and alternative.User:
        return jid_text(alternative)
    return jid_text(primary)


def _ms(timestamp: int) -> int:
    """neonize's timestamps are Unix seconds; milliseconds pass through."""
    return timestamp if timestamp > 10**12 else timestamp * 1000


def text_of(message: WaMessage) -> tuple[str, str] | None:
    """The text of a text message and the id of the message it quotes, or None for other kinds."""
    if message.HasField("conversation"):
        return message.conversation, ""
    if message.HasField("extendedTextMessage"):
        ext = message.extendedTextMessage
        return ext.text, ext.contextInfo.stanzaID if ext.HasField("contextInfo") else ""
    return None


def _card(card: ContactMessage) -> dict[str, str]:
    return {"display_name": card.displayName, "vcard": card.vcard}


def content_of(message: WaMessage) -> dict[str, Any]:
    """A message's kind and fields as the protocol carries them (``kind`` is the library's field
    name for kinds not mapped yet, so the server can say what it did not take)."""
    text = text_of(message)
    if text is not None:
        return {"kind": "text", "text": text[0]} | ({"quoted_id": text[1]} if text[1] else {})
    if message.HasField("locationMessage"):
        place = message.locationMessage
        return {
            "kind": "location",
            "latitude": place.degreesLatitude,
            "longitude": place.degreesLongitude,
            "name": place.name,
            "address": place.address,
        }
    if message.HasField("contactMessage"):
        return {"kind": "contacts", "contacts": [_card(message.contactMessage)]}
    if message.HasField("contactsArrayMessage"):
        return {"kind": "contacts", "contacts": [_card(c) for c in message.contactsArrayMessage.contacts]}
    if message.HasField("reactionMessage"):
        reaction = message.reactionMessage
        return {"kind": "reaction", "emoji": reaction.text, "target_id": reaction.key.ID}
    return {"kind": kind_of(message)}


def kind_of(message: WaMessage) -> str:
    fields = [field.name for field, _ in message.ListFields() if field.name != "messageContextInfo"]
    return fields[0] if fields else "empty"


def _message(event: ev.Message) -> tuple[str, dict[str, Any]]:
    info = event.Info
    source = info.MessageSource
    data: dict[str, Any] = {
        "id": info.ID,
        "chat": _phone_jid(source.Chat, source.RecipientAlt if source.IsFromMe else source.SenderAlt),
        "sender": _phone_jid(source.Sender, source.SenderAlt),
        "sender_name": info.Pushname,
        "from_me": source.IsFromMe,
        "timestamp_ms": _ms(info.Timestamp),
    }
    return "message", data | content_of(event.Message)


def _receipt(event: ev.Receipt) -> tuple[str, dict[str, Any]] | None:
    kind = _RECEIPTS.get(event.Type)
    if kind is None:
        return None  # receipts of our own reading, retries, server errors: nothing to report
    return "receipt", {
        "ids": list(event.MessageIDs),
        "chat": jid_text(event.MessageSource.Chat),
        "type": kind,
        "timestamp_ms": _ms(event.Timestamp),
    }


def _paired(event: ev.PairStatus) -> tuple[str, dict[str, Any]] | None:
    if event.Status != ev.PairStatus.SUCCESS:
        return None
    return "paired", {"jid": jid_text(event.ID), "push_name": event.BusinessName}


_SIMPLE: dict[type[Proto], Callable[[Any], tuple[str, dict[str, Any]] | None]] = {
    ev.Message: _message,
    ev.Receipt: _receipt,
    ev.PairStatus: _paired,
    ev.Connected: lambda e: ("connected", {}),
    ev.KeepAliveRestored: lambda e: ("connected", {}),
    ev.Disconnected: lambda e: ("disconnected", {}),
    ev.KeepAliveTimeout: lambda e: ("keepalive_timeout", {"errors": e.ErrorCount}),
    ev.LoggedOut: lambda e: ("logged_out", {"reason": ev.ConnectFailureReason.Name(e.Reason)}),
    ev.StreamReplaced: lambda e: ("stream_replaced", {}),
    ev.ClientOutdated: lambda e: ("client_outdated", {}),
    ev.TemporaryBan: lambda e: ("temporary_ban", {"code": int(e.Code), "expires_s": int(e.Expire)}),
}
# The neonize events a session subscribes to.
EVENTS = tuple(_SIMPLE)


def translate(event: Proto) -> tuple[str, dict[str, Any]] | None:
    """A neonize event as a protocol event (kind, data), or None when it means nothing to the server."""
    convert = _SIMPLE.get(type(event))
    return None if convert is None else convert(event)


def text_message(text: str, quoted: dict[str, Any] | None) -> WaMessage:
    """The WhatsApp message of a text, quoting ``quoted`` (id, sender JID, text) when given.
    Built here rather than by neonize's string shortcut, which turns every ``@digits`` into a
    mention (mentions only when the caller asks for them)."""
    if not quoted:
        return WaMessage(conversation=text)
    context = ContextInfo(
        stanzaID=str(quoted["id"]), quotedMessage=WaMessage(conversation=str(quoted.get("text", "")))
    )
    if quoted.get("sender"):
        context.participant = str(quoted["sender"])
    return WaMessage(extendedTextMessage=ExtendedTextMessage(text=text, contextInfo=context))


def outgoing_message(body: dict[str, Any]) -> WaMessage:
    """The WhatsApp message of a protocol ``send`` body (BAD_REQUEST for a kind not offered)."""
    kind = body.get("kind")
    if kind == "text":
        quoted = body.get("quoted") if isinstance(body.get("quoted"), dict) else None
        return text_message(str(body.get("text", "")), quoted)
    if kind == "location":
        return WaMessage(
            locationMessage=LocationMessage(
                degreesLatitude=float(body["latitude"]),
                degreesLongitude=float(body["longitude"]),
                name=str(body.get("name", "")),
                address=str(body.get("address", "")),
            )
        )
    if kind == "contacts":
        cards = [
            ContactMessage(displayName=str(c["display_name"]), vcard=str(c["vcard"]))
            for c in body["contacts"]
        ]
        if len(cards) == 1:
            return WaMessage(contactMessage=cards[0])
        return WaMessage(
            contactsArrayMessage=ContactsArrayMessage(displayName=f"{len(cards)} contacts", contacts=cards)
        )
    if kind == "reaction":
        target = body["target"]
        key = MessageKey(remoteJID=str(target["chat"]), fromMe=bool(target["from_me"]), ID=str(target["id"]))
        if target.get("participant"):
            key.participant = str(target["participant"])
        return WaMessage(
            reactionMessage=ReactionMessage(
                key=key, text=str(body.get("emoji", "")), senderTimestampMS=int(body["at_ms"])
            )
        )
    raise GatewayError(protocol.BAD_REQUEST, f"messages of kind {str(kind)[:40]!r} are not sent")


def to_jid(address: str) -> ev.JID:
    user, _, server = address.partition("@")
    if not user or server not in ("s.whatsapp.net", "g.us"):
        raise GatewayError(protocol.BAD_REQUEST, f"not a WhatsApp address: {address[:80]}")
    return build_jid(user, server)


# --- events kept on disk until the server has them ----------------------------------------------


class Outbox:
    """The events not yet acknowledged by the server, in a SQLite file of the gateway's own.

    An event is written (and synced) on the library's thread, before its callback returns, so a
    gateway killed before the server acknowledged it sends it again after its restart. Whether
    WhatsApp would deliver a message again had the gateway died even earlier, inside whatsmeow,
    is whatsmeow's business (its receipt follows the event handlers).
    """

    def __init__(self, path: Path) -> None:
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS outbox (seq INTEGER PRIMARY KEY AUTOINCREMENT,"
            " session TEXT NOT NULL, kind TEXT NOT NULL, data TEXT NOT NULL)"
        )

    def put(self, session: str, kind: str, data: dict[str, Any], then: Callable[[int], None]) -> int:
        """Store an event; ``then(seq)`` runs under the same lock, so events keep their order."""
        with self._lock:
            cursor = self._db.execute(
                "INSERT INTO outbox (session, kind, data) VALUES (?, ?, ?)",
                (session, kind, orjson.dumps(data).decode()),
            )
            seq = int(cursor.lastrowid or 0)
            then(seq)
        return seq

    def drop(self, seq: int) -> None:
        with self._lock:
            self._db.execute("DELETE FROM outbox WHERE seq = ?", (seq,))

    def pending(self) -> list[tuple[int, str, str, dict[str, Any]]]:
        with self._lock:
            rows = self._db.execute("SELECT seq, session, kind, data FROM outbox ORDER BY seq").fetchall()
        return [(int(seq), session, kind, orjson.loads(data)) for seq, session, kind, data in rows]

    def close(self) -> None:
        with self._lock:
            self._db.close()


# --- sessions -----------------------------------------------------------------------------------


class Session:
    """One linked device (or one being linked): a neonize client and the thread it runs on."""

    def __init__(self, gateway: Gateway, name: str, client: NewClient) -> None:
        self.gateway = gateway
        self.name = name
        self.client = client
        self.linked = False  # paired, or resumed from a store that holds a device
        self.connected = False
        self.qr_code = ""
        self.qr_seen = asyncio.Event()
        self.thread: threading.Thread | None = None
        for event_type in EVENTS:
            client.event(event_type)(self._on_event)
        client.event.qr(self._on_qr)

    def start(self) -> None:
        """Connect (on a thread of its own: neonize's connect blocks for the session's life)."""
        if self.thread is not None and self.thread.is_alive():
            return
        self.qr_seen.clear()
        self.thread = threading.Thread(target=self._run, name=f"wa-session-{self.name}", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.client.connect()
        except Exception as exc:  # the session ends; the next request starts it again
            log.warning("WhatsApp session ended", session=self.name, error=type(exc).__name__)
        if self.connected:
            # Not reconnecting by itself any more: the server shows it (starting); reboot restarts it.
            with contextlib.suppress(Exception):  # the gateway may be closing
                self.gateway.emit_threadsafe(self.name, "disconnected", {})
        self.connected = False

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self.client.stop()
        if self.thread is not None:
            self.thread.join(STOP_WAIT_SECONDS)  # a hung stop may take much longer: not waited for

    # Called on the library's threads.

    def _on_qr(self, _client: NewClient, code: bytes) -> None:
        self.qr_code = code.decode(errors="replace")
        self.gateway.loop.call_soon_threadsafe(self.qr_seen.set)

    def _on_event(self, _client: NewClient, event: Proto) -> None:
        translated = translate(event)
        if translated is None:
            return
        kind, data = translated
        if kind == "paired":
            self.linked = True
        elif kind == "connected":
            self.connected = self.linked = True
        elif kind in (
            "disconnected",
            "keepalive_timeout",
            "stream_replaced",
            "client_outdated",
            "temporary_ban",
        ):
            self.connected = False
        elif kind == "logged_out":
            self.connected = self.linked = False
        self.gateway.emit_threadsafe(self.name, kind, data)


ClientFactory = Callable[[str, Path], NewClient]


def neonize_client(name: str, store: Path) -> NewClient:
    """A neonize client whose whatsmeow store is ``store`` (created private if missing)."""
    if not store.exists():
        os.close(os.open(store, os.O_WRONLY | os.O_CREAT, 0o600))
    return NewClient(str(store), uuid=name)


class Gateway:
    """The sessions and the protocol's methods over them."""

    def __init__(
        self, store_dir: Path, make_client: ClientFactory = neonize_client, qr_wait: float = QR_WAIT_SECONDS
    ) -> None:
        self.store_dir = store_dir
        self.qr_wait = qr_wait
        self.make_client = make_client
        self.sessions: dict[str, Session] = {}
        self.outbox = Outbox(store_dir / "outbox.sqlite3")
        self.listener: GatewayListener | None = None
        self.loop = asyncio.get_running_loop()
        self.calls = ThreadPoolExecutor(CALL_THREADS, thread_name_prefix="wa-call")

    def store_of(self, name: str) -> Path:
        if not (name.isascii() and name.isdigit()):
            raise GatewayError(protocol.BAD_REQUEST, "a session is named by its instance id (digits)")
        return self.store_dir / f"{name}.sqlite3"

    def session(self, name: str) -> Session:
        found = self.sessions.get(name)
        if found is None:
            found = Session(self, name, self.make_client(name, self.store_of(name)))
            self.sessions[name] = found
        return found

    def listen(self, socket: Path, secret: bytes) -> GatewayListener:
        """The protocol's listener for this gateway, holding the events stored before a restart."""
        self.listener = GatewayListener(socket, secret, self.handle, on_ack=self.outbox.drop)
        for seq, session, kind, data in self.outbox.pending():
            self.listener.emit(session, kind, data, seq)
        return self.listener

    def emit_threadsafe(self, session: str, kind: str, data: dict[str, Any]) -> None:
        """Called on the library's threads: store the event, then hand it to the event loop."""
        listener = self.listener
        assert listener is not None
        self.outbox.put(
            session,
            kind,
            data,
            lambda seq: self._hand_over(listener, session, kind, data, seq),
        )

    def _hand_over(
        self, listener: GatewayListener, session: str, kind: str, data: dict[str, Any], seq: int
    ) -> None:
        self.loop.call_soon_threadsafe(partial(listener.emit, session, kind, data, seq))

    async def _blocking(self, fn: Callable[[], Any]) -> Any:
        return await self.loop.run_in_executor(self.calls, fn)

    async def handle(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        answer = getattr(self, f"_m_{method}", None)
        if answer is None:
            raise GatewayError(protocol.BAD_REQUEST, f"unknown method {method[:40]}")
        name = str(params.get("session", ""))
        result: dict[str, Any] = await answer(self.session(name), params)
        return result

    async def _m_open(self, s: Session, params: dict[str, Any]) -> dict[str, Any]:
        """Resume a linked session (the server knows it is linked)."""
        s.linked = True
        s.start()
        return {}

    async def _m_qr(self, s: Session, params: dict[str, Any]) -> dict[str, Any]:
        if s.linked:
            raise GatewayError(protocol.ALREADY_LINKED, "this session is linked already")
        self._fresh(s)
        s.start()  # again after whatsmeow's QR loop gave up
        await self._first_qr(s)
        return {"code": s.qr_code}

    async def _first_qr(self, s: Session) -> None:
        try:
            async with asyncio.timeout(self.qr_wait):
                await s.qr_seen.wait()
        except TimeoutError:
            raise GatewayError(protocol.NOT_CONNECTED, "WhatsApp did not offer a QR code in time") from None

    async def _m_pair_phone(self, s: Session, params: dict[str, Any]) -> dict[str, Any]:
        if s.linked:
            raise GatewayError(protocol.ALREADY_LINKED, "this session is linked already")
        phone = str(params.get("phone", ""))
        if not (phone.isascii() and phone.isdigit()):
            raise GatewayError(protocol.BAD_REQUEST, "the phone number is digits only")
        self._fresh(s)
        s.start()
        await self._first_qr(s)  # the pairing request needs the connection the QR loop opened
        try:
            code = await self._blocking(lambda: s.client.PairPhone(phone, True))
        except Exception as exc:
            raise GatewayError(
                protocol.REFUSED, f"WhatsApp refused the pairing request: {exc}"[:300]
            ) from None
        return {"code": str(code)}

    def _fresh(self, s: Session) -> None:
        """Linking starts from an empty store: what a stopped, unlinked session left is dropped
        (a device the server no longer knows would otherwise be resumed instead of linked)."""
        if s.thread is None or not s.thread.is_alive():
            self._delete_store(s.name)

    def _delete_store(self, name: str) -> None:
        for suffix in ("", "-wal", "-shm", "-journal"):
            with contextlib.suppress(FileNotFoundError):
                Path(f"{self.store_of(name)}{suffix}").unlink()

    async def _m_send(self, s: Session, params: dict[str, Any]) -> dict[str, Any]:
        if not s.linked:
            raise GatewayError(protocol.NOT_LINKED, "this session is not linked")
        if not s.connected:
            raise GatewayError(protocol.NOT_CONNECTED, "not connected to WhatsApp right now")
        body = params.get("message")
        if not isinstance(body, dict):
            raise GatewayError(protocol.BAD_REQUEST, "message must be an object")
        to = to_jid(str(params.get("to", "")))
        try:
            message = outgoing_message(body)
        except (KeyError, TypeError, ValueError) as exc:
            raise GatewayError(protocol.BAD_REQUEST, f"malformed message: {exc!r}"[:200]) from None
        try:
            sent = await self._blocking(lambda: s.client.send_message(to, message))
        except SendMessageError as exc:
            raise GatewayError(protocol.INTERNAL, f"WhatsApp did not take the message: {exc}"[:300]) from None
        return {"id": sent.ID, "timestamp_ms": _ms(int(sent.Timestamp))}

    async def _m_mark_read(self, s: Session, params: dict[str, Any]) -> dict[str, Any]:
        if not s.connected:
            raise GatewayError(protocol.NOT_CONNECTED, "not connected to WhatsApp right now")
        ids = [str(i) for i in params.get("ids") or []]
        chat = to_jid(str(params.get("chat", "")))
        for sender in params.get("senders") or []:
            jid = to_jid(str(sender))
            await self._blocking(
                partial(s.client.mark_read, *ids, chat=chat, sender=jid, receipt=ReceiptType.READ)
            )
        return {}

    async def _m_logout(self, s: Session, params: dict[str, Any]) -> dict[str, Any]:
        if s.connected:
            with contextlib.suppress(Exception):
                await self._blocking(s.client.logout)
        await self._drop(s)
        return {}

    async def _m_reconnect(self, s: Session, params: dict[str, Any]) -> dict[str, Any]:
        await self._blocking(s.stop)
        s.start()
        return {}

    async def _m_close(self, s: Session, params: dict[str, Any]) -> dict[str, Any]:
        """Stop running the session here, keeping its store (another gateway holds it now)."""
        self.sessions.pop(s.name, None)
        await self._blocking(s.stop)
        return {}

    async def _m_forget(self, s: Session, params: dict[str, Any]) -> dict[str, Any]:
        await self._drop(s)
        return {}

    async def _drop(self, s: Session) -> None:
        """End the session and delete its store (its keys)."""
        self.sessions.pop(s.name, None)
        await self._blocking(s.stop)
        self._delete_store(s.name)

    async def close(self) -> None:
        for s in list(self.sessions.values()):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._blocking(s.stop), STOP_WAIT_SECONDS)
        self.calls.shutdown(wait=False, cancel_futures=True)
        self.outbox.close()


def exit_with_parent(parent: int) -> None:
    """Have the kernel send this process SIGTERM when its parent ends, even by ``kill -9`` (Linux):
    a gateway must not keep running sessions whose leases its dead server can no longer renew."""
    pr_set_pdeathsig = 1
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)
    if os.getppid() != parent:  # the parent ended before the request took effect
        os.kill(os.getpid(), signal.SIGTERM)


async def serve(
    socket: Path,
    secret_file: Path,
    store_dir: Path,
    stop: asyncio.Event | None = None,
    qr_wait: float = QR_WAIT_SECONDS,
) -> None:
    """Run the gateway until ``stop`` is set (or for ever)."""
    os.umask(0o077)
    store_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    gateway = Gateway(store_dir, qr_wait=qr_wait)
    listener = gateway.listen(socket, protocol.load_secret(secret_file))
    await listener.start()
    log.info(
        "WhatsApp Web gateway listening",
        socket=str(socket),
        subscribed=sorted(EVENT_TO_INT[e] for e in EVENTS),
    )
    try:
        await (stop or asyncio.Event()).wait()
    finally:
        await listener.close()
        await gateway.close()
