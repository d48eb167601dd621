"""The interface every channel (connector to a messenger network) implements.

The send worker hands each due message to the instance's channel; the channel delivers it,
records the outcome (statuses) and emits the notifications that follow, in the transaction
it is given. Later channels (WhatsApp Cloud API, ...) implement the same methods.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from verdigris.core import Tx
    from verdigris.instances.service import InstanceRecord
    from verdigris.messaging.service import StoredMessage


class Channel(Protocol):
    name: str

    async def deliver(self, tx: Tx, rec: InstanceRecord, message: StoredMessage) -> None:
        """Send one queued message of ``rec``; set its status and emit what follows."""

    async def mark_read(self, tx: Tx, rec: InstanceRecord, chat_id: str, up_to: StoredMessage | None) -> int:
        """The instance has read incoming messages of a chat; tell their senders. Returns how many."""

    async def has_account(self, tx: Tx, phone: str) -> bool:
        """Whether ``phone`` (digits) has an account on this network."""
