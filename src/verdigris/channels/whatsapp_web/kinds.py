"""Message kinds between the domain's content (messaging.content, messaging.rich) and the gateway
protocol's message bodies (docs/whatsapp-web.md). Ids are not resolved here: quotes and reaction
targets name WhatsApp's ids on the protocol side, and the channel looks them up.
"""

from __future__ import annotations

from typing import Any

from verdigris.messaging import rich

TEXT_TYPES = ("textMessage", "extendedTextMessage", "quotedMessage")
# The domain's file types ↔ the protocol's media types.
MEDIA_TYPE = {
    "imageMessage": "image",
    "videoMessage": "video",
    "audioMessage": "audio",
    "documentMessage": "document",
}
FILE_TYPE = {media: type_message for type_message, media in MEDIA_TYPE.items()}
SENT_TYPES = frozenset(
    {
        *TEXT_TYPES,
        *MEDIA_TYPE,
        "locationMessage",
        "contactMessage",
        "contactsArrayMessage",
        "reactionMessage",
        "pollMessage",
        "editedMessage",
        "deletedMessage",
        rich.TYPING,
    }
)


def _card(card: dict[str, Any]) -> dict[str, str]:
    return {"display_name": str(card.get("displayName", "")), "vcard": str(card.get("vcard", ""))}


def _location(content: dict[str, Any]) -> dict[str, Any]:
    return {
        "kind": "location",
        "latitude": float(content["latitude"]),
        "longitude": float(content["longitude"]),
        "name": str(content.get("nameLocation", "")),
        "address": str(content.get("address", "")),
    }


def _file(type_message: str, content: dict[str, Any]) -> dict[str, Any]:
    return {
        "kind": "file",
        "media_type": MEDIA_TYPE[type_message],
        "mime_type": str(content.get("mimeType", "")),
        "file_name": str(content.get("fileName", "")),
        "caption": str(content.get("caption", "")),
    }


def _poll(content: dict[str, Any]) -> dict[str, Any]:
    return {
        "kind": "poll",
        "name": str(content.get("name", "")),
        "options": [str(o) for o in content.get("options", [])],
        "multiple": bool(content.get("multipleAnswers")),
    }


def _edit(content: dict[str, Any]) -> dict[str, Any]:
    if "caption" in content:
        return {"kind": "edit", "caption": str(content["caption"])}
    return {"kind": "edit", "text": str(content.get("text", ""))}


_BODIES: dict[str, Any] = {
    "locationMessage": _location,
    "contactMessage": lambda c: {"kind": "contacts", "contacts": [_card(c)]},
    "contactsArrayMessage": lambda c: {
        "kind": "contacts",
        "contacts": [_card(x) for x in c.get("contacts", [])],
    },
    "reactionMessage": lambda c: {"kind": "reaction", "emoji": str(c.get("text", ""))},
    "pollMessage": _poll,
    "editedMessage": _edit,
    "deletedMessage": lambda c: {"kind": "delete"},
}


def outgoing_body(type_message: str, content: dict[str, Any]) -> dict[str, Any]:
    """The protocol body of a message to send (targets and uploads are added by the caller)."""
    if type_message in TEXT_TYPES:
        return {"kind": "text", "text": str(content.get("text", ""))}
    if type_message in MEDIA_TYPE:
        return _file(type_message, content)
    build = _BODIES.get(type_message)
    if build is None:
        raise ValueError(f"{type_message} is not sent through WhatsApp Web")
    body: dict[str, Any] = build(content)
    return body


def incoming_content(data: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """The type and content of a received message that needs no lookup (text without its quote,
    location, contacts); None for other kinds."""
    kind = data.get("kind")
    if kind == "text":
        return "textMessage", {"text": str(data.get("text", ""))}
    if kind == "location":
        return "locationMessage", rich.location(
            float(data.get("latitude", 0.0)),
            float(data.get("longitude", 0.0)),
            str(data.get("name", "")),
            str(data.get("address", "")),
        )
    if kind == "poll":
        options = [str(o) for o in data.get("options") or []]
        return "pollMessage", rich.poll(str(data.get("name", "")), options, bool(data.get("multiple")))
    if kind == "group_invite":
        expires = int(data.get("expiration_s") or 0)
        invite = {
            "groupJid": str(data.get("group", "")).replace("@g.us", "") + "@g.us",
            "inviteCode": str(data.get("invite_code", "")),
            "groupName": str(data.get("group_name", "")),
            "caption": str(data.get("caption", "")),
            "jpegThumbnail": str(data.get("thumbnail", "")),
            # A 64-bit number the way GREEN-API shows it (the official schema's Long object).
            "inviteExpiration": {"low": expires & 0xFFFFFFFF, "high": expires >> 32, "unsigned": False},
        }
        return "groupInviteMessage", {"wire": {"groupInviteMessageData": invite}}
    if kind == "contacts":
        cards = [
            {"displayName": str(c.get("display_name", "")), "vcard": str(c.get("vcard", ""))}
            for c in data.get("contacts") or []
            if isinstance(c, dict)
        ]
        if cards:
            return rich.contacts(cards)
    return None
