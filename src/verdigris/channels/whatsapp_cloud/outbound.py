"""Outgoing messages in the Cloud API's words: domain content (messaging.content, messaging.rich)
→ the JSON body of ``POST /{phone-number-id}/messages``. Pure functions; the channel looks up
what they need (the quoted message's wamid, the uploaded file's media id) and passes it in.

What the Cloud API cannot carry is refused at acceptance (:func:`refusal`, answered 400), so a
client learns it at once instead of from a ``failed`` status later.
"""

from __future__ import annotations

import re
from typing import Any

from verdigris.channels.base import ChannelUnsupported
from verdigris.messaging.vocabulary import FILE_TYPES

# Text limits of the Cloud API (characters).
TEXT_MAX = 4096
CAPTION_MAX = 1024
INTERACTIVE_BODY_MAX = 1024
HEADER_MAX = 60
FOOTER_MAX = 60
BUTTON_TITLE_MAX = 20

# What a file becomes, by its MIME type, and the largest file of each kind (bytes). A file too
# large for its kind, or of a type the kind does not take, travels as a document (up to 100 MB).
_IMAGE_TYPES = frozenset({"image/jpeg", "image/png"})
_VIDEO_TYPES = frozenset({"video/mp4", "video/3gpp"})
_AUDIO_TYPES = frozenset({"audio/aac", "audio/amr", "audio/mpeg", "audio/mp4", "audio/ogg"})
_STICKER_TYPES = frozenset({"image/webp"})
SIZE_LIMITS = {
    "image": 5 * 1024 * 1024,
    "video": 16 * 1024 * 1024,
    "audio": 16 * 1024 * 1024,
    "sticker": 500 * 1024,
    "document": 100 * 1024 * 1024,
}

_BUTTON_TYPES = frozenset({"interactiveButtonsReply", "buttonsMessage"})
SUPPORTED_TYPES = frozenset(
    {
        "textMessage",
        "extendedTextMessage",
        "quotedMessage",
        "locationMessage",
        "contactMessage",
        "contactsArrayMessage",
        "reactionMessage",
        "listMessage",
        "templateMessage",
        *FILE_TYPES,
        *_BUTTON_TYPES,
    }
)


def recipient(chat_id: str) -> str:
    """The phone number (digits) a personal chat id names; the Cloud API has no group chats."""
    digits = chat_id[:-5] if chat_id.endswith("@c.us") else ""
    if not (digits.isascii() and digits.isdigit()):
        raise ChannelUnsupported(
            f"the WhatsApp Cloud API sends to personal chats (…@c.us) only, not to {chat_id}"
        )
    return digits


def _too_long(what: str, text: str, limit: int) -> str | None:
    if len(text) > limit:
        return f"{what} is {len(text)} characters long; the WhatsApp Cloud API takes at most {limit}"
    return None


def refusal(type_message: str, content: dict[str, Any], chat_id: str) -> str | None:
    """Why the Cloud API would refuse this message, or None."""
    try:
        recipient(chat_id)
    except ChannelUnsupported as exc:
        return str(exc)
    if type_message not in SUPPORTED_TYPES:
        return f"{type_message} messages cannot be sent through the WhatsApp Cloud API"
    if type_message in FILE_TYPES:
        return _too_long("the caption", str(content.get("caption", "")), CAPTION_MAX)
    if type_message in _BUTTON_TYPES:
        body = str(content.get("body") or content.get("text") or "")
        for title in (str(b.get("buttonText", "")) for b in content.get("buttons", [])):
            if len(title) > BUTTON_TITLE_MAX:
                return (
                    f"button text {title!r} is {len(title)} characters long; "
                    f"the WhatsApp Cloud API takes at most {BUTTON_TITLE_MAX}"
                )
        return (
            _too_long("the body", body, INTERACTIVE_BODY_MAX)
            or _too_long("the header", str(content.get("header", "")), HEADER_MAX)
            or _too_long("the footer", str(content.get("footer", "")), FOOTER_MAX)
        )
    if type_message == "listMessage":
        return _too_long("the message", str(content.get("text", "")), INTERACTIVE_BODY_MAX)
    if type_message == "templateMessage" and content.get("templateButtons"):
        return "template buttons are defined with the template at Meta; send the template with sendTemplate"
    return _too_long("the text", str(content.get("text", "")), TEXT_MAX)


