"""Webhook payloads of the Cloud API in domain words. Pure functions over one ``value`` object of a
``whatsapp_business_account`` payload (``entry[].changes[].value`` with ``field == "messages"``):

* ``messages[]``: what customers sent → :class:`Received` (files still to be downloaded are named
  by their media id);
* ``statuses[]``: what happened to messages the business sent → :class:`StatusChange`;
* ``contacts[]``: the customers' profile names.

Message types this server has no form for (orders, system notices, ...) are left out and counted
in ``skipped``; the channel logs them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from verdigris.messaging import rich
from verdigris.messaging.content import text_content

_FILE_KINDS = {
    "image": "imageMessage",
    "video": "videoMessage",
    "audio": "audioMessage",
    "document": "documentMessage",
    "sticker": "stickerMessage",
}
# Cloud status → the wire's outgoing status ("played" is a voice message heard: it was read).
STATUSES = {"sent": "sent", "delivered": "delivered", "read": "read", "played": "read", "failed": "failed"}


def local_id(wamid: str) -> str:
    """This server's idMessage for a message the network names ``wamid``: stable, so a webhook that
    Meta sends again maps to the same message."""
    return "3EB0" + hashlib.sha256(wamid.encode()).hexdigest()[:16].upper()


def wid(digits: str) -> str:
    return f"{digits}@c.us"


@dataclass(slots=True)
class Received:
    wamid: str
    sender: str  # digits
    sender_name: str
    at_ms: int
    type_message: str
    content: dict[str, Any]
    # Set when the content refers to other messages, by their wamid; the channel resolves them.
    quoted_wamid: str | None = None
    target_wamid: str | None = None  # a reaction's or a button press's message
    press: dict[str, str] | None = None  # {"id", "title"} of a pressed button / list row
    template_press: bool = False
    media_id: str | None = None  # a file to download (content gets downloadUrl once stored)


@dataclass(slots=True)
class StatusChange:
    wamid: str
    status: str  # the wire's word (sent, delivered, read, failed)
    at_ms: int
    description: str = ""


@dataclass(slots=True)
class Value:
    phone_number_id: str
    received: list[Received] = field(default_factory=list)
    statuses: list[StatusChange] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _ms(value: Any) -> int:
    text = str(value or "0")
    return int(text) * 1000 if text.isascii() and text.isdigit() and len(text) < 15 else 0


def _error_text(errors: Any) -> str:
    if not isinstance(errors, list) or not errors or not isinstance(errors[0], dict):
        return ""
    first = errors[0]
    data = first.get("error_data")
    details = data.get("details", "") if isinstance(data, dict) else ""
    text = f"(#{first.get('code', '')}) {first.get('title') or first.get('message') or ''}".strip()
    return (f"{text}: {details}" if details else text)[:400]


def _contact(card: dict[str, Any]) -> dict[str, str]:
    name = _dict(card.get("name"))
    phones = card.get("phones")
    first = next((p for p in phones if isinstance(p, dict)), {}) if isinstance(phones, list) else {}
    digits = str(first.get("wa_id") or "") or "".join(
        ch for ch in str(first.get("phone", "")) if ch.isdigit()
    )
    org = _dict(card.get("org"))
    made = rich.contact_card(
        digits,
        first=str(name.get("first_name", "")),
        middle=str(name.get("middle_name", "")),
        last=str(name.get("last_name", "")),
        company=str(org.get("company", "")),
    )
    if name.get("formatted_name"):
        made["displayName"] = str(name["formatted_name"])
    return made


def _message(raw: dict[str, Any], names: dict[str, str]) -> Received | str:
    """One ``messages[]`` element, or the name of its type when this server has no form for it."""
    kind = str(raw.get("type", ""))
    sender = str(raw.get("from", ""))
    wamid = str(raw.get("id", ""))
    if not wamid or not sender.isdigit():
        return kind or "malformed"
    context = _dict(raw.get("context"))
    got = Received(wamid, sender, names.get(sender, sender), _ms(raw.get("timestamp")), "", {})
    part = _dict(raw.get(kind))
    if kind == "text":
        got.content = text_content(str(part.get("body", "")), link_preview=False)
        got.type_message = "textMessage"
    elif kind in _FILE_KINDS:
        if not part.get("id"):
            return kind
        got.type_message = _FILE_KINDS[kind]
        got.media_id = str(part["id"])
        got.content = {
            "caption": str(part.get("caption", "")),
            "fileName": str(part.get("filename", "")),
            "mimeType": str(part.get("mime_type", "")),
        }
        if kind == "sticker":
            got.content["isAnimated"] = bool(part.get("animated", False))
    elif kind == "location":
        got.type_message = "locationMessage"
        got.content = rich.location(
            float(part.get("latitude", 0)),
            float(part.get("longitude", 0)),
            str(part.get("name", "")),
            str(part.get("address", "")),
        )
    elif kind == "contacts":
        cards = [_contact(card) for card in _list(raw.get("contacts")) if isinstance(card, dict)]
        if not cards:
            return kind
        got.type_message, got.content = rich.contacts(cards)
    elif kind == "reaction":
        got.type_message = "reactionMessage"
        got.content = {"text": str(part.get("emoji") or "")}
        got.target_wamid = str(part.get("message_id", ""))
    elif kind == "interactive":
        reply = part.get("button_reply") or part.get("list_reply")
        if not isinstance(reply, dict) or not context.get("id"):
            return kind
        got.press = {"id": str(reply.get("id", "")), "title": str(reply.get("title", ""))}
        got.target_wamid = str(context["id"])
    elif kind == "button":
        if not context.get("id"):
            return kind
        got.press = {"id": str(part.get("payload", "")), "title": str(part.get("text", ""))}
        got.target_wamid = str(context["id"])
        got.template_press = True
    else:
        return kind or "unknown"
    if context.get("id") and got.target_wamid is None:
        got.quoted_wamid = str(context["id"])
    if context.get("forwarded") or context.get("frequently_forwarded"):
        got.content["forwarded"] = True
        got.content["forwarding_score"] = 5 if context.get("frequently_forwarded") else 1
        if got.type_message == "textMessage":
            got.type_message = "extendedTextMessage"
    return got


def phone_number_id(value: dict[str, Any]) -> str:
    """The business number a ``value`` is for (``metadata.phone_number_id``), ``""`` if none."""
    found = _dict(value.get("metadata")).get("phone_number_id", "")
    return found if isinstance(found, str) else str(found) if isinstance(found, int) else ""


def parse_value(value: dict[str, Any]) -> Value:
    out = Value(phone_number_id(value))
    names: dict[str, str] = {}
    for contact in _list(value.get("contacts")):
        if isinstance(contact, dict) and isinstance(contact.get("profile"), dict):
            names[str(contact.get("wa_id", ""))] = str(contact["profile"].get("name", ""))
    for raw in _list(value.get("messages")):
        if not isinstance(raw, dict):
            continue
        try:
            parsed = _message(raw, names)
        except (TypeError, ValueError):
            parsed = f"malformed {raw.get('type', '')}".strip()
        if isinstance(parsed, str):
            out.skipped.append(parsed)
        else:
            out.received.append(parsed)
    for raw in _list(value.get("statuses")):
        if not isinstance(raw, dict) or not raw.get("id"):
            continue
        status = STATUSES.get(str(raw.get("status", "")))
        if status is None:
            out.skipped.append(f"status {raw.get('status')}")
            continue
        out.statuses.append(
            StatusChange(str(raw["id"]), status, _ms(raw.get("timestamp")), _error_text(raw.get("errors")))
        )
    return out


def message_values(payload: Any) -> list[dict[str, Any]]:
    """The ``value`` objects of a webhook payload that carry messages or statuses."""
    if not isinstance(payload, dict) or payload.get("object") != "whatsapp_business_account":
        return []
    found: list[dict[str, Any]] = []
    for entry in _list(payload.get("entry")):
        if not isinstance(entry, dict):
            continue
        for change in _list(entry.get("changes")):
            if isinstance(change, dict) and change.get("field") == "messages":
                value = change.get("value")
                if isinstance(value, dict):
                    found.append(value)
    return found
