"""``verdigris wa-gateway``: the process that holds the WhatsApp Web sessions (decision 0010).

It runs neonize (Python over whatsmeow, the Go library inside its wheel) and speaks the gateway
protocol (protocol.py) to the server, which connects to its Unix socket. One neonize client per
session (an instance), each with a whatsmeow store of its own: ``{store_dir}/{session}.sqlite3``,
mode 0600 (the process runs with umask 077, so SQLite's journal files are private too). Neither
the keys in the stores nor QR texts or pairing codes are ever logged.

neonize calls back on threads of its own (the Go side): each callback turns the library's event
protobuf into a protocol event (:func:`translate`, no neonize type leaves this module) and hands
it to the event loop, which keeps it until the server acknowledges it.

Files go up first (``upload``: the bytes, never a path or URL, handed to the library) and are sent
by the upload's reference; received files travel as an opaque ``media`` token that the server
hands back in ``download``. Not here yet (docs/whatsapp-web.md): history sync, groups, contacts.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import ctypes
import hashlib
import io
import os
import secrets as random_bytes
import signal
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import segno
import structlog
from google.protobuf.message import Message as Proto
from neonize.client import NewClient
from neonize.events import EVENT_TO_INT
from neonize.exc import (
    ContactStoreError,
    DecryptPollVoteError,
    DownloadError,
    GetProfilePictureError,
    GetUserInfoError,
    SendMessageError,
    SetGroupPhotoError,
)
from neonize.proto import Neonize_pb2 as ev
from neonize.proto.Neonize_pb2 import GetProfilePictureParams
from neonize.proto.waCommon.WACommon_pb2 import MessageKey
from neonize.proto.waE2E.WAWebProtobufsE2E_pb2 import (
    AudioMessage,
    ContactMessage,
    ContactsArrayMessage,
    ContextInfo,
    DocumentMessage,
    ExtendedTextMessage,
    FutureProofMessage,
    ImageMessage,
    LocationMessage,
    MessageContextInfo,
    PollCreationMessage,
    ProtocolMessage,
    ReactionMessage,
    VideoMessage,
)
from neonize.proto.waE2E.WAWebProtobufsE2E_pb2 import Message as WaMessage
from neonize.utils.enum import ChatPresence, ChatPresenceMedia, MediaType, ParticipantChange, ReceiptType
from neonize.utils.jid import build_jid
from sqlalchemy.engine import make_url

from verdigris.channels.whatsapp_web import protocol
from verdigris.channels.whatsapp_web.protocol import GatewayError, GatewayListener

log = structlog.get_logger("verdigris.wa_gateway")

QR_WAIT_SECONDS = 20.0
# Sessions one gateway process runs at most, and the pause between resuming them after a start
# (a restarted gateway does not reconnect every number to WhatsApp in the same second).
MAX_SESSIONS = 100
OPEN_SPACING_SECONDS = 0.5
STOP_WAIT_SECONDS = 5.0
# Blocking library calls (send, logout, pairing) run on this many threads, shared by all sessions.
CALL_THREADS = 8

# The protocol's media kinds → the WhatsApp message field, its protobuf and the upload's media type.
_MEDIA: dict[str, tuple[str, type[Proto], MediaType]] = {
    "image": ("imageMessage", ImageMessage, MediaType.MediaImage),
    "video": ("videoMessage", VideoMessage, MediaType.MediaVideo),
    "audio": ("audioMessage", AudioMessage, MediaType.MediaAudio),
    "document": ("documentMessage", DocumentMessage, MediaType.MediaDocument),
}
_MEDIA_OF_FIELD = {field: kind for kind, (field, _, _) in _MEDIA.items()}
# A poll has 2 to 12 options (WhatsApp's limits).
POLL_OPTIONS = (2, 12)

_RECEIPTS = {
    ev.Receipt.DELIVERED: "delivered",
    ev.Receipt.READ: "read",
    ev.Receipt.PLAYED: "played",
    ev.Receipt.SERVER_ERROR: "failed",  # WhatsApp's server could not deliver it
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
    return _richer_content(message) or {"kind": kind_of(message)}


def _richer_content(message: WaMessage) -> dict[str, Any] | None:
    """Files, polls, poll votes, group invites, edits and deletions (None: none of these)."""
    for field, media_kind in _MEDIA_OF_FIELD.items():
        if message.HasField(field):
            return _received_file(media_kind, field, getattr(message, field))
    if message.HasField("stickerMessage"):
        return _received_file("image", "stickerMessage", message.stickerMessage)
    poll = _poll_of(message)
    if poll is not None:
        return {
            "kind": "poll",
            "name": poll.name,
            "options": [o.optionName for o in poll.options],
            "multiple": poll.selectableOptionsCount != 1,
        }
    if message.HasField("pollUpdateMessage"):
        # The vote itself is encrypted: the session decrypts it (Session._on_event) and adds
        # ``selected`` (the SHA-256 of each chosen option's name, hex).
        return {"kind": "poll_vote", "target_id": message.pollUpdateMessage.pollCreationMessageKey.ID}
    if message.HasField("groupInviteMessage"):
        invite = message.groupInviteMessage
        return {
            "kind": "group_invite",
            "group": invite.groupJID,
            "invite_code": invite.inviteCode,
            "group_name": invite.groupName,
            "caption": invite.caption,
            "expiration_s": int(invite.inviteExpiration),
            "thumbnail": base64.b64encode(invite.JPEGThumbnail).decode(),
        }
    return _change_of(message)


def _received_file(media_kind: str, field: str, media: Any) -> dict[str, Any]:
    """A received file: what it is, and the token the server hands back in ``download``."""
    token = base64.b64encode(WaMessage(**{field: media}).SerializeToString()).decode()
    return {
        "kind": "file",
        "media_type": media_kind,
        "mime_type": media.mimetype,
        "file_name": getattr(media, "fileName", ""),
        "caption": getattr(media, "caption", ""),
        "size": int(media.fileLength),
        "media": token,
    }


def _poll_of(message: WaMessage) -> Any:
    for field in ("pollCreationMessage", "pollCreationMessageV2", "pollCreationMessageV3"):
        if message.HasField(field):
            return getattr(message, field)
    return None


def _change_of(message: WaMessage) -> dict[str, Any] | None:
    """An edit or a deletion for everyone (both travel as a protocol message)."""
    inner = message
    if message.HasField("editedMessage"):
        inner = message.editedMessage.message
    if not inner.HasField("protocolMessage"):
        return None
    change = inner.protocolMessage
    if change.type == ProtocolMessage.REVOKE:
        return {"kind": "delete", "target_id": change.key.ID}
    if change.type == ProtocolMessage.MESSAGE_EDIT:
        new = change.editedMessage
        text = text_of(new)
        if text is not None:
            return {"kind": "edit", "target_id": change.key.ID, "text": text[0]}
        for field in ("imageMessage", "videoMessage", "documentMessage"):
            if new.HasField(field):
                return {"kind": "edit", "target_id": change.key.ID, "caption": getattr(new, field).caption}
    return None


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


def _jids(jids: Any) -> list[str]:
    return [jid_text(j) for j in jids]


def _group_change(event: ev.GroupInfoEvent) -> tuple[str, dict[str, Any]] | None:
    """Members joined, left, promoted or demoted, or the subject changed (None: another change)."""
    data: dict[str, Any] = {
        "group": jid_text(event.JID),
        "actor": jid_text(event.Sender) if event.HasField("Sender") else "",
        "timestamp_ms": _ms(int(event.Timestamp)),
        "joined": _jids(event.Join),
        "left": _jids(event.Leave),
        "promoted": _jids(event.Promote),
        "demoted": _jids(event.Demote),
    }
    if event.HasField("Name"):
        data["subject"] = event.Name.Name
    if not any(data[k] for k in ("joined", "left", "promoted", "demoted")) and "subject" not in data:
        return None
    return "group_change", data


def _joined(event: ev.JoinedGroup) -> tuple[str, dict[str, Any]]:
    """The linked account was added to a group (or created one)."""
    info = event.GroupInfo
    return "group_change", {
        "group": jid_text(info.JID),
        "actor": jid_text(event.Sender) if event.HasField("Sender") else "",
        "timestamp_ms": _ms(int(time.time())),
        "joined_self": True,
        "subject": info.GroupName.Name,
    }


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


def _call(event: ev.CallOffer) -> tuple[str, dict[str, Any]]:
    meta = event.basicCallMeta
    caller = (
        meta.callCreatorAlt
        if meta.callCreator.Server == "lid" and meta.callCreatorAlt.User
        else meta.callCreator
    )
    return "call", {
        "id": meta.callID,
        "from": jid_text(caller) or jid_text(getattr(meta, "from")),
        "timestamp_ms": _ms(meta.timestamp),
    }


def _paired(event: ev.PairStatus) -> tuple[str, dict[str, Any]] | None:
    if event.Status != ev.PairStatus.SUCCESS:
        return None
    return "paired", {"jid": jid_text(event.ID), "push_name": event.BusinessName}


_SIMPLE: dict[type[Proto], Callable[[Any], tuple[str, dict[str, Any]] | None]] = {
    ev.Message: _message,
    ev.Receipt: _receipt,
    ev.PairStatus: _paired,
    ev.CallOffer: _call,
    ev.GroupInfoEvent: _group_change,
    ev.JoinedGroup: _joined,
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
EVENTS = (*_SIMPLE, ev.HistorySync)

# History sync: the kinds of past messages handed to the server (changes of messages it may not
# have are left out), how many per ``history`` event (and at most protocol.PART bytes of them,
# far below a frame's limit), and the default limits (days, messages per
# chat; ``verdigris wa-gateway`` takes VERDIGRIS_WHATSAPP_WEB_HISTORY_DAYS and _MESSAGES).
HISTORY_KINDS = frozenset({"text", "location", "contacts", "file", "poll"})
HISTORY_BATCH = 200
HISTORY_DAYS, HISTORY_MESSAGES = 7, 50


def _history_chat(conversation: Any) -> str:
    """A conversation's chat as a phone number or group JID ("" for other chats: statuses,
    newsletters, a hidden id without its phone number)."""
    for candidate in (conversation.ID, conversation.pnJID):
        server = candidate.partition("@")[2]
        if server in ("s.whatsapp.net", "g.us"):
            return str(candidate)
    return ""


def history_messages(event: ev.HistorySync, days: int, per_chat: int, now_s: float) -> list[dict[str, Any]]:
    """The past messages of one history sync chunk the server records, as ``message`` event data:
    per chat the newest ``per_chat`` of the last ``days`` days, oldest first."""
    since = now_s - days * 86_400
    out: list[dict[str, Any]] = []
    for conversation in event.Data.conversations:
        chat = _history_chat(conversation)
        if not chat or days <= 0 or per_chat <= 0:
            continue
        taken = []
        for item in conversation.messages:
            info = item.message
            if not info.HasField("message") or int(info.messageTimestamp) < since or not info.key.ID:
                continue
            body = content_of(info.message)
            if body["kind"] not in HISTORY_KINDS:
                continue
            from_me = bool(info.key.fromMe)
            sender = info.key.participant or info.participant or chat
            taken.append(
                {
                    "id": info.key.ID,
                    "chat": chat,
                    "sender": "" if from_me else sender,
                    "sender_name": info.pushName,
                    "from_me": from_me,
                    "timestamp_ms": _ms(int(info.messageTimestamp)),
                }
                | body
            )
        taken.sort(key=lambda m: int(m["timestamp_ms"]))
        out += taken[-per_chat:]
    out.sort(key=lambda m: int(m["timestamp_ms"]))
    return out


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


def _location_message(body: dict[str, Any]) -> WaMessage:
    return WaMessage(
        locationMessage=LocationMessage(
            degreesLatitude=float(body["latitude"]),
            degreesLongitude=float(body["longitude"]),
            name=str(body.get("name", "")),
            address=str(body.get("address", "")),
        )
    )


def _contacts_message(body: dict[str, Any]) -> WaMessage:
    cards = [
        ContactMessage(displayName=str(c["display_name"]), vcard=str(c["vcard"])) for c in body["contacts"]
    ]
    if len(cards) == 1:
        return WaMessage(contactMessage=cards[0])
    return WaMessage(
        contactsArrayMessage=ContactsArrayMessage(displayName=f"{len(cards)} contacts", contacts=cards)
    )


def _reaction_message(body: dict[str, Any]) -> WaMessage:
    return WaMessage(
        reactionMessage=ReactionMessage(
            key=_key(body["target"]), text=str(body.get("emoji", "")), senderTimestampMS=int(body["at_ms"])
        )
    )


def _text_body(body: dict[str, Any]) -> WaMessage:
    quoted = body.get("quoted") if isinstance(body.get("quoted"), dict) else None
    return text_message(str(body.get("text", "")), quoted)


def _revoke_message(body: dict[str, Any]) -> WaMessage:
    return WaMessage(protocolMessage=ProtocolMessage(type=ProtocolMessage.REVOKE, key=_key(body["target"])))


def outgoing_message(body: dict[str, Any]) -> WaMessage:
    """The WhatsApp message of a protocol ``send`` body (BAD_REQUEST for a kind not offered)."""
    kind = str(body.get("kind"))
    build = _OUTGOING.get(kind)
    if build is None:
        raise GatewayError(protocol.BAD_REQUEST, f"messages of kind {kind[:40]!r} are not sent")
    return build(body)


def _key(target: dict[str, Any]) -> MessageKey:
    key = MessageKey(
        remoteJID=str(target["chat"]), fromMe=bool(target.get("from_me", True)), ID=str(target["id"])
    )
    if target.get("participant"):
        key.participant = str(target["participant"])
    return key


def _b64(value: Any) -> bytes:
    try:
        return base64.b64decode(str(value), validate=True)
    except binascii.Error:
        raise ValueError("not base64") from None


def file_message(body: dict[str, Any]) -> WaMessage:
    """A file message referring to what ``upload`` put on WhatsApp's media servers."""
    media_kind = str(body.get("media_type", ""))
    if media_kind not in _MEDIA:
        raise GatewayError(protocol.BAD_REQUEST, f"no such media type: {media_kind[:20]!r}")
    field, cls, _ = _MEDIA[media_kind]
    up = body["upload"]
    media = cls(
        URL=str(up["url"]),
        directPath=str(up["direct_path"]),
        mediaKey=_b64(up["media_key"]),
        fileEncSHA256=_b64(up["file_enc_sha256"]),
        fileSHA256=_b64(up["file_sha256"]),
        fileLength=int(up["file_length"]),
        mimetype=str(body.get("mime_type", "")),
    )
    caption = str(body.get("caption", ""))
    if media_kind == "document":
        media.fileName = media.title = str(body.get("file_name", ""))
    if caption and media_kind != "audio":
        media.caption = caption
    return WaMessage(**{field: media})


