"""The interface every channel (connector to a messenger network) implements.

A channel is a plugin: the faces and services reach it only through :class:`Channel`, and it
reports back only through the owner functions of ``messaging`` (``incoming.receive``,
``lifecycle.set_status``, ...) and ``instances`` (``link``, ``set_state``). Channels are found by
``channels.registry``: the built-in ones, and any named by ``VERDIGRIS_CHANNELS``.

Two kinds of channel exist:

* **in-process** (``remote = False``, the sandbox network): the send worker hands each due
  message to :meth:`Channel.deliver` inside the transaction that claimed it; the channel records
  the outcome (statuses) and emits what follows in that same transaction.
* **remote** (``remote = True``, the WhatsApp Cloud API): a network call must never run inside a
  database transaction, so the send worker claims the message (``pending``), commits, and then
  calls :meth:`Channel.transmit`, which talks to the network and records the outcome in a
  transaction of its own, within ``deadline_seconds``. A process that dies between the two leaves
  the row ``pending``; the send worker puts such rows back into the queue once they are older than
  twice that deadline (docs/decisions/0008).

What a channel offers is declared, and the rest answers 501 with the reason: ``methods`` names
the wire methods its instances may call (``None``: every method); the optional capabilities
(``groups``, ``statuses``, ``calls``, ``profiles``: see channels.capabilities) are objects or
``None``, and a wire method that needs a missing one is refused with :meth:`lacks`' text; linking
by QR code or pairing code raises :class:`ChannelUnsupported` when the network links otherwise.
``refusal`` checks a message at acceptance, so what the network would refuse anyway is answered
400 and never queued. docs/compatibility.md is generated from the same declarations.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Protocol

if TYPE_CHECKING:
    from verdigris.channels.capabilities import Calls, Groups, Profiles, Statuses
    from verdigris.core import Core, Tx
    from verdigris.instances.service import InstanceRecord
    from verdigris.messaging.service import OutgoingMessage, StoredMessage


# Wire methods the server answers from its own store whatever the channel: the instance's settings
# and state, its queues, journals and phonebook. A channel that lists its methods (``methods``)
# adds to these the ones that go over its network.
SERVER_SIDE: frozenset[str] = frozenset(
    {
        # account
        "getSettings",
        "setSettings",
        "getStateInstance",
        "getStatusInstance",
        "GetStateInstanceHistory",
        "getWaSettings",
        "reboot",
        "logout",
        "updateApiToken",
        # receiving, queues, journals, marks
        "receiveNotification",
        "deleteNotification",
        "showMessagesQueue",
        "clearMessagesQueue",
        "getMessagesCount",
        "getWebhooksCount",
        "clearWebhooksQueue",
        "getChatHistory",
        "getMessage",
        "lastIncomingMessages",
        "lastOutgoingMessages",
        "readChat",
        # the instance's own phonebook
        "getContacts",
        "addContact",
        "editContact",
        "deleteContact",
        "getChats",
    }
)


class ChannelUnsupported(Exception):
    """The instance's channel cannot do this (a method or a kind of message): the wire answers 501."""


class ChannelUnavailable(Exception):
    """The channel could do this but cannot right now (its gateway is down or restarting, another
    process holds the session): the wire answers 503 with a Retry-After, and a retry may succeed."""


class ChannelLimited(ChannelUnavailable):
    """A cap the channel keeps against the network's abuse rules (checks per hour) is reached: the
    wire answers 429 with a Retry-After of ``retry_after_s``."""

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class Channel(Protocol):
    name: str
    # How docs/compatibility.md heads this channel's column.
    title: str
    # Whether delivering a message means a call over the network (see the module docstring).
    remote: bool
    # The wire methods its instances may call; None: all of them.
    methods: frozenset[str] | None
    # Optional capabilities (channels.capabilities); None: the network lacks it.
    groups: Groups | None
    statuses: Statuses | None
    calls: Calls | None
    profiles: Profiles | None

    @property
    def deadline_seconds(self) -> float:
        """Remote channels: the longest one transmit may take (it enforces it); 0 for in-process ones."""

    def unsupported(self, method: str) -> str:
        """Why ``method`` is not available on this channel (shown in the 501 answer)."""

    def lacks(self, capability: str) -> str | None:
        """Why the channel does not offer ``capability`` (the 501 answer), or None if it does."""

    async def start(self) -> None:
        """The process starts: resume what the channel was doing (workers, timers)."""

    async def stop(self) -> None:
        """The process stops: close connections."""

    def routers(self) -> list[Any]:
        """HTTP routes of the channel's own (a control API, a webhook), mounted by the app."""

    async def qr_payload(self, rec: InstanceRecord) -> str:
        """The text of the QR code that links ``rec`` now (ChannelUnsupported if none)."""

    async def pairing_code(self, rec: InstanceRecord, phone: str) -> str:
        """A code the owner of ``phone`` types in to link ``rec`` (ChannelUnsupported if none)."""

    async def logout(self, rec: InstanceRecord) -> None:
        """``rec`` is being unlinked: end its session on the network (no transaction is open).
        The state change itself is instances.logout's; a channel that loses a session by itself
        reports it with instances.set_state."""

    async def reboot(self, rec: InstanceRecord) -> None:
        """``rec`` restarts: reconnect its session (no transaction is open)."""

    def state_note(self, rec: InstanceRecord) -> str:
        """What the channel knows about ``rec``'s state beyond its name, as a sentence for a
        person (another client took the session over, the client version is refused, the gateway
        is down), or "" when the state says it all. Shown in the console; never a network call."""

    def refusal(self, rec: InstanceRecord, message: OutgoingMessage) -> str | None:
        """Why the network would refuse ``message`` (answered 400 at acceptance), or None."""

    async def deliver(self, tx: Tx, rec: InstanceRecord, message: StoredMessage) -> None:
        """In-process channels: send one claimed message of ``rec``; set its status and emit what
        follows, in ``tx``."""

    async def transmit(self, rec: InstanceRecord, message: StoredMessage) -> int | None:
        """Remote channels: send one claimed message of ``rec`` (no transaction is open) and record
        the outcome. Returns None when done (sent or failed for good), or the time (ms) to try
        again after a temporary failure; the message is then back in the queue."""

    async def mark_read(self, tx: Tx, rec: InstanceRecord, chat_id: str, up_to: StoredMessage | None) -> int:
        """The instance has read incoming messages of a chat; tell their senders. Returns how many."""

    async def has_account(self, rec: InstanceRecord, phone: str) -> bool:
        """Whether ``phone`` (digits) has an account on this network. Called outside any
        transaction (it may ask the network); ChannelUnsupported if the network cannot tell."""

    async def release(self, tx: Tx, rec: InstanceRecord) -> None:
        """The instance is being deleted (in ``tx``): drop what the channel keeps for it."""


