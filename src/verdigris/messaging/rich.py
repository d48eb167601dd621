"""Rich message content in domain form: locations, contacts, polls, reactions, edits, deletions,
buttons. See messaging.content for the conventions (flat dicts, ``quoted`` for replies).

Shapes (``type_message`` → content):

* locationMessage: ``latitude, longitude, nameLocation, address, jpegThumbnail``
* contactMessage: ``displayName, vcard``; contactsArrayMessage: ``contacts: [{displayName, vcard}]``
* pollMessage: ``name, options: [str], multipleAnswers``
* pollUpdateMessage: ``poll_id, name, options, chosen: [str], voter, multipleAnswers``
  (one voter's current choice; clients aggregate)
* reactionMessage: ``text`` (the emoji, "" removes) and ``target: {id, sender}``
* editedMessage: ``target_id`` and ``text`` (or ``caption`` for media)
* deletedMessage: ``target_id``
* interactiveButtons / interactiveButtonsReply: ``header, body, footer, buttons: [...]``
* buttonsMessage / templateMessage / listMessage: the deprecated kinds, their request fields
* interactiveButtonsResponse / buttonsResponseMessage / templateButtonsReplyMessage /
  listResponseMessage: a press on a button; ``target: {id, sender, type_message}`` and the choice
* typing (queue only, never a chat message): ``typingTime, typingType``

A message whose content has ``"edited": true`` or ``"deleted": true`` was changed afterwards.
"""

from __future__ import annotations

from typing import Any

# Messages that change or annotate another message instead of being one.
PROTOCOL_TYPES = frozenset({"reactionMessage", "editedMessage", "deletedMessage", "pollUpdateMessage"})
TEXT_TYPES = frozenset({"textMessage", "extendedTextMessage", "quotedMessage"})
CAPTION_TYPES = frozenset({"imageMessage", "videoMessage", "documentMessage"})
RESPONSE_TYPE = {
    "interactiveButtonsReply": "interactiveButtonsResponse",
    "buttonsMessage": "buttonsResponseMessage",
    "templateMessage": "templateButtonsReplyMessage",
    "listMessage": "listResponseMessage",
}
EDIT_WINDOW_MS = 15 * 60 * 1000
TYPING = "typing"


def _with_quote(content: dict[str, Any], quoted: dict[str, Any] | None) -> dict[str, Any]:
    if quoted is not None:
        content["quoted"] = quoted
    return content