def media_kind(type_message: str, mime_type: str, size: int) -> str:
    """image, video, audio, sticker or document: what the Cloud API is asked to show the file as."""
    mime = mime_type.split(";")[0].strip().lower()
    kind = "document"
    if type_message == "imageMessage" and mime in _IMAGE_TYPES:
        kind = "image"
    elif type_message in ("imageMessage", "stickerMessage") and mime in _STICKER_TYPES:
        kind = "sticker"
    elif type_message == "videoMessage" and mime in _VIDEO_TYPES:
        kind = "video"
    elif type_message == "audioMessage" and mime in _AUDIO_TYPES:
        kind = "audio"
    if size > SIZE_LIMITS[kind]:
        kind = "document"
    return kind


_TEL = re.compile(r"^(?:item\d+\.)?TEL([^:]*):(.*)$", re.IGNORECASE)
_WAID = re.compile(r"waid=(\d+)", re.IGNORECASE)


_VCARD_ESCAPES = {"n": "\n", "N": "\n", ",": ",", ";": ";", "\\": "\\"}


def _vcard_fields(value: str) -> list[str]:
    """The ``;``-separated fields of a vCard value, unescaped (``\\;`` is a semicolon in a field)."""
    fields, current, chars = [], [], iter(value)
    for ch in chars:
        if ch == "\\":
            nxt = next(chars, "")
            current.append(_VCARD_ESCAPES.get(nxt, nxt))
        elif ch == ";":
            fields.append("".join(current))
            current = []
        else:
            current.append(ch)
    fields.append("".join(current))
    return fields


def contact_card(card: dict[str, Any]) -> dict[str, Any]:
    """A shared contact (displayName + vCard) as the Cloud API's structured contact."""
    phones: list[dict[str, str]] = []
    names: dict[str, str] = {}
    org = ""
    for line in str(card.get("vcard", "")).splitlines():
        tel = _TEL.match(line.strip())
        if tel:
            entry = {"phone": tel.group(2).strip(), "type": "CELL"}
            waid = _WAID.search(tel.group(1))
            if waid:
                entry["wa_id"] = waid.group(1)
            phones.append(entry)
        elif line.upper().startswith("N:"):
            parts = _vcard_fields(line[2:]) + ["", "", ""]
            names = {"last_name": parts[0], "first_name": parts[1], "middle_name": parts[2]}
        elif line.upper().startswith("ORG:"):
            org = _vcard_fields(line[4:])[0]
    name = {"formatted_name": str(card.get("displayName") or org or "Contact")}
    name.update({k: v for k, v in names.items() if v})
    out: dict[str, Any] = {"name": name, "phones": phones}
    if org:
        out["org"] = {"company": org}
    return out


def _reply_buttons(content: dict[str, Any]) -> dict[str, Any]:
    interactive: dict[str, Any] = {
        "type": "button",
        "body": {"text": str(content.get("body") or content.get("text") or "")},
        "action": {
            "buttons": [
                {"type": "reply", "reply": {"id": str(b["buttonId"]), "title": str(b["buttonText"])}}
                for b in content.get("buttons", [])
            ]
        },
    }
    if content.get("header"):
        interactive["header"] = {"type": "text", "text": str(content["header"])}
    if content.get("footer"):
        interactive["footer"] = {"text": str(content["footer"])}
    return interactive


