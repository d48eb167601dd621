"""The WhatsApp Web channel: instances linked to an ordinary WhatsApp number as a linked device.

The WhatsApp sessions live in a gateway process (decision 0010, docs/whatsapp-web.md); this
channel talks to it over the protocol of ``protocol.py`` and keeps no session state of its own:

* linking: ``qr`` asks the gateway for the session's current QR text (the wire face renders the
  PNG), ``getAuthorizationCode`` for an 8-character pairing code; the gateway's ``paired``,
  ``connected``, ``disconnected``, ``logged_out``, ``stream_replaced``, ``temporary_ban`` and
  ``client_outdated`` events move the instance's state (:data:`STATE_OF`);
* sending (a remote channel, decision 0008): the send worker claims a message, then
  :meth:`WebChannel.transmit` asks the gateway to send it and records WhatsApp's id and ``sent``;
  receipts move it on to ``delivered`` and ``read``;
* receiving: ``message`` events become journal rows and notifications through
  ``messaging.incoming.receive``; the event is acknowledged to the gateway only after that
  transaction committed, and WhatsApp's id makes an event sent twice count once.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import secrets
import time
from collections import deque
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import structlog
from prometheus_client import Gauge
from sqlalchemy import bindparam, insert, select

from verdigris.channels.base import (
    SERVER_SIDE,
    BaseChannel,
    ChannelLimited,
    ChannelUnavailable,
    ChannelUnsupported,
)
from verdigris.channels.whatsapp_web import kinds, lease, protocol
from verdigris.channels.whatsapp_web.groups import OwnGroups, WebGroups
from verdigris.channels.whatsapp_web.models import waweb_message_ids
from verdigris.channels.whatsapp_web.names import CHANNEL, jid_of, session_of, wid_of
from verdigris.channels.whatsapp_web.profiles import OwnProfiles, WebProfiles
from verdigris.channels.whatsapp_web.protocol import Event, GatewayError, GatewayLink
from verdigris.channels.whatsapp_web.supervisor import Supervisor
from verdigris.instances import service as instances
from verdigris.instances.models import instances as instance_rows
from verdigris.instances.settings import is_on
from verdigris.media.scan import ScannerUnavailable
from verdigris.media.service import EmptyFile, FileInfected, FileTooLarge, default_name
from verdigris.messaging import lifecycle, rich
from verdigris.messaging import service as journal
from verdigris.messaging.content import file_content, quote_of, text_type
from verdigris.messaging.incoming import (
    IncomingMessage,
    mark_chat_read,
    message_event,
    receive,
    record_past,
    record_sent_elsewhere,
)
from verdigris.messaging.models import messages
from verdigris.messaging.notifications import call_event, emit
from verdigris.messaging.vocabulary import EventKind, Status
from verdigris.store.clock import now_ms
from verdigris.words import duration

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

    from verdigris.config import Settings
    from verdigris.core import Core, Tx
    from verdigris.instances.service import InstanceRecord
    from verdigris.messaging.service import OutgoingMessage, StoredMessage

log = structlog.get_logger("verdigris.waweb")

MAX_ATTEMPTS = 8
RETRY_BASE_MS = 2_000
RETRY_MAX_MS = 300_000
UNREACHABLE_RETRY_MS = 1_000
MAX_TEXT = 65_536

# What this slice of the channel offers (docs/whatsapp-web.md lists what is still to come).
METHODS = SERVER_SIDE | {
    # linking
    "qr",
    "getAuthorizationCode",
    # sending
    "sendMessage",
    "sendLocation",
    "sendContact",
    "sendReaction",
    "sendFileByUpload",
    "sendFileByUrl",
    "uploadFile",
    "downloadFile",
    "sendPoll",
    "sendTyping",
    "editMessage",
    "deleteMessage",
    # service
    "checkWhatsapp",
    "getAvatar",
    "getContactInfo",
    "setProfilePicture",
    # groups (not their pictures yet)
    "createGroup",
    "getGroupData",
    "updateGroupName",
    "updateGroupSettings",
    "addGroupParticipant",
    "removeGroupParticipant",
    "setGroupAdmin",
    "removeAdmin",
    "leaveGroup",
    "setGroupPicture",
}
_WHY: dict[str, str] = {}
# Why the optional capabilities are missing (the compatibility table's WhatsApp Web column shows it).
MISSING = {
    "statuses": "statuses (stories) through a linked device are not offered",
    "calls": "WhatsApp Web cannot place or take calls (incoming calls are announced)",
}
CHECK_WINDOW_S = 3600
# How often the gateway's sessions, memory and threads are read for /metrics.
STATS_SECONDS = 15.0

# What the console says when the gateway reported why an instance left ``authorized`` (the state
# alone does not tell a replaced session from an outdated client). Kept per process, for the state
# it explains (WebChannel.state_note).
STREAM_REPLACED = (
    "Another WhatsApp Web client connected with this session (stream replaced), so WhatsApp "
    "stopped this one; the number is still linked. Reboot takes the session back; if it happens "
    "again, the same session runs somewhere else too: stop that copy."
)
CLIENT_OUTDATED = (
    "WhatsApp refuses the gateway's client version (client outdated); the number is still "
    "linked. The operator updates the gateway (neonize, the verdigris[whatsapp-web] extra), "
    "then Reboot connects again."
)
LOGGED_OUT = "The phone removed this linked device (or WhatsApp did): link the number again."
DISCONNECTED = "The connection to WhatsApp dropped; the gateway reconnects by itself."
ELSEWHERE_STOPPED = (
    "WhatsApp stopped this session while the number is still linked (another client took it "
    "over, or WhatsApp refused the client version): Reboot takes it back."
)
GATEWAY_DOWN = (
    "The WhatsApp Web gateway is not running right now; the server starts it again by itself. "
    "Messages wait in the queue meanwhile."
)

# Receipt types of the protocol → the status they mean (forward only: lifecycle decides).
# GREEN-API has no "played": a voice note listened to counts as read.
RECEIPT_STATUS = {
    "delivered": Status.DELIVERED,
    "read": Status.READ,
    "played": Status.READ,
    "failed": Status.FAILED,
}

_LOCAL_ID = select(waweb_message_ids.c.id_message).where(
    (waweb_message_ids.c.instance_id == bindparam("instance_id"))
    & (waweb_message_ids.c.wa_id == bindparam("wa_id"))
)
_WA_ID = select(waweb_message_ids.c.wa_id).where(
    (waweb_message_ids.c.instance_id == bindparam("instance_id"))
    & (waweb_message_ids.c.id_message == bindparam("id_message"))
)
_MESSAGE = select(messages).where(
    (messages.c.instance_id == bindparam("instance_id")) & (messages.c.id_message == bindparam("id_message"))
)


# --- where things are --------------------------------------------------------------------------


def socket_path(settings: Settings) -> Path:
    return (
        Path(settings.whatsapp_web_socket)
        if settings.whatsapp_web_socket
        else settings.data_dir / "wa-gateway.sock"
    )


def secret_path(settings: Settings) -> Path:
    if settings.whatsapp_web_secret_file:
        return Path(settings.whatsapp_web_secret_file)
    return settings.data_dir / "wa-gateway.secret"


def store_dir(settings: Settings) -> Path:
    if settings.whatsapp_web_store_dir:
        return Path(settings.whatsapp_web_store_dir)
    return settings.data_dir / "wa-sessions"


def changed(type_message: str, change: dict[str, Any], original: dict[str, Any]) -> dict[str, Any]:
    """A journal entry's content after an edit (new text or caption) or a deletion for everyone."""
    out = dict(original)
    if type_message == "editedMessage":
        for key in ("text", "caption"):
            if key in change:
                out[key] = change[key]
        out["edited"] = True
    else:
        out["deleted"] = True
    return out


