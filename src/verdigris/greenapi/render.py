"""Domain → GREEN-API JSON: notification bodies, ``messageData``, journal entries.

Shapes follow the wire spec (docs: notifications-format, journals) and the required fields of the
official webhook JSON Schema: integer ``timestamp`` in seconds, integer ``idInstance``,
``senderData.{chatId, sender, senderName}``, ``messageData.typeMessage`` and its ``*Data`` object.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

from verdigris.messaging.vocabulary import FILE_TYPES

if TYPE_CHECKING:
    from verdigris.instances.service import InstanceRecord
    from verdigris.messaging.notifications import Event
    from verdigris.messaging.service import StoredMessage

MESSAGE_KINDS = frozenset(
    {"incomingMessageReceived", "outgoingMessageReceived", "outgoingAPIMessageReceived"}
)
# Internal statuses that have no wire name of their own.
_WIRE_STATUS = {"queued": "pending", "review": "pending", "expired": "failed", "cleared": "failed"}


def wire_status(status: str) -> str:
    return _WIRE_STATUS.get(status, status)


def instance_data(inst: InstanceRecord) -> dict[str, Any]:
    return {"idInstance": inst.id, "wid": inst.wid, "typeInstance": "whatsapp"}


def notification(inst: InstanceRecord, event: Event) -> str:
    """The body of a notification, as JSON text."""
    data = event.data
    body: dict[str, Any] = {
        "typeWebhook": event.kind,
        "instanceData": instance_data(inst),
        "timestamp": event.at_ms // 1000,
    }
    if event.kind in MESSAGE_KINDS:
        body["idMessage"] = data["id_message"]
        body["senderData"] = {
            "chatId": data["chat_id"],
            "chatName": data.get("chat_name", ""),
            "sender": data["sender"],
            "senderName": data.get("sender_name", ""),
            "senderContactName": data.get("sender_contact_name", ""),
        }
        body["messageData"] = message_data(data["type_message"], data["content"])
    elif event.kind == "outgoingMessageStatus":
        body["chatId"] = data["chat_id"]
        body["idMessage"] = data["id_message"]
        body["status"] = wire_status(data["status"])
        if data.get("description"):
            body["description"] = data["description"]
        body["sendByApi"] = bool(data.get("sent_by_api", True))
    elif event.kind == "stateInstanceChanged":
        body["stateInstance"] = data["state"]
    elif event.kind == "statusInstanceChanged":
        body["statusInstance"] = "online" if data["online"] else "offline"
    elif event.kind == "incomingBlock":
        body["chatId"] = data["chat_id"]
        body["chatState"] = "blocked" if data["blocked"] else "unblocked"
    elif event.kind == "quotaExceeded":
        body["quotaData"] = _quota_data(data)
    elif event.kind == "incomingCall":
        body.update({"from": data["peer"], "status": data["status"], "idMessage": data["call_id"]})
    elif event.kind == "outgoingCall":
        body["idMessage"] = data["call_id"]
        if data.get("peer") is not None:  # the end of the call; its offer carries the id alone
            body.update(
                {
                    "from": data["peer"],
                    "isVideo": bool(data["is_video"]),
                    "duration": int(data["duration_s"] or 0),
                    "status": data["status"],
                    "participants": [],
                }
            )
    else:
        raise ValueError(f"no wire form for event {event.kind!r}")
    return orjson.dumps(body).decode()


def _quota_data(data: dict[str, Any]) -> dict[str, Any]:
    """quotaExceeded's quotaData: the correspondents limit has a status (and wording) of its own."""
    description = data["description"]
    if data["limit"] == "correspondents":
        status = "CORRESPONDENTS_QUOTA_EXCEEDED"
        description = description.replace("from these numbers:", "from following chats:")
    else:
        status = "QUOTA_EXCEEDED"
    return {
        "method": data["method"],
        "used": data["used"],
        "total": data["total"],
        "status": status,
        "description": description,
    }


# --- message content ---------------------------------------------------------------------------


def _forward_fields(content: dict[str, Any]) -> dict[str, Any]:
    return {
        "isForwarded": bool(content.get("forwarded", False)),
        "forwardingScore": int(content.get("forwarding_score", 0)),
    }


def _file_fields(content: dict[str, Any]) -> dict[str, Any]:
    return {
        "downloadUrl": content.get("downloadUrl", ""),
        "caption": content.get("caption", ""),
        "fileName": content.get("fileName", ""),
        "jpegThumbnail": content.get("jpegThumbnail", ""),
        "mimeType": content.get("mimeType", ""),
    }


def quoted_message(quoted: dict[str, Any]) -> dict[str, Any]:
    """The ``quotedMessage`` object: who and what was quoted, flattened."""
    out: dict[str, Any] = {
        "stanzaId": quoted["id"],
        "participant": quoted.get("sender", ""),
        "typeMessage": quoted.get("type_message", "textMessage"),
    }
    out.update(_flat_content(quoted.get("type_message", "textMessage"), quoted.get("content", {})))
    return out


