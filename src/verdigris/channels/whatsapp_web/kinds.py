"""Message kinds between the domain's content (messaging.content, messaging.rich) and the gateway
protocol's message bodies (docs/whatsapp-web.md). Ids are not resolved here: quotes and reaction
targets name WhatsApp's ids on the protocol side, and the channel looks them up.
"""

from __future__ import annotations

from typing import Any

from verdigris.messaging import rich

TEXT_TYPES = ("textMessage", "extendedTextMessage", "quotedMessage")
SENT_TYPES = frozenset(
    {*TEXT_TYPES, "locationMessage", "contactMessage", "contactsArrayMessage", "reactionMessage"}
)


def _card(card: dict[str, Any]) -> dict[str, str]:
    return {"display_name": str(card.get("displayName", "")), "vcard": str(card.get("vcard", ""))}


def outgoing_body(type_message: str, content: dict[str, Any]) -> dict[str, Any]:
    """The protocol body of a message to send (a reaction's target is added by the caller)."""
    if type_message in TEXT_TYPES:
        return {"kind": "text", "text": str(content.get("text", ""))}
    if type_message == "locationMessage":
        return {
            "kind": "location",
            "latitude": float(content["latitude"]),
            "longitude": float(content["longitude"]),
            "name": str(content.get("nameLocation", "")),
            "address": str(content.get("address", "")),
        }
    if type_message == "contactMessage":
        return {"kind": "contacts", "contacts": [_card(content)]}
    if type_message == "contactsArrayMessage":
        return {"kind": "contacts", "contacts": [_card(c) for c in content.get("contacts", [])]}
    if type_message == "reactionMessage":
        return {"kind": "reaction", "emoji": str(content.get("text", ""))}
    raise ValueError(f"{type_message} is not sent through WhatsApp Web")


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
    if kind == "contacts":
        cards = [
            {"displayName": str(c.get("display_name", "")), "vcard": str(c.get("vcard", ""))}
            for c in data.get("contacts") or []
            if isinstance(c, dict)
        ]
        if cards:
            return rich.contacts(cards)
    return None
