"""The words of a message's life, written once: statuses, event kinds, message types.

They are ``StrEnum`` members, so they compare equal to (and are stored and rendered as) the plain
strings the journal and the GREEN-API wire use; docs/decisions/0009 explains why the domain keeps
the wire's words.
"""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    """Where a journal row stands. Outgoing rows move queued → pending → sent → delivered → read,
    or end in one of :data:`FINAL`; incoming rows are delivered, then read."""

    QUEUED = "queued"
    HELD = "review"  # accepted, waiting for the operator's review (screening)
    PENDING = "pending"  # claimed by the send worker; the channel has it
    SENT = "sent"
    DELIVERED = "delivered"
    READ = "read"
    FAILED = "failed"
    NO_ACCOUNT = "noAccount"
    NOT_IN_GROUP = "notInGroup"
    EXPIRED = "expired"
    CLEARED = "cleared"  # withdrawn before it was sent (clearMessagesQueue); hidden from journals


# The statuses that end a sent message's life: never left, and always announced to the integrator
# whatever the settings say.
FINAL: frozenset[str] = frozenset({Status.FAILED, Status.NO_ACCOUNT, Status.NOT_IN_GROUP, Status.EXPIRED})
# Not sent yet: shown by showMessagesQueue, withdrawn by clearMessagesQueue.
WAITING: tuple[str, ...] = (Status.QUEUED, Status.HELD)
# The forward order of a sent message's statuses (queued and pending are "not sent yet").
_ORDER: dict[str, int] = {
    Status.QUEUED: 0,
    Status.PENDING: 0,
    Status.SENT: 1,
    Status.DELIVERED: 2,
    Status.READ: 3,
}


def status_advances(current: str, new: str) -> bool:
    """Whether a sent message may move from ``current`` to ``new``: statuses only go forward
    (sent → delivered → read) and a final one (or a withdrawn message) is never left."""
    if current in FINAL or current == Status.CLEARED:
        return False
    if new in FINAL:
        return True
    return _ORDER.get(new, 0) > _ORDER.get(current, 0)


# The chat that status (story) posts are sent to.
STATUS_BROADCAST = "status@broadcast"


class EventKind(StrEnum):
    """What happened to an instance (the notification's typeWebhook)."""

    INCOMING_MESSAGE = "incomingMessageReceived"
    OUTGOING_MESSAGE = "outgoingMessageReceived"  # sent from another device of the account
    OUTGOING_API_MESSAGE = "outgoingAPIMessageReceived"
    MESSAGE_STATUS = "outgoingMessageStatus"
    STATE = "stateInstanceChanged"
    STATUS_INSTANCE = "statusInstanceChanged"
    DEVICE = "deviceInfo"
    INCOMING_CALL = "incomingCall"
    OUTGOING_CALL = "outgoingCall"
    INCOMING_BLOCK = "incomingBlock"
    QUOTA_EXCEEDED = "quotaExceeded"


class MessageType(StrEnum):
    """The kinds of message content (typeMessage; see messaging.content for their fields)."""

    TEXT = "textMessage"
    EXTENDED_TEXT = "extendedTextMessage"
    QUOTED = "quotedMessage"
    IMAGE = "imageMessage"
    VIDEO = "videoMessage"
    AUDIO = "audioMessage"
    DOCUMENT = "documentMessage"
    STICKER = "stickerMessage"
    LOCATION = "locationMessage"
    CONTACT = "contactMessage"
    CONTACTS = "contactsArrayMessage"
    POLL = "pollMessage"
    POLL_UPDATE = "pollUpdateMessage"
    REACTION = "reactionMessage"
    EDITED = "editedMessage"
    DELETED = "deletedMessage"
    BUTTONS = "buttonsMessage"
    BUTTONS_RESPONSE = "buttonsResponseMessage"
    TEMPLATE_BUTTONS_REPLY = "templateButtonsReplyMessage"
    LIST = "listMessage"
    LIST_RESPONSE = "listResponseMessage"


FILE_TYPES: frozenset[str] = frozenset(
    {MessageType.IMAGE, MessageType.VIDEO, MessageType.AUDIO, MessageType.DOCUMENT, MessageType.STICKER}
)