def _flat_content(type_message: str, content: dict[str, Any]) -> dict[str, Any]:
    """Type-specific fields in the flat form journals and quotes use."""
    if type_message in ("textMessage", "extendedTextMessage", "quotedMessage"):
        return {"textMessage": content.get("text", "")}
    if type_message in FILE_TYPES:
        return _file_fields(content)
    if type_message == "locationMessage":
        return {
            "location": {
                k: content.get(k)
                for k in ("nameLocation", "address", "latitude", "longitude", "jpegThumbnail")
            }
        }
    if type_message == "contactMessage":
        return {"contact": {"displayName": content.get("displayName", ""), "vcard": content.get("vcard", "")}}
    if type_message == "contactsArrayMessage":
        return {"contacts": content.get("contacts", [])}
    rich = _rich_data(type_message, content)
    if rich is not None:
        return rich
    return {}


def message_data(type_message: str, content: dict[str, Any]) -> dict[str, Any]:
    """The ``messageData`` object of a message notification."""
    out: dict[str, Any] = {"typeMessage": type_message}
    quoted = content.get("quoted")
    if type_message == "textMessage":
        out["textMessageData"] = {"textMessage": content.get("text", ""), "isTemplateMessage": False}
    elif type_message == "extendedTextMessage":
        preview = content.get("preview") or {}
        out["extendedTextMessageData"] = {
            "text": content.get("text", ""),
            "description": preview.get("description", ""),
            "title": preview.get("title", ""),
            "previewType": preview.get("type", "None"),
            "jpegThumbnail": preview.get("thumbnail", ""),
            **_forward_fields(content),
        }
    elif type_message == "quotedMessage":
        out["extendedTextMessageData"] = {
            "text": content.get("text", ""),
            "stanzaId": quoted["id"] if quoted else "",
            "participant": quoted.get("sender", "") if quoted else "",
            **_forward_fields(content),
        }
    elif type_message in FILE_TYPES:
        data = {**_file_fields(content), **_forward_fields(content)}
        data["isAnimated"] = bool(content.get("isAnimated", False))
        out["fileMessageData"] = data
    elif type_message == "locationMessage":
        out["locationMessageData"] = {
            "latitude": content.get("latitude"),
            "longitude": content.get("longitude"),
            "nameLocation": content.get("nameLocation", ""),
            "address": content.get("address", ""),
            "jpegThumbnail": content.get("jpegThumbnail", ""),
            **_forward_fields(content),
        }
    elif type_message == "contactMessage":
        out["contactMessageData"] = {
            "displayName": content.get("displayName", ""),
            "vcard": content.get("vcard", ""),
            **_forward_fields(content),
        }
    elif (rich := _rich_data(type_message, content)) is not None:
        out.update(rich)
    else:
        # Types whose content is already kept in wire form (see messaging.content).
        out.update(content.get("wire", {}))
    if quoted is not None:
        out["quotedMessage"] = quoted_message(quoted)
    return out


def _ref(target: dict[str, Any], with_type: bool = True) -> dict[str, Any]:
    """The ``quotedMessage`` that names the message a reaction or a button press refers to."""
    out = {"stanzaId": target.get("id", ""), "participant": target.get("sender", "")}
    if with_type and target.get("type_message"):
        out["typeMessage"] = target["type_message"]
    return out


def _buttons_view(content: dict[str, Any]) -> dict[str, Any]:
    return {
        "titleText": content.get("header", ""),
        "contentText": content.get("body", ""),
        "footerText": content.get("footer", ""),
        "buttons": content.get("buttons", []),
    }