def poll_message(body: dict[str, Any]) -> WaMessage:
    """A poll, with the random secret its votes are encrypted with (whatsmeow keeps the secret of
    what it sends, so it can decrypt the votes that come back)."""
    options = [str(o) for o in body["options"]]
    if not POLL_OPTIONS[0] <= len(options) <= POLL_OPTIONS[1] or len(set(options)) != len(options):
        raise GatewayError(protocol.BAD_REQUEST, "a poll has 2 to 12 different options")
    return WaMessage(
        pollCreationMessage=PollCreationMessage(
            name=str(body["name"]),
            options=[PollCreationMessage.Option(optionName=o) for o in options],
            selectableOptionsCount=0 if body.get("multiple") else 1,
        ),
        messageContextInfo=MessageContextInfo(messageSecret=random_bytes.token_bytes(32)),
    )


def edit_message(body: dict[str, Any]) -> WaMessage:
    """An edit of an own message: new text, or a new caption of a file."""
    target = body["target"]
    if "caption" in body:
        field, cls, _ = _MEDIA[str(body.get("media_type", "image"))]
        new = WaMessage(**{field: cls(caption=str(body["caption"]))})
    else:
        new = WaMessage(conversation=str(body["text"]))
    return WaMessage(
        editedMessage=FutureProofMessage(
            message=WaMessage(
                protocolMessage=ProtocolMessage(
                    key=MessageKey(remoteJID=str(target["chat"]), fromMe=True, ID=str(target["id"])),
                    type=ProtocolMessage.MESSAGE_EDIT,
                    editedMessage=new,
                    timestampMS=int(body["at_ms"]),
                )
            )
        )
    )


