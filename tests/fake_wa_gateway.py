"""A fake WhatsApp Web gateway for tests: speaks the gateway protocol
(verdigris.channels.whatsapp_web.protocol) and plays a small WhatsApp world behind it.

Nothing here reaches WhatsApp. The world has sessions (one per instance), phones that scan a QR
code or type a pairing code, messages that WhatsApp accepts and later reports delivered and read,
people who write to the linked number, and the mishaps a linked device meets (the phone logs it
out, another client takes the session over, a temporary ban, a dropped connection).

It runs on its own thread and event loop; the test drives it with plain method calls.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import itertools
import json
import queue
import secrets
import sys
import threading
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from verdigris.channels.whatsapp_web import protocol
from verdigris.channels.whatsapp_web.protocol import GatewayError, GatewayListener


@dataclass
class Session:
    name: str
    jid: str = ""  # the linked account, "" while not linked
    qr_round: int = 0
    pairing_phone: str = ""
    pairing_code: str = ""
    connected: bool = False
    replaced: bool = False
    sent: list[dict[str, Any]] = field(default_factory=list)


class FakeWaGateway:
    def __init__(self, directory: Path) -> None:
        self.socket = directory / "wa.sock"
        self.secret_file = directory / "wa.secret"
        self.sessions: dict[str, Session] = {}
        self.sent: queue.Queue[dict[str, Any]] = queue.Queue()
        self.reads: queue.Queue[dict[str, Any]] = queue.Queue()
        self.typing: queue.Queue[dict[str, Any]] = queue.Queue()
        # Files on WhatsApp's media servers: what the server uploaded, what people send (by token).
        self.uploads: dict[str, bytes] = {}
        self.media: dict[str, bytes] = {}
        self.parts: dict[str, bytearray] = {}  # uploads arriving in parts, by name
        # Numbers with WhatsApp (checkWhatsapp).
        self.registered: set[str] = set()
        # Pictures by JID (people and groups), those hidden from everyone, what people show of
        # themselves ({"about", "business", "push_name"}), and each session's address book.
        self.pictures: dict[str, str] = {}
        self.hidden: set[str] = set()
        self.profiles: dict[str, dict[str, Any]] = {}
        self.address_books: dict[str, list[dict[str, str]]] = {}
        # Groups at WhatsApp: jid -> {"subject", "owner", "announce", "locked", "members": {jid: role}}.
        self.groups: dict[str, dict[str, Any]] = {}
        self.requests: list[str] = []
        # WhatsApp accepts sends (False: answers "not connected", a temporary failure).
        self.accepting = True
        # Each accepted send is reported delivered at once.
        self.auto_deliver = True
        # WhatsApp refuses pairing requests with these words (None: it gives a code).
        self.pairing_refusal: str | None = None
        self._ids = itertools.count(1)
        self._prefix = secrets.token_hex(4).upper()  # WhatsApp's ids never repeat, across processes too
        self._codes = itertools.count(1)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="fake-wa-gateway", daemon=True)
        self.listener: GatewayListener | None = None
        # Run as a process of its own (main below): sessions the server opens count as linked (the
        # previous process linked them), and each accepted send is appended to this file.
        self.standalone = False
        self.sent_log: Path | None = None

    # --- life ------------------------------------------------------------------------------------

    def start(self) -> FakeWaGateway:
        self._thread.start()
        secret = protocol.load_secret(self.secret_file)
        self.listener = GatewayListener(self.socket, secret, self._handle)
        self._run(self.listener.start())
        return self

    def stop(self) -> None:
        if self.listener is not None:
            self._run(self.listener.close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def _run(self, coro: Coroutine[Any, Any, Any], timeout: float = 30) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def _call(self, fn: Any, *args: Any) -> Any:
        async def wrapped() -> Any:
            return fn(*args)

        return self._run(wrapped())

    # --- the protocol ----------------------------------------------------------------------------

    def session(self, name: str) -> Session:
        return self.sessions.setdefault(name, Session(name))

    async def _handle(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        self.requests.append(method)
        name = str(params.get("session", ""))
        if not name:
            raise GatewayError(protocol.BAD_REQUEST, "session is required")
        answer = getattr(self, f"_m_{method}", None)
        if answer is None:
            raise GatewayError(protocol.BAD_REQUEST, f"unknown method {method}")
        result: dict[str, Any] = answer(self.session(name), params)
        return result

    def _m_qr(self, s: Session, params: dict[str, Any]) -> dict[str, Any]:
        if s.jid:
            raise GatewayError(protocol.ALREADY_LINKED, "this session is linked already")
        s.qr_round += 1
        return {"code": f"2@fake-ref-{s.name}-{s.qr_round},fake-noise-key,fake-identity-key,fake-adv"}

    def _m_pair_phone(self, s: Session, params: dict[str, Any]) -> dict[str, Any]:
        if s.jid:
            raise GatewayError(protocol.ALREADY_LINKED, "this session is linked already")
        phone = str(params.get("phone", ""))
        if not phone.isdigit():
            raise GatewayError(protocol.BAD_REQUEST, "phone must be digits")
        if self.pairing_refusal is not None:
            raise GatewayError(protocol.REFUSED, self.pairing_refusal)
        s.pairing_phone = phone
        s.pairing_code = f"FAKE-{next(self._codes):04d}"
        return {"code": s.pairing_code}

    def _m_open(self, s: Session, params: dict[str, Any]) -> dict[str, Any]:
        if self.standalone and not s.jid:
            s.jid = "restored@s.whatsapp.net"
        if s.jid and not s.replaced:
            s.connected = True
            self._emit(s.name, "connected", {})
        return {}

    def _m_reconnect(self, s: Session, params: dict[str, Any]) -> dict[str, Any]:
        s.replaced = False
        return self._m_open(s, params)

    def _m_logout(self, s: Session, params: dict[str, Any]) -> dict[str, Any]:
        s.jid, s.connected = "", False
        return {}

    def _m_close(self, s: Session, params: dict[str, Any]) -> dict[str, Any]:
        s.connected = False
        return {}

    def _m_forget(self, s: Session, params: dict[str, Any]) -> dict[str, Any]:
        self.sessions.pop(s.name, None)
        return {}

    def _m_mark_read(self, s: Session, params: dict[str, Any]) -> dict[str, Any]:
        self.reads.put(dict(params))
        return {}

    def _ready(self, s: Session) -> None:
        if not s.jid:
            raise GatewayError(protocol.NOT_LINKED, "this session is not linked")
        if not self.accepting or not s.connected:
            raise GatewayError(protocol.NOT_CONNECTED, "not connected to WhatsApp right now")

    def _m_upload_part(self, s: Session, params: dict[str, Any]) -> dict[str, Any]:
        held = self.parts.setdefault(str(params["upload"]), bytearray())
        held += base64.b64decode(str(params["data"]), validate=True)
        return {"received": len(held)}

    def _m_upload(self, s: Session, params: dict[str, Any]) -> dict[str, Any]:
        self._ready(s)
        if params.get("upload"):
            data = bytes(self.parts.pop(str(params["upload"])))
        else:
            data = base64.b64decode(str(params["data"]), validate=True)
        path = f"/v/fake/{next(self._ids)}"
        self.uploads[path] = data
        key = base64.b64encode(b"k" * 32).decode()
        return {
            "url": f"https://mmg.fake{path}",
            "direct_path": path,
            "media_key": key,
            "file_enc_sha256": key,
            "file_sha256": key,
            "file_length": len(data),
        }

    def _m_download(self, s: Session, params: dict[str, Any]) -> dict[str, Any]:
        self._ready(s)
        data = self.media.get(str(params.get("media", "")))
        if data is None:
            raise GatewayError(protocol.REFUSED, "WhatsApp no longer has this file")
        offset = int(params.get("offset") or 0)
        part = data[offset : offset + protocol.PART]
        return {"data": base64.b64encode(part).decode(), "size": len(data)}

    def _m_typing(self, s: Session, params: dict[str, Any]) -> dict[str, Any]:
        self._ready(s)
        self.typing.put(dict(params))
        return {}

    def _m_check(self, s: Session, params: dict[str, Any]) -> dict[str, Any]:
        self._ready(s)
        return {"exists": str(params.get("phone")) in self.registered}

    def _picture(self, jid: str) -> dict[str, Any]:
        if jid in self.hidden:
            return {"url": "", "available": False, "exists": True}
        return {"url": self.pictures.get(jid, ""), "available": True, "exists": True}

    def _m_avatar(self, s: Session, params: dict[str, Any]) -> dict[str, Any]:
        self._ready(s)
        return self._picture(str(params["jid"]))

    def _m_contact(self, s: Session, params: dict[str, Any]) -> dict[str, Any]:
        self._ready(s)
        jid = str(params["jid"])
        if jid.split("@")[0] not in self.registered:
            return {"exists": False}
        profile = self.profiles.get(jid, {})
        return {"exists": True, "avatar": self._picture(jid)["url"], **profile}

    def _m_contacts(self, s: Session, params: dict[str, Any]) -> dict[str, Any]:
        self._ready(s)
        return {"contacts": self.address_books.get(s.name, [])}

    def _m_set_picture(self, s: Session, params: dict[str, Any]) -> dict[str, Any]:
        self._ready(s)
        data = base64.b64decode(str(params["data"]), validate=True)
        self.pictures[s.jid] = f"https://pps.fake/{hashlib.sha256(data).hexdigest()[:16]}.jpg"
        return {"id": "1"}

    def _m_group(self, s: Session, params: dict[str, Any]) -> dict[str, Any]:
        """Groups as WhatsApp keeps them; refusals worded as whatsmeow words them."""
        self._ready(s)
        action = str(params.get("action"))
        if action == "create":
            jid = f"1203630000{next(self._ids):08d}@g.us"
            members = {s.jid: "superadmin"} | {str(p): "member" for p in params.get("participants") or []}
            self.groups[jid] = {
                "subject": params["name"],
                "owner": s.jid,
                "announce": False,
                "locked": False,
                "members": members,
            }
            return {"group": self._group_view(jid)}
        jid = str(params.get("group"))
        group = self.groups.get(jid)
        if group is None:
            raise GatewayError(protocol.REFUSED, "failed to get group info: item-not-found (404)")
        role = group["members"].get(s.jid)
        if role is None:
            raise GatewayError(protocol.REFUSED, "forbidden (403): not a participant")
        if action == "info":
            return {"group": self._group_view(jid)}
        if action == "leave":
            del group["members"][s.jid]
            return {}
        if role == "member":
            raise GatewayError(protocol.REFUSED, "not-authorized (401)")
        return self._admin_action(jid, group, action, params)

    def _admin_action(
        self, jid: str, group: dict[str, Any], action: str, params: dict[str, Any]
    ) -> dict[str, Any]:
        if action == "picture":
            data = base64.b64decode(str(params["data"]), validate=True)
            self.pictures[jid] = f"https://pps.fake/{hashlib.sha256(data).hexdigest()[:16]}.jpg"
            return {"url": self.pictures[jid]}
        if action == "rename":
            group["subject"] = params["name"]
        elif action in ("announce", "locked"):
            group[action] = bool(params["value"])
        elif action == "participants":
            return {
                "errors": [self._change(group, str(who), params["change"]) for who in params["participants"]]
            }
        return {}

    @staticmethod
    def _change(group: dict[str, Any], who: str, change: str) -> int:
        """One participant change; WhatsApp's code for it (0: done)."""
        present = who in group["members"]
        if change == "add":
            group["members"].setdefault(who, "member")
            return 409 if present else 0
        if not present:
            return 404
        if change == "remove":
            del group["members"][who]
        else:
            group["members"][who] = "admin" if change == "promote" else "member"
        return 0

    def _group_view(self, jid: str) -> dict[str, Any]:
        group = self.groups[jid]
        return {
            "id": jid,
            "subject": group["subject"],
            "subject_ms": 0,
            "subject_owner": group["owner"],
            "owner": group["owner"],
            "created_ms": 1796300000000,
            "announce": group["announce"],
            "locked": group["locked"],
            "invite_code": "FakeInvite" + jid[:6],
            "participants": [
                {"jid": j, "admin": r != "member", "super_admin": r == "superadmin"}
                for j, r in group["members"].items()
            ],
        }

    def _m_send(self, s: Session, params: dict[str, Any]) -> dict[str, Any]:
        if not s.jid:
            raise GatewayError(protocol.NOT_LINKED, "this session is not linked")
        if not self.accepting or not s.connected:
            raise GatewayError(protocol.NOT_CONNECTED, "not connected to WhatsApp right now")
        to = str(params.get("to", ""))
        if not to.endswith(("@s.whatsapp.net", "@g.us")):
            raise GatewayError(protocol.REFUSED, f"not a WhatsApp address: {to}")
        wa_id = f"3EB0{self._prefix}{next(self._ids):010d}"
        sent = {"session": s.name, "id": wa_id, "to": to, "message": params.get("message")}
        s.sent.append(sent)
        self.sent.put(sent)
        if self.sent_log is not None:
            with self.sent_log.open("a") as log:
                log.write(json.dumps(sent) + "\n")
        if self.auto_deliver:  # emitted before the answer: the receipt overtakes it on the socket
            self._emit(
                s.name, "receipt", {"ids": [wa_id], "chat": to, "type": "delivered", "timestamp_ms": _ms()}
            )
        return {"id": wa_id, "timestamp_ms": _ms()}

    def _emit(self, session: str, kind: str, data: dict[str, Any]) -> int:
        assert self.listener is not None
        return self.listener.emit(session, kind, data)

    def emit(self, session: str, kind: str, data: dict[str, Any]) -> int:
        seq: int = self._call(self._emit, session, kind, data)
        return seq

    def wait_acked(self, seq: int, timeout: float = 30) -> None:
        assert self.listener is not None
        self._run(self.listener.wait_acked(seq, timeout), timeout + 5)

    # --- the world -------------------------------------------------------------------------------

    def scan(self, session: str, phone: str, push_name: str = "") -> None:
        """The phone ``phone`` scans the session's QR code (or enters its pairing code)."""
        s = self.session(session)
        s.jid, s.connected, s.replaced = f"{phone}@s.whatsapp.net", True, False
        self.wait_acked(
            self.emit(session, "paired", {"jid": f"{phone}:7@s.whatsapp.net", "push_name": push_name})
        )
        self.wait_acked(self.emit(session, "connected", {}))

    def enter_pairing_code(self, session: str, code: str) -> None:
        s = self.session(session)
        assert code.replace("-", "") == s.pairing_code.replace("-", ""), (code, s.pairing_code)
        self.scan(session, s.pairing_phone)

    def receipt(self, session: str, wa_ids: list[str], chat: str, kind: str) -> None:
        self.wait_acked(
            self.emit(session, "receipt", {"ids": wa_ids, "chat": chat, "type": kind, "timestamp_ms": _ms()})
        )

    def incoming(self, session: str, phone: str, text: str, **extra: str) -> str:
        """Someone writes to the linked number; returns WhatsApp's id of the message. ``extra``:
        ``name`` (the sender's push name), ``quoted_id`` (the message it replies to), ``wa_id``
        (WhatsApp's id, to play an event sent again)."""
        name, quoted_id, wa_id = extra.get("name", ""), extra.get("quoted_id", ""), extra.get("wa_id", "")
        wa_id = wa_id or f"A5F0{next(self._ids):016d}"
        data = {
            "id": wa_id,
            "chat": f"{phone}@s.whatsapp.net",
            "sender": f"{phone}@s.whatsapp.net",
            "sender_name": name,
            "kind": "text",
            "text": text,
            "timestamp_ms": _ms(),
        }
        if quoted_id:
            data["quoted_id"] = quoted_id
        self.wait_acked(self.emit(session, "message", data))
        return wa_id

    def message(self, session: str, phone: str, body: dict[str, Any], wa_id: str = "") -> str:
        """``phone`` sends the linked number a message of any kind (``body``: the protocol's fields)."""
        wa_id = wa_id or f"A5F0{next(self._ids):016d}"
        data = {
            "id": wa_id,
            "chat": f"{phone}@s.whatsapp.net",
            "sender": f"{phone}@s.whatsapp.net",
            "sender_name": "",
            "timestamp_ms": _ms(),
            **body,
        }
        self.wait_acked(self.emit(session, "message", data))
        return wa_id

    def history(self, session: str, messages: list[dict[str, Any]]) -> None:
        """WhatsApp's history sync after linking: past messages (``message`` event data)."""
        self.wait_acked(self.emit(session, "history", {"messages": messages}))

    def sends_file(self, session: str, phone: str, data: bytes, mime_type: str, **fields: str) -> str:
        """``phone`` sends a file (WhatsApp keeps it until the server downloads it)."""
        token = f"fake-media-{next(self._ids)}"
        self._call(self.media.__setitem__, token, data)
        body = {"kind": "file", "media_type": fields.pop("media_type", "document"), "mime_type": mime_type}
        return self.message(session, phone, body | {"media": token, "size": len(data)} | fields)

    def phone_sends(self, session: str, phone: str, text: str) -> str:
        """The linked account's own phone writes to ``phone``; returns WhatsApp's id."""
        wa_id = f"3A{next(self._ids):018d}"
        data = {
            "id": wa_id,
            "chat": f"{phone}@s.whatsapp.net",
            "sender": self.session(session).jid,
            "sender_name": "Me",
            "from_me": True,
            "kind": "text",
            "text": text,
            "timestamp_ms": _ms(),
        }
        self.wait_acked(self.emit(session, "message", data))
        return wa_id

    def temporary_ban(self, session: str, seconds: int) -> None:
        self.session(session).connected = False
        self.wait_acked(self.emit(session, "temporary_ban", {"code": 101, "expires_s": seconds}))

    def phone_logs_out(self, session: str) -> None:
        s = self.session(session)
        s.jid, s.connected = "", False
        self.wait_acked(self.emit(session, "logged_out", {"reason": "removed from the phone"}))

    def stream_replaced(self, session: str) -> None:
        s = self.session(session)
        s.connected, s.replaced = False, True
        self.wait_acked(self.emit(session, "stream_replaced", {}))

    def drop_connection(self) -> None:
        """The socket to the server breaks (the server connects again)."""
        assert self.listener is not None
        self._call(self.listener.disconnect)

    def next_sent(self, timeout: float = 30) -> dict[str, Any]:
        return self.sent.get(timeout=timeout)

    def unacked(self) -> int:
        assert self.listener is not None
        return len(self.listener.unacked)


def _ms() -> int:
    return int(time.time() * 1000)


def main() -> None:
    """``python fake_wa_gateway.py DIR``: the fake as a process of its own, for tests that kill it.
    Reads commands from stdin, one JSON object a line: ``{"scan": [session, phone]}``."""
    directory = Path(sys.argv[1])
    fake = FakeWaGateway(directory)
    fake.standalone = True
    fake.sent_log = directory / "sent.jsonl"
    fake.start()
    print("ready", flush=True)
    for line in sys.stdin:
        command = json.loads(line)
        if "scan" in command:
            fake.scan(*command["scan"])
        print("done", flush=True)


if __name__ == "__main__":
    main()