class BaseChannel:
    """Defaults for a channel: every method, no optional capability, no QR or pairing code, no
    routes, nothing to start or stop, every message acceptable, nothing kept per instance.
    Subclasses declare what they offer and implement sending (``deliver`` or ``transmit``)."""

    name: ClassVar[str]
    title: ClassVar[str] = ""
    remote: ClassVar[bool] = False
    methods: ClassVar[frozenset[str] | None] = None
    groups: Groups | None = None
    statuses: Statuses | None = None
    calls: Calls | None = None
    profiles: Profiles | None = None
    # Why a capability is missing, by capability name (a default sentence otherwise).
    missing: ClassVar[dict[str, str]] = {}

    def __init__(self, core: Core) -> None:
        self.core = core

    @property
    def deadline_seconds(self) -> float:
        return 0.0

    def unsupported(self, method: str) -> str:
        return f"{method} is not available on the {self.name} network"

    def lacks(self, capability: str) -> str | None:
        if getattr(self, capability, None) is not None:
            return None
        return self.missing.get(capability, f"the {self.name} network has no {capability}")

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    def routers(self) -> list[Any]:
        return []

    async def qr_payload(self, rec: InstanceRecord) -> str:
        raise ChannelUnsupported(f"instances on the {self.name} network are not linked by QR code")

    async def pairing_code(self, rec: InstanceRecord, phone: str) -> str:
        raise ChannelUnsupported(f"instances on the {self.name} network are not linked by pairing code")

    async def logout(self, rec: InstanceRecord) -> None:
        return None

    async def reboot(self, rec: InstanceRecord) -> None:
        return None

    def state_note(self, rec: InstanceRecord) -> str:
        return ""

    def refusal(self, rec: InstanceRecord, message: OutgoingMessage) -> str | None:
        return None

    async def deliver(self, tx: Tx, rec: InstanceRecord, message: StoredMessage) -> None:
        raise AssertionError(f"the {self.name} channel delivers over the network (transmit)")

    async def transmit(self, rec: InstanceRecord, message: StoredMessage) -> int | None:
        raise AssertionError(f"the {self.name} channel delivers in-process (deliver)")

    async def mark_read(self, tx: Tx, rec: InstanceRecord, chat_id: str, up_to: StoredMessage | None) -> int:
        return 0

    async def has_account(self, rec: InstanceRecord, phone: str) -> bool:
        raise ChannelUnsupported(f"the {self.name} network cannot tell whether a number has an account")

    async def release(self, tx: Tx, rec: InstanceRecord) -> None:
        return None


# The channel's implementation of a capability; ChannelUnsupported with the channel's reason when
# it has none (the wire router has refused such calls already: these keep the types honest).


def groups_of(channel: Channel) -> Groups:
    if channel.groups is None:
        raise ChannelUnsupported(channel.lacks("groups") or "no groups")
    return channel.groups


def statuses_of(channel: Channel) -> Statuses:
    if channel.statuses is None:
        raise ChannelUnsupported(channel.lacks("statuses") or "no statuses")
    return channel.statuses


def calls_of(channel: Channel) -> Calls:
    if channel.calls is None:
        raise ChannelUnsupported(channel.lacks("calls") or "no calls")
    return channel.calls


def profiles_of(channel: Channel) -> Profiles:
    if channel.profiles is None:
        raise ChannelUnsupported(channel.lacks("profiles") or "no profiles")
    return channel.profiles