_OUTGOING: dict[str, Callable[[dict[str, Any]], WaMessage]] = {
    "text": _text_body,
    "location": _location_message,
    "contacts": _contacts_message,
    "reaction": _reaction_message,
    "file": file_message,
    "poll": poll_message,
    "edit": edit_message,
    "delete": _revoke_message,
}


def option_hash(name: str) -> str:
    """How a poll vote names an option: the SHA-256 of its name (hex here)."""
    return hashlib.sha256(name.encode()).hexdigest()


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

    def _on_history(self, event: ev.HistorySync) -> None:
        days, per_chat = self.gateway.history
        batch: list[dict[str, Any]] = []
        size = 0
        for message in history_messages(event, days, per_chat, time.time()):
            weight = len(orjson.dumps(message))
            if batch and (len(batch) >= HISTORY_BATCH or size + weight > protocol.PART):
                self.gateway.emit_threadsafe(self.name, "history", {"messages": batch})
                batch, size = [], 0
            if weight <= protocol.PART:  # one message over a part (never seen) is left out
                batch.append(message)
                size += weight
        if batch:
            self.gateway.emit_threadsafe(self.name, "history", {"messages": batch})

    def _on_event(self, _client: NewClient, event: Proto) -> None:
        if isinstance(event, ev.HistorySync):
            self._on_history(event)
            return
        translated = translate(event)
        if translated is None:
            return
        kind, data = translated
        if kind == "message" and data["kind"] == "poll_vote":
            try:
                vote = self.client.decrypt_poll_vote(event)
            except DecryptPollVoteError as exc:
                # Not a poll this session sent (or its secret is gone): nothing to count.
                log.info("poll vote not decrypted", session=self.name, error=str(exc)[:100])
                return
            data["selected"] = [bytes(h).hex() for h in vote.selectedOptions]
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


