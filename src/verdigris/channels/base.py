"""The interface every channel (connector to a messenger network) implements.

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

A channel may support only part of the wire API: ``methods`` names the wire methods its
instances may call (``None``: every method); the router answers the others 501 with
``unsupported``'s text. ``refusal`` checks a message at acceptance, so what the network would
refuse anyway is answered 400 and never queued.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from verdigris.core import Tx
    from verdigris.instances.service import InstanceRecord
    from verdigris.messaging.service import OutgoingMessage, StoredMessage


class ChannelUnsupported(Exception):
    """The instance's channel cannot do this (a method or a kind of message)."""


class Channel(Protocol):
    name: str
    # Whether delivering a message means a call over the network (see the module docstring).
    remote: bool
    # The wire methods its instances may call; None: all of them.
    methods: frozenset[str] | None

    @property
    def deadline_seconds(self) -> float:
        """Remote channels: the longest one transmit may take (it enforces it); 0 for in-process ones."""

    def unsupported(self, method: str) -> str:
        """Why ``method`` is not available on this channel (shown in the 501 answer)."""

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

    async def has_account(self, tx: Tx, phone: str) -> bool:
        """Whether ``phone`` (digits) has an account on this network."""

    async def release(self, tx: Tx, rec: InstanceRecord) -> None:
        """The instance is being deleted (in ``tx``): drop what the channel keeps for it."""