def _list(content: dict[str, Any]) -> dict[str, Any]:
    interactive: dict[str, Any] = {
        "type": "list",
        "body": {"text": str(content.get("text", ""))},
        "action": {
            "button": str(content.get("buttonText", "")),
            "sections": [
                {
                    **({"title": section["title"]} if section.get("title") else {}),
                    "rows": [
                        {
                            "id": str(row["rowId"]),
                            "title": str(row["title"]),
                            **({"description": row["description"]} if row.get("description") else {}),
                        }
                        for row in section.get("rows", [])
                    ],
                }
                for section in content.get("sections", [])
            ],
        },
    }
    if content.get("title"):
        interactive["header"] = {"type": "text", "text": str(content["title"])}
    if content.get("footer"):
        interactive["footer"] = {"text": str(content["footer"])}
    return interactive


def _template(content: dict[str, Any], request: dict[str, Any]) -> dict[str, Any]:
    template = content.get("template") or {}
    params = [str(p.get("default", "")) for p in request.get("params") or [] if isinstance(p, dict)]
    out: dict[str, Any] = {
        "name": str(template.get("name", "")),
        "language": {"code": str(template.get("languageCode", ""))},
    }
    if params:
        out["components"] = [{"type": "body", "parameters": [{"type": "text", "text": p} for p in params]}]
    return out


def message_body(
    type_message: str,
    content: dict[str, Any],
    chat_id: str,
    *,
    request: dict[str, Any] | None = None,
    context_wamid: str | None = None,
    media: tuple[str, str] | None = None,
    reaction_wamid: str | None = None,
) -> dict[str, Any]:
    """The body that sends this message. ``media`` is ``(kind, media id)`` of an uploaded file;
    ``context_wamid`` the network id of the quoted message; ``reaction_wamid`` that of the message
    a reaction is for."""
    body: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": recipient(chat_id),
    }
    if type_message in ("textMessage", "extendedTextMessage", "quotedMessage"):
        body["type"] = "text"
        body["text"] = {"body": str(content.get("text", "")), "preview_url": "preview" in content}
    elif type_message in FILE_TYPES:
        if media is None:
            raise ChannelUnsupported("the file of this message was not uploaded")
        kind, media_id = media
        part: dict[str, Any] = {"id": media_id}
        if kind in ("image", "video", "document") and content.get("caption"):
            part["caption"] = str(content["caption"])
        if kind == "document":
            part["filename"] = str(content.get("fileName", ""))
        body["type"] = kind
        body[kind] = part
    elif type_message == "locationMessage":
        location: dict[str, Any] = {
            "latitude": content.get("latitude"),
            "longitude": content.get("longitude"),
        }
        if content.get("nameLocation"):
            location["name"] = str(content["nameLocation"])
        if content.get("address"):
            location["address"] = str(content["address"])
        body["type"] = "location"
        body["location"] = location
    elif type_message == "contactMessage":
        body["type"] = "contacts"
        body["contacts"] = [contact_card(content)]
    elif type_message == "contactsArrayMessage":
        body["type"] = "contacts"
        body["contacts"] = [contact_card(card) for card in content.get("contacts", [])]
    elif type_message in _BUTTON_TYPES:
        body["type"] = "interactive"
        body["interactive"] = _reply_buttons(content)
    elif type_message == "listMessage":
        body["type"] = "interactive"
        body["interactive"] = _list(content)
    elif type_message == "templateMessage":
        body["type"] = "template"
        body["template"] = _template(content, request or {})
    elif type_message == "reactionMessage":
        if reaction_wamid is None:
            raise ChannelUnsupported("the message reacted to is not known to the WhatsApp Cloud API")
        body["type"] = "reaction"
        body["reaction"] = {"message_id": reaction_wamid, "emoji": str(content.get("text", ""))}
    else:
        raise ChannelUnsupported(f"{type_message} messages cannot be sent through the WhatsApp Cloud API")
    if context_wamid is not None and type_message != "reactionMessage":
        body["context"] = {"message_id": context_wamid}
    return body