ClientFactory = Callable[[str, "Path | str"], NewClient]


def neonize_client(name: str, store: Path | str) -> NewClient:
    """A neonize client whose whatsmeow store is ``store``: a SQLite file (created private if
    missing) or a PostgreSQL URL (neonize hands a name starting with ``postgres`` to whatsmeow's
    PostgreSQL store)."""
    if isinstance(store, Path) and not store.exists():
        os.close(os.open(store, os.O_WRONLY | os.O_CREAT, 0o600))
    return NewClient(str(store), uuid=name)


def store_url_of(database_url: str) -> str:
    """The server's PostgreSQL database (an SQLAlchemy URL) as lib/pq (whatsmeow's driver) takes
    it: ``postgres://user:password@host:port/database``, without TLS unless the URL asks for it."""
    url = make_url(database_url)
    query = dict(url.query)
    query.setdefault("sslmode", "disable")
    out = url.set(drivername="postgres", query=query).render_as_string(hide_password=False)
    return str(out)


def session_schema(name: str) -> str:
    """The PostgreSQL schema of a session's whatsmeow store (one per session: a whatsmeow store
    holds any number of devices, and neonize resumes the first it finds)."""
    return f"waweb_session_{name}"


def session_url(base: str, name: str) -> str:
    """``base`` (a ``postgres://`` URL for lib/pq, whatsmeow's driver) with the session's schema
    as its search path: whatsmeow's tables are made and read there."""
    separator = "&" if "?" in base else "?"
    return f"{base}{separator}search_path={session_schema(name)}"