async def apply_change(
    tx: Tx, instance_id: int, chat_id: str, type_message: str, content: dict[str, Any]
) -> None:
    """An edit or a deletion reached WhatsApp (or came from it): the journal's copy changes too."""
    if type_message in ("editedMessage", "deletedMessage") and content.get("target_id"):
        await journal.rewrite(
            tx,
            [instance_id],
            chat_id,
            str(content["target_id"]),
            lambda original: changed(type_message, content, original),
        )


class WebChannel(BaseChannel):
    name = CHANNEL
    title = "WhatsApp Web"
    remote = True
    methods = METHODS
    missing = MISSING
    groups = OwnGroups()
    profiles = OwnProfiles()

    def __init__(self, core: Core) -> None:
        super().__init__(core)
        settings = core.settings
        self.link = GatewayLink(
            socket_path(settings),
            lambda: protocol.load_secret(secret_path(settings)),
            self.on_event,
            self.on_connect,
        )
        self.supervisor: Supervisor | None = None
        # This process's name in the session leases (the one of its work leases), and the
        # instances it holds (lease.py).
        self.holder = core.leases.holder
        self.held: set[int] = set()
        self._attempts: dict[int, int] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        # Receipts naming a WhatsApp id this server has not recorded yet (its send is settling).
        self._early: dict[tuple[int, str], list[tuple[Status, int]]] = {}
        # When each instance's number checks of the last hour were made (monotonic seconds).
        self._checks: dict[int, deque[float]] = {}
        self.stats: dict[str, Any] = {}  # the gateway's last answer to ``stats``
        # Why each instance is in its state, as the gateway reported it: (the state, a sentence).
        self.notes: dict[int, tuple[str, str]] = {}
        self.web_groups = WebGroups(self)
        self.web_profiles = WebProfiles(self)
        self._gauges()

    def _gauges(self) -> None:
        """The gateway's figures in /metrics (read every STATS_SECONDS while it is connected)."""
        registry = self.core.metrics.registry
        figures = {
            "sessions": "WhatsApp Web sessions the gateway runs",
            "connected": "WhatsApp Web sessions connected to WhatsApp",
            "rss_bytes": "Resident memory of the WhatsApp Web gateway process",
            "threads": "Threads of the WhatsApp Web gateway process (Python and Go)",
        }
        for key, text in figures.items():
            gauge = Gauge(f"verdigris_wa_gateway_{key}", text, registry=registry)
            gauge.set_function(partial(self._figure, key))
        Gauge(
            "verdigris_wa_gateway_up",
            "Whether the server is connected to its WhatsApp Web gateway",
            registry=registry,
        ).set_function(lambda: float(self.link.connected.is_set()))
        Gauge(
            "verdigris_wa_gateway_starts",
            "Gateway processes started by this server (restarts after crashes)",
            registry=registry,
        ).set_function(lambda: float(self.supervisor.starts if self.supervisor is not None else 0))

    def _figure(self, key: str) -> float:
        return float(self.stats.get(key, 0))

    async def _watch(self) -> None:
        while True:
            await self.link.connected.wait()
            await self._read_stats()
            await asyncio.sleep(STATS_SECONDS)

    async def _read_stats(self) -> None:
        try:
            self.stats = await self.call("stats", {})
        except GatewayError as exc:
            log.info("WhatsApp Web gateway figures not read", error=exc.message)

    @property
    def timeout(self) -> float:
        return float(self.core.settings.whatsapp_web_timeout_seconds)

    @property
    def deadline_seconds(self) -> float:
        return 2 * self.timeout

    async def start(self) -> None:
        settings = self.core.settings
        if settings.whatsapp_web_gateway:
            self.supervisor = Supervisor(
                settings, socket_path(settings), secret_path(settings), store_dir(settings)
            )
            await self.supervisor.start()
        else:
            protocol.load_secret(secret_path(settings))  # made now if missing, for the gateway to read
        self.link.start()
        self.spawn(self._watch())
        self.core.leases.on_gained.append(self.partitions_gained)
        self.core.leases.on_lost.append(self.partitions_lost)

    async def stop(self) -> None:
        self.core.timers.cancel(("waweb-leases", self.holder))
        if self.held:
            # The gateway stops running them before the leases go: another process may take them
            # over at once, and two gateways must never run one session.
            for instance_id in sorted(self.held):
                await self._close(instance_id)
            try:
                await lease.release(self.core, self.holder)
            except Exception:
                log.exception("WhatsApp Web leases not released (they expire by themselves)")
            self.held.clear()
        await self.link.close()
        for task in list(self._tasks):
            task.cancel()
        if self.supervisor is not None:
            await self.supervisor.stop()

    def spawn(self, work: Any) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def call(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        return await self.link.request(method, params, self.timeout)

    # --- one holder per session (lease.py) -----------------------------------------------------

    async def hold(self, instance_id: int) -> bool:
        """Whether this process holds (now: took) the instance's session lease. Only the process
        that sends the instance's messages (the holder of its partition's send lease,
        store/leases.py) runs its session, so sends and session always meet in one process."""
        if not self.core.leases.owns(instance_id):
            return False
        if instance_id in self.held:
            return True
        if not await lease.acquire(self.core, instance_id, self.holder):
            return False
        self.held.add(instance_id)
        self.core.timers.schedule(("waweb-leases", self.holder), now_ms() + lease.LEASE_MS // 3, self.renew)
        return True

    async def renew(self) -> None:
        """Extend this process's leases; a session whose lease was lost (this process stalled
        past its expiry and another took it over) is closed in this process's gateway."""
        try:
            still = await lease.renew(self.core, self.holder)
        except Exception:
            log.exception("WhatsApp Web leases not renewed")
            still = self.held
        for instance_id in self.held - still:
            log.warning("WhatsApp Web session lease lost to another process", instance=instance_id)
            self.spawn(self._close(instance_id))
        self.held = set(still)
        await self._hand_over({i for i in self.held if not self.core.leases.owns(i)})
        if self.held:
            self.core.timers.schedule(
                ("waweb-leases", self.holder), now_ms() + lease.LEASE_MS // 3, self.renew
            )

    async def _close(self, instance_id: int) -> None:
        try:
            await self.link.request("close", {"session": session_of(instance_id)}, min(self.timeout, 5.0))
        except GatewayError as exc:
            log.warning("WhatsApp Web session not closed", instance=instance_id, error=exc.message)

    async def _let_go(self, instance_id: int) -> None:
        self.held.discard(instance_id)
        await lease.release(self.core, self.holder, instance_id)

    async def partitions_lost(self, parts: frozenset[int]) -> None:
        """Another process sends these partitions' messages now: their sessions go with them."""
        leases = self.core.leases
        # In a task of its own: a hung gateway must not delay the lease beat that called this.
        self.spawn(self._hand_over({i for i in self.held if leases.part_of(i) in parts}))

    async def _hand_over(self, ids: set[int]) -> None:
        """Stop running these sessions here, then give up their leases (never two gateways at once)."""
        for instance_id in sorted(ids):
            await self._close(instance_id)
            self.held.discard(instance_id)
            try:
                await lease.release(self.core, self.holder, instance_id)
            except Exception:
                log.exception("WhatsApp Web lease not released (it expires by itself)", instance=instance_id)

    async def partitions_gained(self, parts: frozenset[int]) -> None:
        """These partitions' messages are sent here now: open their linked sessions (the previous
        holder may still be closing one: it is tried again until its lease is free)."""
        if self.link.connected.is_set():
            self.spawn(self._open_linked(self.core.leases.part_filter(instance_rows.c.id, parts)))

    async def _open_linked(self, which: Any) -> None:
        async with self.core.read() as conn:
            rows = (
                await conn.execute(
                    select(instance_rows.c.id).where(
                        (instance_rows.c.channel == CHANNEL)
                        & instance_rows.c.deleted_ms.is_(None)
                        & (instance_rows.c.wid != "")
                        & which
                    )
                )
            ).all()
        waiting = []
        for row in rows:
            instance_id = int(row.id)
            if await self.hold(instance_id):
                await self._resume(instance_id)
            elif self.core.leases.owns(instance_id):
                waiting.append(instance_id)  # its previous holder has not let it go yet
        if waiting:
            retry = instance_rows.c.id.in_(waiting)
            self.core.timers.schedule(
                ("waweb-open", frozenset(waiting)),
                now_ms() + lease.LEASE_MS // 6,
                partial(self._open_linked, retry),
            )

    @staticmethod
    def _elsewhere() -> str:
        return (
            "this instance's WhatsApp session runs in another server process (the one that sends "
            "its messages); ask again: its calls are answered there"
        )

    # --- the Channel interface ---------------------------------------------------------------

    def unsupported(self, method: str) -> str:
        why = _WHY.get(method, "the WhatsApp Web channel does not offer it yet")
        return f"{method} is not available for this instance: {why}"

    def refusal(self, rec: InstanceRecord, message: OutgoingMessage) -> str | None:
        if message.type_message not in kinds.SENT_TYPES:
            return f"the WhatsApp Web channel does not send a {message.type_message}"
        if len(str(message.content.get("text", ""))) > MAX_TEXT:
            return f"a WhatsApp message has at most {MAX_TEXT} characters"
        return None

    async def has_account(self, rec: InstanceRecord, phone: str) -> bool:
        """Ask WhatsApp through the instance's own session, at most ``whatsapp_web_checks_per_hour``
        times an hour per instance: bulk number lookups are a known trigger of bans."""
        got = await self.ask(rec, "check", {"phone": phone}, counted="checkWhatsapp")
        return bool(got.get("exists"))

    def _count(self, rec: InstanceRecord, method: str) -> deque[float]:
        """Count one number lookup of ``rec`` against the hourly cap (raises when it is reached)."""
        cap = self.core.settings.whatsapp_web_checks_per_hour
        if cap == 0:
            raise ChannelUnsupported(
                "number checks through a linked device are switched off on this server "
                "(VERDIGRIS_WHATSAPP_WEB_CHECKS_PER_HOUR=0)"
            )
        now = time.monotonic()
        made = self._checks.setdefault(rec.id, deque())
        while made and made[0] <= now - CHECK_WINDOW_S:
            made.popleft()
        if len(made) >= cap:
            retry = int(made[0] + CHECK_WINDOW_S - now) + 1
            raise ChannelLimited(
                f"{method} is limited to {cap} number lookups an hour on a linked WhatsApp number "
                f"(bulk number lookups get numbers banned); try again in {retry} s",
                retry,
            )
        made.append(now)
        return made

    async def ask(
        self, rec: InstanceRecord, method: str, params: dict[str, Any], *, counted: str = ""
    ) -> dict[str, Any]:
        """A gateway method on ``rec``'s session, outside any transaction; ``counted`` (the wire
        method's name): a number lookup, counted against the hourly cap unless it was not asked."""
        made = self._count(rec, counted) if counted else None
        try:
            if not await self.hold(rec.id):
                raise ChannelUnavailable(self._elsewhere())
            return await self.call(method, {"session": session_of(rec.id), **params})
        except (GatewayError, ChannelUnavailable) as exc:
            if made is not None:
                made.pop()  # not asked: it does not count
            if not isinstance(exc, GatewayError):
                raise
            if exc.code in (protocol.NOT_LINKED, protocol.BAD_REQUEST):
                raise instances.InstanceError(exc.message) from None
            raise ChannelUnavailable(f"WhatsApp cannot be asked right now: {exc.message}") from None

    async def qr_payload(self, rec: InstanceRecord) -> str:
        if not await self.hold(rec.id):
            raise ChannelUnavailable(self._elsewhere())
        try:
            got = await self.call("qr", {"session": session_of(rec.id)})
        except GatewayError as exc:
            raise self._linking_error(exc) from None
        return str(got["code"])

    async def pairing_code(self, rec: InstanceRecord, phone: str) -> str:
        if rec.state == instances.AUTHORIZED:
            raise instances.InstanceError("instance account already authorized, logout first")
        if not await self.hold(rec.id):
            raise instances.InstanceError(self._elsewhere())
        try:
            got = await self.call("pair_phone", {"session": session_of(rec.id), "phone": phone})
        except GatewayError as exc:
            if exc.code in (protocol.REFUSED, protocol.BAD_REQUEST, protocol.ALREADY_LINKED):
                raise instances.InstanceError(exc.message) from None
            raise self._linking_error(exc) from None
        code = "".join(ch for ch in str(got["code"]) if ch.isalnum()).upper()
        if len(code) != 8:
            raise ChannelUnsupported("the WhatsApp Web gateway answered a malformed pairing code")
        return code

    @staticmethod
    def _linking_error(exc: GatewayError) -> Exception:
        if exc.code == protocol.ALREADY_LINKED:
            return ChannelUnsupported("instance account already authorized")
        return ChannelUnavailable(f"linking is not possible right now: {exc.message}")

    def state_note(self, rec: InstanceRecord) -> str:
        if not self.link.connected.is_set():
            return GATEWAY_DOWN
        state, note = self.notes.get(rec.id, ("", ""))
        if state == rec.state:
            return note
        if rec.state == instances.NOT_AUTHORIZED and rec.wid:
            return ELSEWHERE_STOPPED  # reported to another process, or before a restart
        return ""

    def _note(self, rec: InstanceRecord, note: str) -> None:
        """Remember why ``rec`` is in its (new) state, for :meth:`state_note`."""
        if note:
            self.notes[rec.id] = (rec.state, note)
        else:
            self.notes.pop(rec.id, None)

    async def logout(self, rec: InstanceRecord) -> None:
        self.notes.pop(rec.id, None)
        if not await self.hold(rec.id):
            return  # the holder's gateway ends it when its lease is gone (renew closes it)
        try:
            await self.call("logout", {"session": session_of(rec.id)})
        except GatewayError as exc:
            # The instance is unlinked here whatever the gateway says; a linking that follows
            # starts from an empty store.
            log.warning(
                "WhatsApp Web logout not confirmed by the gateway", instance=rec.id, error=exc.message
            )
        await self._let_go(rec.id)

    async def reboot(self, rec: InstanceRecord) -> None:
        if not await self.hold(rec.id):
            log.info("WhatsApp Web reboot left to the process holding the session", instance=rec.id)
            return
        try:
            await self.call("reconnect", {"session": session_of(rec.id)})
        except GatewayError as exc:
            log.warning("WhatsApp Web reconnect failed", instance=rec.id, error=exc.message)

    async def release(self, tx: Tx, rec: InstanceRecord) -> None:
        session = session_of(rec.id)

        async def forget() -> None:
            try:
                await self.call("forget", {"session": session})
            except GatewayError as exc:
                log.warning("WhatsApp Web session not forgotten", instance=rec.id, error=exc.message)
            await self._let_go(rec.id)

        tx.on_commit(lambda: self.spawn(forget()))

    async def mark_read(self, tx: Tx, rec: InstanceRecord, chat_id: str, up_to: StoredMessage | None) -> int:
        rows = await mark_chat_read(tx, rec, chat_id, up_to)
        if not rows:
            return 0
        ids = [row.id_message for row in rows]
        senders = sorted({row.sender for row in rows})
        tx.on_commit(lambda: self.spawn(self.tell_read(rec.id, chat_id, senders, ids)))
        return len(rows)

    async def tell_read(self, instance_id: int, chat_id: str, senders: list[str], ids: list[str]) -> None:
        try:
            await self.call(
                "mark_read",
                {
                    "session": session_of(instance_id),
                    "chat": jid_of(chat_id),
                    "senders": [jid_of(s) for s in senders],
                    "ids": ids,
                },
            )
        except GatewayError as exc:
            log.warning("read mark not delivered to WhatsApp", instance=instance_id, error=exc.message)

    # --- sending -------------------------------------------------------------------------------

    async def transmit(self, rec: InstanceRecord, message: StoredMessage) -> int | None:
        if not await self.hold(rec.id):
            # Another process's gateway runs this session: wait (it may stop, and its lease end).
            async with self.core.tx() as tx:
                await lifecycle.requeue(tx, messages.c.id == message.row_id)
            self.core.sender.hand_off(rec.id)
            return now_ms() + lease.LEASE_MS // 6
        if message.type_message == rich.TYPING:
            await self._typing(rec, message)
            return None
        try:
            params = await self._send_params(rec, message)
            got = await self.call("send", params)
        except GatewayError as exc:
            return await self._settle_error(rec, message, exc)
        wa_id = str(got.get("id", ""))
        if not wa_id:
            return await self._settle_error(
                rec, message, GatewayError(protocol.INTERNAL, "the gateway named no message id")
            )
        self._attempts.pop(message.row_id, None)
        for attempt in range(3):
            try:
                await self._settle_sent(rec, message, wa_id, int(got.get("timestamp_ms") or now_ms()))
                return None
            except Exception:
                log.exception(
                    "recording a sent message failed", instance=rec.id, id_message=message.id_message
                )
                await asyncio.sleep(0.5 * (attempt + 1))
        return None  # still pending: after a restart it is sent again (decision 0010)

    async def _typing(self, rec: InstanceRecord, message: StoredMessage) -> None:
        """A typing indicator is shown once or not at all (a late one would mislead): it leaves
        the queue either way, without a journal entry or statuses."""
        content = message.content
        try:
            await self.call(
                "typing",
                {
                    "session": session_of(rec.id),
                    "chat": jid_of(message.chat_id),
                    "ms": int(content.get("typingTime", 1000)),
                    "recording": content.get("typingType") == "recording",
                },
            )
        except GatewayError as exc:
            log.info("typing indicator not shown", instance=rec.id, error=exc.message)
        async with self.core.tx() as tx:
            await journal.drop(tx, message.row_id)

    async def _send_params(self, rec: InstanceRecord, message: StoredMessage) -> dict[str, Any]:
        content = message.content
        body = kinds.outgoing_body(message.type_message, content)
        if body["kind"] == "reaction":
            body["target"] = await self._reaction_target(rec, message)
            body["at_ms"] = now_ms()
        elif body["kind"] in ("edit", "delete"):
            body["target"] = await self._own_target(rec, message)
            body["at_ms"] = now_ms()
            if "caption" in body:
                body["media_type"] = body["target"].pop("media_type", "image")
            body["target"].pop("media_type", None)
        elif body["kind"] == "file":
            body["upload"] = await self._upload(rec, message, body["media_type"])
        quoted = content.get("quoted")
        if body["kind"] == "text" and isinstance(quoted, dict) and quoted.get("id"):
            async with self.core.read() as conn:
                wa_id = await self.wa_id_of(conn, rec.id, str(quoted["id"]))
            if wa_id is not None:
                sender = str(quoted.get("sender") or "")
                inner = quoted.get("content") or {}
                body["quoted"] = {
                    "id": wa_id,
                    "sender": jid_of(sender) if sender else "",
                    "text": str(inner.get("text") or inner.get("caption") or ""),
                }
        return {"session": session_of(rec.id), "to": jid_of(message.chat_id), "message": body}

    async def _upload(self, rec: InstanceRecord, message: StoredMessage, media_type: str) -> dict[str, Any]:
        """Hand the message's stored file to the gateway, which uploads it to WhatsApp (the bytes
        themselves: the library is never given a path or a URL); ``send`` refers to the upload."""
        media = self.core.media
        record = await media.get(str(message.content.get("fileId", "")), include_expired=True)
        if record is None:
            raise GatewayError(
                protocol.REFUSED, "the file of this message is no longer stored on this server"
            )
        if record.size > protocol.MAX_FILE:
            raise GatewayError(
                protocol.REFUSED,
                f"the file has {record.size} bytes; the WhatsApp Web gateway takes at most {protocol.MAX_FILE}",
            )
        session = session_of(rec.id)
        name = secrets.token_hex(8)
        pending = b""
        try:
            async for chunk in media.store.read(record.key):
                pending += chunk
                while len(pending) >= protocol.PART:
                    await self._part(session, name, pending[: protocol.PART])
                    pending = pending[protocol.PART :]
        except OSError as exc:
            raise GatewayError(
                protocol.REFUSED,
                f"the file of this message could not be read on this server ({exc.strerror})",
            ) from None
        if pending:
            await self._part(session, name, pending)
        return await self.call("upload", {"session": session, "media_type": media_type, "upload": name})

    async def _part(self, session: str, name: str, data: bytes) -> None:
        await self.call(
            "upload_part", {"session": session, "upload": name, "data": base64.b64encode(data).decode()}
        )

    async def _own_target(self, rec: InstanceRecord, message: StoredMessage) -> dict[str, Any]:
        """The own message an edit or a deletion is for, as WhatsApp names it."""
        target_id = str(message.content.get("target_id", ""))
        async with self.core.read() as conn:
            wa_id = await self.wa_id_of(conn, rec.id, target_id)
            row = (await conn.execute(_MESSAGE, {"instance_id": rec.id, "id_message": target_id})).first()
        if wa_id is None or row is None:
            raise GatewayError(
                protocol.REFUSED, "the message changed did not go through WhatsApp Web on this instance"
            )
        target = {"id": wa_id, "chat": jid_of(message.chat_id), "from_me": True}
        if row.type_message in kinds.MEDIA_TYPE:
            target["media_type"] = kinds.MEDIA_TYPE[row.type_message]
        return target

    async def _reaction_target(self, rec: InstanceRecord, message: StoredMessage) -> dict[str, Any]:
        """The message a reaction is for, as WhatsApp names it (its id, chat and who sent it)."""
        target_id = str((message.content.get("target") or {}).get("id", ""))
        async with self.core.read() as conn:
            wa_id = await self.wa_id_of(conn, rec.id, target_id)
            row = (await conn.execute(_MESSAGE, {"instance_id": rec.id, "id_message": target_id})).first()
        if wa_id is None or row is None:
            raise GatewayError(
                protocol.REFUSED, "the message reacted to did not go through WhatsApp Web on this instance"
            )
        chat = jid_of(message.chat_id)
        from_me = row.direction == "out"
        target: dict[str, Any] = {"id": wa_id, "chat": chat, "from_me": from_me}
        if chat.endswith("@g.us") and not from_me:
            target["participant"] = jid_of(row.sender)
        return target

    async def _settle_sent(self, rec: InstanceRecord, message: StoredMessage, wa_id: str, at_ms: int) -> None:
        async with self.core.tx() as tx:
            announce = message_event(
                EventKind.OUTGOING_API_MESSAGE,
                message.id_message,
                message.type_message,
                message.content,
                message.chat_id,
                rec.wid,
                "",
                at_ms,
            )
            settled = await lifecycle.set_status(
                tx,
                rec,
                message.row_id,
                message.chat_id,
                message.id_message,
                Status.SENT,
                expect=(Status.PENDING, Status.QUEUED),
                columns={"sender": rec.wid},
                at_ms=at_ms,
                announce=announce,
            )
            if not settled:
                log.warning("sent message no longer claimed", instance=rec.id, id_message=message.id_message)
            await self.remember(tx, rec.id, wa_id, message.id_message)
            await apply_change(tx, rec.id, message.chat_id, message.type_message, message.content)
            for status, when in self._early.pop((rec.id, wa_id), []):
                await self.apply_status(tx, rec, message.id_message, status, when)
            if is_on(rec.settings, "markIncomingMessagesReadedOnReply"):
                await self.mark_read(tx, rec, message.chat_id, None)

    async def _settle_error(
        self, rec: InstanceRecord, message: StoredMessage, exc: GatewayError
    ) -> int | None:
        """Fail the message for good, or put it back into the queue and name when to try again.
        A gateway that is down (being restarted) or a session that is offline is waited for
        however long it takes: neither is the message's fault. So is a gateway that does not know
        the session is linked while this server does (it was restarted and has not resumed the
        session yet): it is asked to, and the message waits."""
        if exc.code == protocol.NOT_LINKED and rec.wid:
            self.spawn(self._resume(rec.id))
            exc = GatewayError(protocol.NOT_CONNECTED, f"the session is being resumed ({exc.message})")
        attempts = self._attempts.get(message.row_id, 0) + 1
        patient = exc.code in (protocol.UNREACHABLE, protocol.NOT_CONNECTED, protocol.FULL)
        if not exc.retryable or (attempts >= MAX_ATTEMPTS and not patient):
            self._attempts.pop(message.row_id, None)
            reason = exc.message if not exc.retryable else f"gave up after {attempts} attempts: {exc.message}"
            async with self.core.tx() as tx:
                await lifecycle.set_status(
                    tx,
                    rec,
                    message.row_id,
                    message.chat_id,
                    message.id_message,
                    Status.FAILED,
                    reason[:400],
                    expect=(Status.PENDING,),
                )
            return None
        self._attempts[message.row_id] = attempts
        if len(self._attempts) > 10_000:
            self._attempts.clear()
        async with self.core.tx() as tx:
            await lifecycle.requeue(tx, messages.c.id == message.row_id)
        if exc.code == protocol.UNREACHABLE:
            delay = UNREACHABLE_RETRY_MS  # a local socket: cheap to try, and the gateway restarts fast
        else:
            delay = min(RETRY_MAX_MS, RETRY_BASE_MS * int(2 ** min(attempts - 1, 10)))
        log.info(
            "send postponed",
            instance=rec.id,
            id_message=message.id_message,
            error=exc.message,
            delay_ms=delay,
        )
        return now_ms() + delay

    # --- ids -----------------------------------------------------------------------------------

    @staticmethod
    async def local_id_of(conn: AsyncConnection, instance_id: int, wa_id: str) -> str | None:
        found = await conn.scalar(_LOCAL_ID, {"instance_id": instance_id, "wa_id": wa_id})
        return None if found is None else str(found)

    @staticmethod
    async def wa_id_of(conn: AsyncConnection, instance_id: int, id_message: str) -> str | None:
        found = await conn.scalar(_WA_ID, {"instance_id": instance_id, "id_message": id_message})
        return None if found is None else str(found)

    @staticmethod
    async def remember(tx: Tx, instance_id: int, wa_id: str, id_message: str) -> None:
        await tx.conn.execute(
            insert(waweb_message_ids),
            {"instance_id": instance_id, "wa_id": wa_id, "id_message": id_message, "created_ms": now_ms()},
        )

    # --- what the gateway reports --------------------------------------------------------------

    async def on_connect(self) -> None:
        """The gateway (re)connected: open the session of every linked instance on this channel
        that this process sends for (another process's gateway runs the others)."""
        await self._open_linked(self.core.leases.part_filter(instance_rows.c.id))

    async def _resume(self, instance_id: int) -> None:
        try:
            await self.call("open", {"session": session_of(instance_id)})
        except GatewayError as exc:
            log.warning("WhatsApp Web session not resumed", instance=instance_id, error=exc.message)

    async def on_event(self, event: Event) -> None:
        """Apply one gateway event; returns after its transaction committed (then it is acknowledged)."""
        try:
            instance_id = int(event.session)
        except ValueError:
            log.warning("event for a session that is no instance", session=event.session[:40])
            return
        rec = await self.core.instances.get(instance_id)
        if rec is None or rec.channel != CHANNEL:
            log.info("event for an instance not on WhatsApp Web", instance=instance_id, kind=event.kind)
            return
        handler = getattr(self, f"_on_{event.kind}", None)
        if handler is None:
            log.info("WhatsApp Web event not handled", instance=instance_id, kind=event.kind)
            return
        await handler(rec, event.data)

    def _history_limits(self) -> dict[str, int]:
        settings = self.core.settings
        return {
            "days": settings.whatsapp_web_history_days,
            "messages": settings.whatsapp_web_history_messages,
        }

    async def _on_history(self, rec: InstanceRecord, data: dict[str, Any]) -> None:
        """Past messages from WhatsApp's history sync: into the journal (a message known already
        counts once), never announced; files are recorded without fetching them."""
        days = self.core.settings.whatsapp_web_history_days
        since = now_ms() - days * 86_400_000
        async with self.core.tx() as tx:
            for past in data.get("messages") or []:
                wa_id = str(past.get("id", ""))
                at_ms = int(past.get("timestamp_ms") or 0)
                if not wa_id or len(wa_id) > 64 or at_ms < since:
                    continue
                if await self.local_id_of(tx.conn, rec.id, wa_id) is not None:
                    continue
                chat = wid_of(str(past.get("chat", "")))
                from_me = bool(past.get("from_me"))
                sender = rec.wid if from_me else wid_of(str(past.get("sender") or past.get("chat", "")))
                found = await self._incoming(tx, rec, past, {}, sender)
                if found is None:
                    continue
                type_message, content = found
                name = str(past.get("sender_name", ""))[:200]
                await self.remember(tx, rec.id, wa_id, wa_id)
                msg = IncomingMessage(wa_id, chat, sender, name, type_message, content, at_ms)
                await record_past(tx, rec, msg, outgoing=from_me)

    async def _on_paired(self, rec: InstanceRecord, data: dict[str, Any]) -> None:
        wid = wid_of(str(data.get("jid", "")))
        if not wid.split("@")[0].isdigit():
            log.warning("WhatsApp Web pairing without a phone number", instance=rec.id)
            return
        if rec.state == instances.AUTHORIZED and rec.wid == wid:
            return
        async with self.core.tx() as tx:
            await instances.set_state(tx, rec, instances.STARTING, wid)
            await instances.set_state(tx, rec, instances.AUTHORIZED, wid)
        self._note(rec, "")

    async def _on_connected(self, rec: InstanceRecord, data: dict[str, Any]) -> None:
        self.spawn(self._read_stats())  # a session more is connected: /metrics shows it at once
        if rec.wid and rec.state in (instances.STARTING, instances.NOT_AUTHORIZED, instances.BLOCKED):
            async with self.core.tx() as tx:
                await instances.set_state(tx, rec, instances.AUTHORIZED)
        if rec.state == instances.AUTHORIZED:
            self._note(rec, "")

    async def _on_disconnected(self, rec: InstanceRecord, data: dict[str, Any]) -> None:
        """The connection dropped (or stopped answering): whatsmeow reconnects by itself."""
        if rec.state == instances.AUTHORIZED:
            async with self.core.tx() as tx:
                await instances.set_state(tx, rec, instances.STARTING)
            self._note(rec, DISCONNECTED)

    _on_keepalive_timeout = _on_disconnected

    async def _on_logged_out(self, rec: InstanceRecord, data: dict[str, Any]) -> None:
        """The phone removed this device (or WhatsApp did): the link is gone for good."""
        log.info("WhatsApp Web session logged out", instance=rec.id, reason=str(data.get("reason", ""))[:100])
        async with self.core.tx() as tx:
            await instances.set_state(tx, rec, instances.NOT_AUTHORIZED, "")
        self._note(rec, LOGGED_OUT)

    async def _on_stream_replaced(self, rec: InstanceRecord, data: dict[str, Any]) -> None:
        """Another client connected with the same device keys: the gateway stops this one.
        The link itself is intact (the wid stays): ``reboot`` takes the session back."""
        log.warning("WhatsApp Web stream replaced: the same session connected elsewhere", instance=rec.id)
        async with self.core.tx() as tx:
            await instances.set_state(tx, rec, instances.NOT_AUTHORIZED)
        self._note(rec, STREAM_REPLACED)

    async def _on_client_outdated(self, rec: InstanceRecord, data: dict[str, Any]) -> None:
        """WhatsApp refuses this client version: nothing works until the gateway is updated."""
        log.error("WhatsApp Web refuses the gateway's client version: update neonize", instance=rec.id)
        async with self.core.tx() as tx:
            await instances.set_state(tx, rec, instances.NOT_AUTHORIZED)
        self._note(rec, CLIENT_OUTDATED)

    async def _on_temporary_ban(self, rec: InstanceRecord, data: dict[str, Any]) -> None:
        log.warning(
            "WhatsApp Web number temporarily banned", instance=rec.id, expires_s=data.get("expires_s")
        )
        async with self.core.tx() as tx:
            await instances.set_state(tx, rec, instances.BLOCKED)
        seconds = data.get("expires_s")
        how_long = (
            f" for about {duration(float(seconds))}"
            if isinstance(seconds, int | float) and seconds > 0
            else ""
        )
        self._note(
            rec,
            f"WhatsApp has banned this number{how_long} (a temporary ban): nothing is sent "
            "until it ends; messages wait in the queue.",
        )

    async def _on_message(self, rec: InstanceRecord, data: dict[str, Any]) -> None:
        wa_id = str(data.get("id", ""))
        if not wa_id or len(wa_id) > 64:
            log.warning("WhatsApp Web message without a usable id", instance=rec.id)
            return
        chat = wid_of(str(data.get("chat", "")))
        sender = wid_of(str(data.get("sender", "")) or str(data.get("chat", "")))
        stored: dict[str, Any] | None = None
        if data.get("kind") == "file":
            async with self.core.read() as conn:
                if await self.local_id_of(conn, rec.id, wa_id) is not None:
                    return  # the gateway sent this event again: recorded already
            stored = await self._download(rec, data)
        async with self.core.tx() as tx:
            if await self.local_id_of(tx.conn, rec.id, wa_id) is not None:
                return  # the gateway sent this event again: recorded already
            found = await self._incoming(tx, rec, data, stored, sender)
            if found is None:
                log.info(
                    "WhatsApp Web message kind not handled yet",
                    instance=rec.id,
                    kind=str(data.get("kind"))[:40],
                )
                return
            type_message, content = found
            await self.remember(tx, rec.id, wa_id, wa_id)
            await apply_change(tx, rec.id, chat, type_message, content)
            at_ms = int(data.get("timestamp_ms") or now_ms())
            name = str(data.get("sender_name", ""))[:200]
            if data.get("from_me"):
                # Sent from the phone (or another device of the account): journal and announce it.
                msg = IncomingMessage(wa_id, chat, rec.wid, name, type_message, content, at_ms)
                await self._sent_elsewhere(tx, rec, msg)
                return
            read = await receive(
                tx, rec, IncomingMessage(wa_id, chat, sender, name, type_message, content, at_ms)
            )
        if read:
            self.spawn(self.tell_read(rec.id, chat, [sender], [wa_id]))

    @staticmethod
    async def _sent_elsewhere(tx: Tx, rec: InstanceRecord, msg: IncomingMessage) -> None:
        await record_sent_elsewhere(tx, rec, msg)
        await emit(
            tx,
            rec,
            message_event(
                EventKind.OUTGOING_MESSAGE,
                msg.id_message,
                msg.type_message,
                msg.content,
                msg.chat_id,
                rec.wid,
                msg.sender_name,
                msg.at_ms,
            ),
        )

    async def _download(self, rec: InstanceRecord, data: dict[str, Any]) -> dict[str, Any]:
        """Fetch a received file through the gateway into the media store; the stored file's
        fields ({} when WhatsApp or the store refused it: the message is announced without it).
        A gateway that cannot be asked right now raises: the event comes again."""
        params = {"session": session_of(rec.id), "media": str(data.get("media", "")), "offset": 0}
        try:
            got = await self.call("download", params)
        except GatewayError as exc:
            if exc.retryable:
                raise
            log.warning("WhatsApp Web file not downloaded", instance=rec.id, reason=exc.message)
            return {}
        media = self.core.media
        mime = str(data.get("mime_type") or "application/octet-stream")
        name = str(data.get("file_name") or "")[:200] or default_name(
            str(data.get("id", "file"))[:40], mime.split(";")[0]
        )
        call = self.call

        async def chunks() -> Any:
            part = base64.b64decode(str(got.get("data", "")))
            yield part
            size, offset = int(got.get("size") or 0), len(part)
            while part and offset < size:  # the rest, part by part (protocol.PART)
                answer = await call("download", {**params, "offset": offset})
                part = base64.b64decode(str(answer.get("data", "")))
                offset += len(part)
                yield part

        try:
            record = await media.save(str(rec.id), chunks(), file_name=name, mime_type=mime)
        except GatewayError as exc:
            if exc.retryable:
                raise
            log.warning("WhatsApp Web file not downloaded", instance=rec.id, reason=exc.message)
            return {}
        except (FileTooLarge, EmptyFile, FileInfected, ScannerUnavailable) as exc:
            log.warning(
                "WhatsApp Web file not stored", instance=rec.id, reason=str(exc) or type(exc).__name__
            )
            return {}
        return {
            "file_name": record.file_name,
            "mime_type": record.mime_type,
            "download_url": media.url(record),
            "file_id": record.id,
            "jpeg_thumbnail": record.jpeg_thumbnail,
        }

    async def _incoming(
        self,
        tx: Tx,
        rec: InstanceRecord,
        data: dict[str, Any],
        stored: dict[str, Any] | None,
        sender: str,
    ) -> tuple[str, dict[str, Any]] | None:
        """The type and content of a received message, its quote or target resolved to this
        instance's ids; None when it cannot be taken (a kind not handled, an unknown target)."""
        kind = data.get("kind")
        if kind == "reaction":
            found = await self._row_of(tx, rec, str(data.get("target_id", "")))
            if found is None:
                return None
            local, row = found
            return "reactionMessage", rich.reaction(str(data.get("emoji", "")), local, row.sender)
        if kind == "file":
            type_message = kinds.FILE_TYPE.get(str(data.get("media_type")), "documentMessage")
            stored = stored or {}
            return type_message, file_content(
                file_name=stored.get("file_name") or str(data.get("file_name", "")),
                mime_type=stored.get("mime_type") or str(data.get("mime_type", "")),
                caption=str(data.get("caption", "")),
                download_url=stored.get("download_url", ""),
                file_id=stored.get("file_id", ""),
                jpeg_thumbnail=stored.get("jpeg_thumbnail", ""),
            )
        if kind in ("edit", "delete", "poll_vote"):
            return await self._change(tx, rec, data, sender)
        taken = kinds.incoming_content(data)
        if taken is None:
            return None
        type_message, content = taken
        if type_message == "textMessage" and data.get("quoted_id"):
            found = await self._row_of(tx, rec, str(data["quoted_id"]))
            if found is not None:
                local, row = found
                content["quoted"] = quote_of(local, row.sender, row.type_message, orjson.loads(row.content))
                type_message = text_type(content)
        return type_message, content

    async def _change(
        self, tx: Tx, rec: InstanceRecord, data: dict[str, Any], sender: str
    ) -> tuple[str, dict[str, Any]] | None:
        """An edit, a deletion or a poll vote, for a message this instance has (None otherwise)."""
        found = await self._row_of(tx, rec, str(data.get("target_id", "")))
        if found is None:
            return None  # a message this server never saw
        local, row = found
        kind = data.get("kind")
        if kind == "delete":
            return "deletedMessage", rich.deletion(local)
        if kind == "edit":
            new = str(data.get("caption") if "caption" in data else data.get("text", ""))
            return "editedMessage", rich.edit(local, row.type_message, new)
        if row.type_message != "pollMessage":
            return None
        poll = orjson.loads(row.content)
        by_hash = {hashlib.sha256(str(o).encode()).hexdigest(): str(o) for o in poll.get("options", [])}
        chosen = [by_hash[h] for h in data.get("selected") or [] if h in by_hash]
        return "pollUpdateMessage", rich.poll_vote(local, poll, chosen, sender)

    async def _row_of(self, tx: Tx, rec: InstanceRecord, wa_id: str) -> tuple[str, Any] | None:
        """The journal row (with its idMessage) of the message WhatsApp names ``wa_id``, if known."""
        local = await self.local_id_of(tx.conn, rec.id, wa_id)
        if local is None:
            return None
        row = (await tx.conn.execute(_MESSAGE, {"instance_id": rec.id, "id_message": local})).first()
        return None if row is None else (local, row)

    async def _on_call(self, rec: InstanceRecord, data: dict[str, Any]) -> None:
        """Someone calls the linked number (the call itself is not taken: WhatsApp Web cannot)."""
        call_id = str(data.get("id", ""))[:128]
        if not call_id:
            return
        peer = wid_of(str(data.get("from", "")))
        at_ms = int(data.get("timestamp_ms") or now_ms())
        async with self.core.tx() as tx:
            await emit(
                tx, rec, call_event(EventKind.INCOMING_CALL, call_id, at_ms, peer=peer, status="offer")
            )

    async def _on_group_change(self, rec: InstanceRecord, data: dict[str, Any]) -> None:
        """Members joined, left, promoted or demoted, a new subject, or the account itself added
        to a group. GREEN-API has no notification for these (its official webhook schema knows
        none), so none is invented: getGroupData asks WhatsApp and shows the group as it is now,
        and the change is logged."""
        log.info(
            "WhatsApp Web group changed",
            instance=rec.id,
            group=wid_of(str(data.get("group", ""))),
            joined=len(data.get("joined") or []) + int(bool(data.get("joined_self"))),
            left=len(data.get("left") or []),
            promoted=len(data.get("promoted") or []),
            demoted=len(data.get("demoted") or []),
            subject="subject" in data,
        )

    async def _on_receipt(self, rec: InstanceRecord, data: dict[str, Any]) -> None:
        status = RECEIPT_STATUS.get(str(data.get("type", "")))
        if status is None:
            return
        at_ms = int(data.get("timestamp_ms") or now_ms())
        async with self.core.tx() as tx:
            for wa_id in [str(i) for i in data.get("ids") or []]:
                local = await self.local_id_of(tx.conn, rec.id, wa_id)
                if local is None:
                    # The send that got this id may still be recording it (its answer and this
                    # receipt race on the socket): applied when it does.
                    early = self._early.setdefault((rec.id, wa_id), [])
                    early.append((status, at_ms))
                    if len(self._early) > 10_000:
                        self._early.clear()  # a bound: receipts of messages sent by the phone itself
                    continue
                await self.apply_status(tx, rec, local, status, at_ms)

    async def apply_status(
        self, tx: Tx, rec: InstanceRecord, id_message: str, status: Status, at_ms: int
    ) -> None:
        row = (
            await tx.conn.execute(
                _MESSAGE.where(messages.c.direction == "out"),
                {"instance_id": rec.id, "id_message": id_message},
            )
        ).first()
        if row is None:
            return
        if status == Status.FAILED and (row.status != Status.SENT or row.chat_id.endswith("@g.us")):
            return  # reached someone already (or one member of a group failed): not a failed message
        await lifecycle.set_status(
            tx,
            rec,
            row.id,
            row.chat_id,
            id_message,
            status,
            "",
            current=row.status,
            sent_by_api=bool(row.sent_by_api),
            at_ms=at_ms,
        )