def location(
    latitude: float,
    longitude: float,
    name: str = "",
    address: str = "",
    *,
    quoted: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return _with_quote(
        {
            "latitude": latitude,
            "longitude": longitude,
            "nameLocation": name,
            "address": address,
            "jpegThumbnail": "",
        },
        quoted,
    )


def _pretty_phone(digits: str) -> str:
    """+7 900 123-45-69 style grouping (what phones show in a shared contact card)."""
    if len(digits) == 11:
        return f"+{digits[0]} {digits[1:4]} {digits[4:7]}-{digits[7:9]}-{digits[9:]}"
    return f"+{digits}"


def _vcard_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,").replace("\n", "\\n")


def display_name(first: str = "", middle: str = "", last: str = "", company: str = "") -> str:
    return " ".join(part for part in (first, middle, last) if part) or company


def vcard(phone: str, first: str = "", middle: str = "", last: str = "", company: str = "") -> str:
    """A vCard 3.0 for a shared contact, as WhatsApp phones build it."""
    esc = _vcard_escape
    lines = [
        "BEGIN:VCARD",
        "VERSION:3.0",
        f"N:{esc(last)};{esc(first)};{esc(middle)};;",
        f"FN:{esc(display_name(first, middle, last, company))}",
    ]
    if company:
        lines.append(f"ORG:{esc(company)};")
    lines += [f"item1.TEL;waid={phone}:{_pretty_phone(phone)}", "item1.X-ABLabel:Mobile", "END:VCARD"]
    return "\n".join(lines)


def contact_card(
    phone: str, first: str = "", middle: str = "", last: str = "", company: str = ""
) -> dict[str, str]:
    return {
        "displayName": display_name(first, middle, last, company),
        "vcard": vcard(phone, first, middle, last, company),
    }


def contacts(
    cards: list[dict[str, str]], *, quoted: dict[str, Any] | None = None
) -> tuple[str, dict[str, Any]]:
    """One card is a contactMessage, several a contactsArrayMessage."""
    if len(cards) == 1:
        return "contactMessage", _with_quote(dict(cards[0]), quoted)
    return "contactsArrayMessage", _with_quote({"contacts": cards}, quoted)


def poll(
    name: str, options: list[str], multiple: bool, *, quoted: dict[str, Any] | None = None
) -> dict[str, Any]:
    return _with_quote({"name": name, "options": options, "multipleAnswers": multiple}, quoted)


def poll_vote(poll_id: str, poll_content: dict[str, Any], chosen: list[str], voter: str) -> dict[str, Any]:
    return {
        "poll_id": poll_id,
        "name": poll_content.get("name", ""),
        "options": list(poll_content.get("options", [])),
        "multipleAnswers": bool(poll_content.get("multipleAnswers", False)),
        "chosen": chosen,
        "voter": voter,
    }


def reaction(emoji: str, target_id: str, target_sender: str) -> dict[str, Any]:
    return {"text": emoji, "target": {"id": target_id, "sender": target_sender}}


def edit(target_id: str, target_type: str, new_text: str) -> dict[str, Any]:
    key = "caption" if target_type in CAPTION_TYPES else "text"
    return {"target_id": target_id, key: new_text}


def deletion(target_id: str) -> dict[str, Any]:
    return {"target_id": target_id}


def editable(type_message: str) -> bool:
    return type_message in TEXT_TYPES or type_message in CAPTION_TYPES


def forward_copy(type_message: str, content: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The content of a forwarded copy: no quote, marked forwarded, score one higher."""
    copy = {k: v for k, v in content.items() if k not in ("quoted", "edited", "deleted")}
    copy["forwarded"] = True
    copy["forwarding_score"] = int(content.get("forwarding_score", 0)) + 1
    if type_message in TEXT_TYPES:
        # A forwarded text carries the forwarding marks, which only the extended form has.
        type_message = "extendedTextMessage"
    return type_message, copy


def press(
    target_id: str, target_sender: str, target_type: str, target: dict[str, Any], button_id: str
) -> tuple[str, dict[str, Any]]:
    """A press on a button of a buttons message; raises ValueError for an unknown button."""
    response_type = RESPONSE_TYPE.get(target_type)
    if response_type is None:
        raise ValueError(f"message {target_id} ({target_type}) has no reply buttons to press")
    ref = {"id": target_id, "sender": target_sender, "type_message": target_type}
    if target_type == "listMessage":
        for section in target.get("sections", []):
            for row in section.get("rows", []):
                if str(row.get("rowId")) == button_id:
                    return response_type, {
                        "target": ref,
                        "buttonId": button_id,
                        "buttonText": row.get("title", ""),
                    }
        raise ValueError(f"list message {target_id} has no row {button_id!r}")
    if target_type == "templateMessage":
        for button in target.get("templateButtons", []):
            reply = button.get("quickReplyButton")
            if reply and str(reply.get("id")) == button_id:
                return response_type, {
                    "target": ref,
                    "buttonId": button_id,
                    "buttonText": reply.get("displayText", ""),
                    "index": int(button.get("index", 0)),
                }
        raise ValueError(f"template message {target_id} has no quick-reply button {button_id!r}")
    for index, button in enumerate(target.get("buttons", [])):
        if str(button.get("buttonId")) == button_id:
            return response_type, {
                "target": ref,
                "buttonId": button_id,
                "buttonText": button.get("buttonText", ""),
                "index": index,
            }
    raise ValueError(f"message {target_id} has no button {button_id!r}")