class Gateway:
    """The sessions and the protocol's methods over them."""

    def __init__(
        self,
        store_dir: Path,
        make_client: ClientFactory = neonize_client,
        qr_wait: float = QR_WAIT_SECONDS,
        max_sessions: int = MAX_SESSIONS,
        open_spacing: float = OPEN_SPACING_SECONDS,
    ) -> None:
        self.store_dir = store_dir
        self.history = (HISTORY_DAYS, HISTORY_MESSAGES)  # days, messages per chat
        # The PostgreSQL database of the session stores (a postgres:// URL; "": SQLite files).
        self.store_url = ""
        self.qr_wait = qr_wait
        self.max_sessions = max_sessions
        self.open_spacing = open_spacing
        self._next_open = 0.0  # monotonic time of the next free resume slot
        self.make_client = make_client
        self.sessions: dict[str, Session] = {}
        self.outbox = Outbox(store_dir / "outbox.sqlite3")
        self.listener: GatewayListener | None = None
        self.loop = asyncio.get_running_loop()
        self.calls = ThreadPoolExecutor(CALL_THREADS, thread_name_prefix="wa-call")
        # Files crossing the socket in parts (protocol.PART), by (session, name), oldest first.
        self.uploads: dict[tuple[str, str], bytearray] = {}
        self.downloads: dict[tuple[str, str], bytes] = {}

    def store_of(self, name: str) -> Path | str:
        if not (name.isascii() and name.isdigit()):
            raise GatewayError(protocol.BAD_REQUEST, "a session is named by its instance id (digits)")
        if self.store_url:
            return session_url(self.store_url, name)
        return self.store_dir / f"{name}.sqlite3"

    async def _schema(self, sql: str) -> None:
        """One statement on the stores' PostgreSQL database (asyncpg; its URL minus the search path)."""
        url = self.store_url.replace("postgres://", "postgresql://", 1)
        conn = await asyncpg.connect(url)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    def session(self, name: str) -> Session:
        found = self.sessions.get(name)
        if found is None:
            self.store_of(name)  # a valid name first
            if len(self.sessions) >= self.max_sessions:
                raise GatewayError(
                    protocol.FULL, f"this gateway runs its maximum of {self.max_sessions} sessions"
                )
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
        if method == "stats":
            return await self._m_stats(None, params)
        name = str(params.get("session", ""))
        if self.store_url and name not in self.sessions:
            self.store_of(name)  # a valid name first
            await self._schema(f"CREATE SCHEMA IF NOT EXISTS {session_schema(name)}")
        result: dict[str, Any] = await answer(self.session(name), params)
        return result

    async def _m_open(self, s: Session, params: dict[str, Any]) -> dict[str, Any]:
        """Resume a linked session (the server knows it is linked). Resumes are spaced
        ``open_spacing`` apart: after a restart the sessions reconnect one after another."""
        s.linked = True
        now = time.monotonic()
        slot = max(now, self._next_open)
        self._next_open = slot + self.open_spacing
        if slot <= now:
            s.start()
        else:
            self.loop.call_later(slot - now, s.start)
        return {}

    async def _m_stats(self, s: Session | None, params: dict[str, Any]) -> dict[str, Any]:
        """How much the gateway holds: sessions, connected ones, resident memory and threads."""
        return {
            "sessions": len(self.sessions),
            "connected": sum(1 for x in self.sessions.values() if x.connected),
            "max_sessions": self.max_sessions,
            **process_usage(),
        }

    async def _m_qr(self, s: Session, params: dict[str, Any]) -> dict[str, Any]:
        if s.linked:
            raise GatewayError(protocol.ALREADY_LINKED, "this session is linked already")
        await self._fresh(s)
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
        await self._fresh(s)
        s.start()
        await self._first_qr(s)  # the pairing request needs the connection the QR loop opened
        try:
            code = await self._blocking(lambda: s.client.PairPhone(phone, True))
        except Exception as exc:
            raise GatewayError(
                protocol.REFUSED, f"WhatsApp refused the pairing request: {exc}"[:300]
            ) from None
        return {"code": str(code)}

    async def _fresh(self, s: Session) -> None:
        """Linking starts from an empty store: what a stopped, unlinked session left is dropped
        (a device the server no longer knows would otherwise be resumed instead of linked)."""
        if s.thread is None or not s.thread.is_alive():
            await self._delete_store(s.name)
            if self.store_url:
                await self._schema(f"CREATE SCHEMA {session_schema(s.name)}")

    async def _delete_store(self, name: str) -> None:
        if self.store_url:
            await self._schema(f"DROP SCHEMA IF EXISTS {session_schema(name)} CASCADE")
            return
        for suffix in ("", "-wal", "-shm", "-journal"):
            with contextlib.suppress(FileNotFoundError):
                Path(f"{self.store_of(name)}{suffix}").unlink()

    async def _m_send(self, s: Session, params: dict[str, Any]) -> dict[str, Any]:
        self._ready(s)
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

    async def _m_upload_part(self, s: Session, params: dict[str, Any]) -> dict[str, Any]:
        """One part of a file to upload (in order), gathered under the server's ``upload`` name."""
        name = str(params.get("upload", ""))[:64]
        if not name:
            raise GatewayError(protocol.BAD_REQUEST, "upload_part names its upload")
        try:
            data = _b64(params.get("data", ""))
        except ValueError:
            raise GatewayError(protocol.BAD_REQUEST, "data must be base64") from None
        key = (s.name, name)
        held = self.uploads.pop(key, None)
        if held is None:
            held = bytearray()
            while len(self.uploads) >= protocol.MAX_PENDING_UPLOADS:
                self.uploads.pop(next(iter(self.uploads)))  # the oldest, left by a server that died
        if len(held) + len(data) > protocol.MAX_FILE:
            raise GatewayError(protocol.REFUSED, f"a file here has at most {protocol.MAX_FILE} bytes")
        held += data
        self.uploads[key] = held
        return {"received": len(held)}

    async def _m_upload(self, s: Session, params: dict[str, Any]) -> dict[str, Any]:
        """Put a file's bytes on WhatsApp's media servers; ``send`` then refers to it. The bytes
        are ``data`` (a small file) or the parts sent before under the name ``upload``."""
        self._ready(s)
        media_kind = str(params.get("media_type", ""))
        if media_kind not in _MEDIA:
            raise GatewayError(protocol.BAD_REQUEST, f"no such media type: {media_kind[:20]!r}")
        if params.get("upload"):
            held = self.uploads.pop((s.name, str(params["upload"])[:64]), None)
            if held is None:
                raise GatewayError(protocol.BAD_REQUEST, "no parts were sent under this upload name")
            data = bytes(held)
        else:
            try:
                data = _b64(params.get("data", ""))
            except ValueError:
                raise GatewayError(protocol.BAD_REQUEST, "data must be base64") from None
        if not data:
            raise GatewayError(protocol.BAD_REQUEST, "the file is empty")
        try:
            up = await self._blocking(lambda: s.client.upload(data, _MEDIA[media_kind][2]))
        except Exception as exc:
            raise GatewayError(protocol.INTERNAL, f"WhatsApp did not take the file: {exc}"[:300]) from None
        return {
            "url": up.url,
            "direct_path": up.DirectPath,
            "media_key": base64.b64encode(up.MediaKey).decode(),
            "file_enc_sha256": base64.b64encode(up.FileEncSHA256).decode(),
            "file_sha256": base64.b64encode(up.FileSHA256).decode(),
            "file_length": int(up.FileLength),
        }

    async def _m_download(self, s: Session, params: dict[str, Any]) -> dict[str, Any]:
        """A part of a received file, named by the ``media`` token of its message event: at most
        PART bytes from ``offset``, and the file's ``size``. The file is fetched from WhatsApp once
        and kept until its last part was read (or a few other files were fetched since)."""
        self._ready(s)
        token = str(params.get("media", ""))
        offset = int(params.get("offset") or 0)
        key = (s.name, hashlib.sha256(token.encode()).hexdigest())
        data = self.downloads.pop(key, None)
        if data is None:
            data = await self._fetch(s, token)
        if offset < 0 or offset > len(data):
            raise GatewayError(protocol.BAD_REQUEST, f"offset {offset} is outside the file")
        end = offset + protocol.PART
        if end < len(data):
            self.downloads[key] = data
            while len(self.downloads) > protocol.MAX_PENDING_UPLOADS:
                self.downloads.pop(next(iter(self.downloads)))
        return {"data": base64.b64encode(data[offset:end]).decode(), "size": len(data)}

    async def _fetch(self, s: Session, token: str) -> bytes:
        try:
            message = WaMessage.FromString(_b64(token))
        except Exception:
            raise GatewayError(protocol.BAD_REQUEST, "not a media token of this gateway") from None
        try:
            data: bytes = await self._blocking(lambda: s.client.download_any(message))
        except DownloadError as exc:
            raise GatewayError(
                protocol.REFUSED, f"WhatsApp did not hand the file over: {exc}"[:300]
            ) from None
        if len(data) > protocol.MAX_FILE:
            raise GatewayError(protocol.REFUSED, f"the file has {len(data)} bytes, over {protocol.MAX_FILE}")
        return data

    async def _m_typing(self, s: Session, params: dict[str, Any]) -> dict[str, Any]:
        """Show "typing…" (or "recording…") in a chat for ``ms`` milliseconds."""
        self._ready(s)
        chat = to_jid(str(params.get("chat", "")))
        media = (
            ChatPresenceMedia.CHAT_PRESENCE_MEDIA_AUDIO
            if params.get("recording")
            else ChatPresenceMedia.CHAT_PRESENCE_MEDIA_TEXT
        )
        await self._blocking(
            lambda: s.client.send_chat_presence(chat, ChatPresence.CHAT_PRESENCE_COMPOSING, media)
        )
        ms = min(max(int(params.get("ms") or 1000), 0), 20_000)

        def paused() -> None:
            with contextlib.suppress(Exception):
                s.client.send_chat_presence(chat, ChatPresence.CHAT_PRESENCE_PAUSED, media)

        def later() -> None:
            with contextlib.suppress(RuntimeError):  # the gateway is closing
                self.calls.submit(paused)

        self.loop.call_later(ms / 1000, later)
        return {}

    async def _m_check(self, s: Session, params: dict[str, Any]) -> dict[str, Any]:
        """Whether a phone number has WhatsApp (one number a call: the server caps how many)."""
        self._ready(s)
        phone = str(params.get("phone", ""))
        if not (phone.isascii() and phone.isdigit()):
            raise GatewayError(protocol.BAD_REQUEST, "the phone number is digits only")
        try:
            found = await self._blocking(lambda: s.client.is_on_whatsapp(f"+{phone}"))
        except Exception as exc:
            raise GatewayError(protocol.INTERNAL, f"WhatsApp did not answer the check: {exc}"[:300]) from None
        return {"exists": any(bool(r.IsIn) for r in found)}

    async def _m_group(self, s: Session, params: dict[str, Any]) -> dict[str, Any]:
        """Groups as the linked account: ``action`` is info, create, rename, leave, participants
        (``change``: add, remove, promote, demote), announce or locked (``value``)."""
        self._ready(s)
        action = str(params.get("action", ""))
        client = s.client
        try:
            if action == "create":
                members = [to_jid(str(p)) for p in params.get("participants") or []]
                info = await self._blocking(lambda: client.create_group(str(params["name"]), members))
                return {"group": await self._group_view(s, info)}
            jid = to_jid(str(params.get("group", "")))
            if jid.Server != "g.us":
                raise GatewayError(protocol.BAD_REQUEST, "not a group")
            if action == "info":
                info = await self._blocking(lambda: client.get_group_info(jid))
                return {"group": await self._group_view(s, info)}
            if action == "picture":
                data = _b64(params.get("data", ""))
                await self._blocking(lambda: client.set_group_photo(jid, data))
                return {"url": (await self._picture(s, jid))["url"]}
            if action == "participants":
                change = ParticipantChange[str(params.get("change", "")).upper()]
                who = [to_jid(str(p)) for p in params.get("participants") or []]
                done = await self._blocking(lambda: client.update_group_participants(jid, who, change))
                return {"errors": [int(p.Error) for p in done]}
            simple: dict[str, Callable[[], Any]] = {
                "rename": lambda: client.set_group_name(jid, str(params["name"])),
                "leave": lambda: client.leave_group(jid),
                "announce": lambda: client.set_group_announce(jid, bool(params["value"])),
                "locked": lambda: client.set_group_locked(jid, bool(params["value"])),
            }
            if action not in simple:
                raise GatewayError(protocol.BAD_REQUEST, f"no such group action: {action[:20]!r}")
            await self._blocking(simple[action])
            return {}
        except (KeyError, ValueError) as exc:
            raise GatewayError(protocol.BAD_REQUEST, f"malformed group request: {exc!r}"[:200]) from None
        except GatewayError:
            raise
        except Exception as exc:  # whatsmeow's answer (not a member, not an admin, no such group)
            raise GatewayError(protocol.REFUSED, f"{exc}"[:300]) from None

    async def _picture(self, s: Session, jid: ev.JID) -> dict[str, Any]:
        """A person's or a group's picture as this account may see it: ``url`` ("" when none is
        set or it is hidden), ``available`` (False: hidden by privacy settings), ``exists``."""
        try:
            info = await self._blocking(lambda: s.client.get_profile_picture(jid, GetProfilePictureParams()))
        except GetProfilePictureError as exc:
            text = str(exc).lower()
            if "hidden" in text or "permission" in text or "401" in text:
                return {"url": "", "available": False, "exists": True}
            if "no profile picture" in text or "404" in text or "not-found" in text:
                return {"url": "", "available": True, "exists": True}
            raise GatewayError(protocol.REFUSED, f"WhatsApp did not show the picture: {exc}"[:300]) from None
        return {"url": str(info.URL), "available": True, "exists": True}

    async def _m_avatar(self, s: Session, params: dict[str, Any]) -> dict[str, Any]:
        self._ready(s)
        return await self._picture(s, to_jid(str(params.get("jid", ""))))

    async def _m_contact(self, s: Session, params: dict[str, Any]) -> dict[str, Any]:
        """What WhatsApp shows of a person: whether the number is on WhatsApp (a lookup: the
        server counts it), their about text, business name, push name and picture."""
        self._ready(s)
        jid = to_jid(str(params.get("jid", "")))
        try:
            found = await self._blocking(lambda: s.client.get_user_info(jid))
        except GetUserInfoError as exc:
            raise GatewayError(protocol.REFUSED, f"WhatsApp did not answer: {exc}"[:300]) from None
        user = next((u for u in found if u.JID.User == jid.User), None)
        if user is None:
            return {"exists": False}
        try:
            known = await self._blocking(lambda: s.client.contact.get_contact(jid))
        except ContactStoreError:
            known = ev.ContactInfo()
        verified = (
            user.UserInfo.VerifiedName.Details.verifiedName if user.UserInfo.HasField("VerifiedName") else ""
        )
        picture = await self._picture(s, jid)
        return {
            "exists": True,
            "about": user.UserInfo.Status,
            "business": bool(verified or known.BusinessName),
            "push_name": known.PushName or verified or known.BusinessName,
            "avatar": picture["url"],
        }

    async def _m_contacts(self, s: Session, params: dict[str, Any]) -> dict[str, Any]:
        """The account's address book as whatsmeow keeps it (synced from the phone)."""
        self._ready(s)
        try:
            every = await self._blocking(s.client.contact.get_all_contacts)
        except ContactStoreError as exc:
            raise GatewayError(protocol.INTERNAL, f"the contact store failed: {exc}"[:300]) from None
        return {
            "contacts": [
                {
                    "jid": jid_text(c.JID),
                    "full_name": c.Info.FullName,
                    "push_name": c.Info.PushName,
                    "business_name": c.Info.BusinessName,
                }
                for c in every
                if c.JID.Server in ("s.whatsapp.net", "g.us")
            ]
        }

    async def _m_set_picture(self, s: Session, params: dict[str, Any]) -> dict[str, Any]:
        """The account's own picture (bytes handed to the library, never a path)."""
        self._ready(s)
        data = _b64(params.get("data", ""))
        try:
            picture_id = await self._blocking(lambda: s.client.set_profile_photo(data))
        except SetGroupPhotoError as exc:
            raise GatewayError(protocol.REFUSED, f"WhatsApp refused the picture: {exc}"[:300]) from None
        return {"id": str(picture_id)}

    async def _group_view(self, s: Session, info: Any) -> dict[str, Any]:
        """A group as the protocol carries it (its invite code only when the account may see it)."""
        jid = info.JID
        try:
            link = str(await self._blocking(lambda: s.client.get_group_invite_link(jid)))
        except Exception:
            link = ""
        owner = info.OwnerPN if info.OwnerPN.User else info.OwnerJID
        return {
            "id": jid_text(jid),
            "subject": info.GroupName.Name,
            "subject_ms": _ms(info.GroupName.NameSetAt),
            "subject_owner": jid_text(info.GroupName.NameSetBy),
            "owner": jid_text(owner),
            "created_ms": _ms(int(info.GroupCreated)),  # a float in neonize's protobuf
            "announce": info.GroupAnnounce.IsAnnounce,
            "locked": info.GroupLocked.isLocked,
            "invite_code": link.rsplit("/", 1)[-1],
            "participants": [
                {
                    "jid": jid_text(p.PhoneNumber)
                    if p.JID.Server == "lid" and p.PhoneNumber.User
                    else jid_text(p.JID),
                    "admin": p.IsAdmin,
                    "super_admin": p.IsSuperAdmin,
                }
                for p in info.Participants
            ],
        }

    def _ready(self, s: Session) -> None:
        if not s.linked:
            raise GatewayError(protocol.NOT_LINKED, "this session is not linked")
        if not s.connected:
            raise GatewayError(protocol.NOT_CONNECTED, "not connected to WhatsApp right now")

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
        await self._delete_store(s.name)

    async def close(self) -> None:
        for s in list(self.sessions.values()):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._blocking(s.stop), STOP_WAIT_SECONDS)
        self.calls.shutdown(wait=False, cancel_futures=True)
        self.outbox.close()