def _rich_data(type_message: str, content: dict[str, Any]) -> dict[str, Any] | None:
    """messageData members of the rich types (messaging.rich), or None for other types."""
    fwd = _forward_fields(content)
    if type_message == "contactsArrayMessage":
        # The doubled key is the documented (and SDK-parsed) shape. The official webhook JSON Schema
        # knows no such member, so the first contact is also given as ``contactMessageData``: the
        # schema-validating receivers (golang) then accept the notification instead of dropping it.
        contacts = content.get("contacts", [])
        data: dict[str, Any] = {"messageData": {"contacts": contacts, **fwd}}
        if contacts:
            first = contacts[0]
            data["contactMessageData"] = {
                "displayName": first.get("displayName", ""),
                "vcard": first.get("vcard", ""),
                **fwd,
            }
        return data
    if type_message == "pollMessage":
        options = [{"optionName": name} for name in content.get("options", [])]
        data = {
            "name": content.get("name", ""),
            "options": options,
            "multipleAnswers": bool(content.get("multipleAnswers")),
        }
        return {"pollMessageData": data}
    if type_message == "pollUpdateMessage":
        chosen = set(content.get("chosen", []))
        voter = content.get("voter", "")
        votes = [
            {"optionName": name, "optionVoters": [voter] if name in chosen else []}
            for name in content.get("options", [])
        ]
        data = {
            "stanzaId": content.get("poll_id", ""),
            "name": content.get("name", ""),
            "votes": votes,
            "multipleAnswers": bool(content.get("multipleAnswers")),
        }
        return {"pollMessageData": data}
    if type_message == "reactionMessage":
        return {
            "extendedTextMessageData": {"text": content.get("text", "")},
            "quotedMessage": _ref(content.get("target", {}), with_type=False),
        }
    if type_message == "editedMessage":
        data = {"stanzaId": content.get("target_id", "")}
        if "caption" in content:
            data.update(caption=content["caption"], textMessage=content["caption"])
        else:
            data["textMessage"] = content.get("text", "")
        return {"editedMessageData": data}
    if type_message == "deletedMessage":
        return {"deletedMessageData": {"stanzaId": content.get("target_id", "")}}
    if type_message in ("interactiveButtons", "interactiveButtonsReply"):
        view = _buttons_view(content)
        # Also as extendedTextMessageData (title/body/footer), for the same schema reason as above.
        text = {
            "text": view["contentText"],
            "title": view["titleText"],
            "description": view["footerText"],
            **fwd,
        }
        return {type_message: {**view, **fwd}, "extendedTextMessageData": text}
    if type_message == "buttonsMessage":
        return {
            "buttonsMessage": {
                "contentText": content.get("text", ""),
                "footer": content.get("footer", ""),
                "buttons": content.get("buttons", []),
                **fwd,
            }
        }
    if type_message == "templateMessage":
        data = {
            "contentText": content.get("text", ""),
            "footer": content.get("footer", ""),
            "buttons": content.get("templateButtons", []),
            **fwd,
        }
        if content.get("template"):
            data["template"] = content["template"]
        return {"templateMessage": data}
    if type_message == "listMessage":
        return {
            "listMessage": {
                "contentText": content.get("text", ""),
                "title": content.get("title", ""),
                "footer": content.get("footer", ""),
                "buttonText": content.get("buttonText", ""),
                "sections": content.get("sections", []),
                **fwd,
            }
        }
    target = content.get("target", {})
    if type_message == "interactiveButtonsResponse":
        data = {
            "stanzaId": target.get("id", ""),
            "selectedIndex": int(content.get("index", 0)),
            "selectedId": content.get("buttonId", ""),
            "selectedDisplayText": content.get("buttonText", ""),
        }
        return {"interactiveButtonsResponse": data, "quotedMessage": _ref(target)}
    if type_message == "buttonsResponseMessage":
        data = {
            "stanzaId": target.get("id", ""),
            "selectedButtonId": content.get("buttonId", ""),
            "selectedButtonText": content.get("buttonText", ""),
        }
        return {"buttonsResponseMessage": data, "quotedMessage": _ref(target)}
    if type_message == "templateButtonsReplyMessage":
        data = {
            "stanzaId": target.get("id", ""),
            "selectedIndex": int(content.get("index", 0)),
            "selectedId": content.get("buttonId", ""),
            "selectedDisplayText": content.get("buttonText", ""),
        }
        return {"templateButtonReplyMessage": data, "quotedMessage": _ref(target)}
    if type_message == "listResponseMessage":
        data = {
            "stanzaId": target.get("id", ""),
            "title": content.get("buttonText", ""),
            "listType": 1,
            "singleSelectReply": content.get("buttonId", ""),
        }
        return {"listResponseMessage": data, "quotedMessage": _ref(target)}
    return None


def journal_entry(message: StoredMessage, contact_names: dict[str, str] | None = None) -> dict[str, Any]:
    """One entry of getChatHistory / getMessage / lastIncomingMessages / lastOutgoingMessages.

    ``contact_names`` maps sender ids to the instance's phonebook names (``senderContactName``).
    """
    content = message.content
    entry: dict[str, Any] = {
        "type": "incoming" if message.direction == "in" else "outgoing",
        "idMessage": message.id_message,
        "timestamp": message.created_ms // 1000,
        "typeMessage": message.type_message,
        "chatId": message.chat_id,
    }
    if message.direction == "in":
        entry["senderId"] = message.sender
        entry["senderName"] = message.sender_name
        entry["senderContactName"] = (contact_names or {}).get(message.sender, "")
    else:
        entry["statusMessage"] = wire_status(message.status)
        entry["sendByApi"] = message.sent_by_api
    entry.update(_flat_content(message.type_message, content))
    if message.type_message == "extendedTextMessage":
        preview = content.get("preview") or {}
        entry["extendedTextMessage"] = {
            "text": content.get("text", ""),
            "description": preview.get("description", ""),
            "title": preview.get("title", ""),
            "previewType": preview.get("type", "None"),
            "jpegThumbnail": preview.get("thumbnail", ""),
        }
    quoted = content.get("quoted")
    if quoted is not None:
        entry["extendedTextMessage"] = {
            "text": content.get("text", ""),
            "stanzaId": quoted["id"],
            "participant": quoted.get("sender", ""),
        }
        entry["quotedMessage"] = quoted_message(quoted)
    if message.description:
        entry["description"] = message.description
    entry.update(_forward_fields(content))
    entry["isEdited"] = bool(content.get("edited", False))
    entry["isDeleted"] = bool(content.get("deleted", False))
    return entry