def process_usage() -> dict[str, int]:
    """This process's resident memory (bytes) and threads (Python's and the Go runtime's), Linux."""
    usage = {"rss_bytes": 0, "threads": threading.active_count()}
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key == "VmRSS":
                usage["rss_bytes"] = int(value.split()[0]) * 1024
            elif key == "Threads":
                usage["threads"] = int(value)
    return usage


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
    **options: Any,
) -> None:
    """Run the gateway until ``stop`` is set (or for ever); ``options`` go to :class:`Gateway`
    (``qr_wait``, ``max_sessions``, ``open_spacing``) but ``history`` (days, messages per chat)
    and ``store_url`` (the session stores' PostgreSQL database; "": SQLite files in ``store_dir``)."""
    os.umask(0o077)
    store_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    history = options.pop("history", (HISTORY_DAYS, HISTORY_MESSAGES))
    store_url = options.pop("store_url", "")
    gateway = Gateway(store_dir, **options)
    gateway.history, gateway.store_url = history, store_url
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


async def live_check(work: Path, phone: str, wait: float, say: Callable[[str], None]) -> bool:
    """``verdigris wa-gateway check``: link a number through a real session (a QR code printed in
    the terminal, or a pairing code for ``phone``), send it a message from itself, wait for
    WhatsApp's receipt, then unlink and forget the session. True when every step passed."""
    os.umask(0o077)
    gateway = Gateway(work, qr_wait=wait)
    # A listener that is never started: the session's events stay in ``unacked`` for the check.
    listener = gateway.listen(work / "check.sock", random_bytes.token_hex(32).encode())
    name = "1"

    async def event(kind: str) -> dict[str, Any]:
        async with asyncio.timeout(wait):
            while True:
                for frame in listener.unacked.values():
                    if frame["kind"] == kind:
                        return dict(frame["data"])
                    if frame["kind"] in ("logged_out", "temporary_ban", "client_outdated"):
                        raise GatewayError(
                            protocol.REFUSED, f"WhatsApp answered {frame['kind']}: {frame['data']}"
                        )
                await asyncio.sleep(0.2)

    try:
        if phone:
            code = (await gateway.handle("pair_phone", {"session": name, "phone": phone}))["code"]
            say(f"On the phone: Linked devices → Link a device → Link with phone number instead: {code}")
        else:
            qr = (await gateway.handle("qr", {"session": name}))["code"]
            say("Scan this with the phone (Linked devices → Link a device):")
            drawing = io.StringIO()
            segno.make(qr, error="l").terminal(out=drawing, compact=True)
            say(drawing.getvalue())
        jid = (await event("paired"))["jid"]
        await event("connected")
        say(f"linked as {jid}")
        text = "Verdigris live check: this linked device can send."
        sent = await gateway.handle(
            "send", {"session": name, "to": jid, "message": {"kind": "text", "text": text}}
        )
        say(f"sent, WhatsApp's id {sent['id']}; waiting for its receipt")
        receipt = await event("receipt")
        say(f"receipt: {receipt['type']} — the live check passed")
        return True
    except (GatewayError, TimeoutError) as exc:
        say(f"the live check failed: {exc.message if isinstance(exc, GatewayError) else 'no answer in time'}")
        return False
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(gateway.handle("logout", {"session": name}), STOP_WAIT_SECONDS * 3)
        await gateway.close()
