"""The notification contract: what every notification body must contain, by ``typeWebhook``.

Source of the facts (field names, JSON types, which fields are required, which objects are closed):
the official webhook JSON Schema of GREEN-API, public repository
``green-api/whatsapp-api-webhook-server-golang``, file ``pkg/validator/json-schema/final.json``
(read at commit 571f5bcdedee12dc5c7658ce409d1fadf1841e7a). That file is not copied here; this
module restates its rules in its own form and builds JSON Schemas (draft 2020-12) from them, which
``jsonschema`` then checks. One rule is stricter than the official file: ``typeWebhook`` must equal
the type the body is checked as.

Extending it (other notification types or message parts): call :func:`notification` or
:func:`message_part` at the bottom of this module, with a comment saying where the shape comes from
(the official schema, or the GREEN-API docs when the official schema does not cover the type). Then
:func:`validate` knows it, and so does the harness, which validates every notification tests read.
"""

from __future__ import annotations

from typing import Any

from jsonschema import Draft202012Validator

Schema = dict[str, Any]

STR: Schema = {"type": "string"}
INT: Schema = {"type": "integer"}
NUM: Schema = {"type": "number"}
BOOL: Schema = {"type": "boolean"}
ANY_OBJECT: Schema = {"type": "object"}
OBJECTS: Schema = {"type": "array", "items": {"type": "object"}}
STRINGS_OR_OBJECTS: Schema = {"type": "array"}


def obj(
    required: dict[str, Schema], optional: dict[str, Schema] | None = None, *, closed: bool = False
) -> Schema:
    """An object schema: ``required`` fields must be present; ``closed`` forbids any other field."""
    return {
        "type": "object",
        "properties": {**(optional or {}), **required},
        "required": sorted(required),
        "additionalProperties": not closed,
    }


# --- shared parts ---------------------------------------------------------------------------------

INSTANCE_DATA = obj({"idInstance": INT, "wid": STR, "typeInstance": STR})
SENDER_DATA = obj(
    {"chatId": STR, "sender": STR, "senderName": STR}, {"chatName": STR, "senderContactName": STR}
)
_FORWARD = {"forwardingScore": INT, "isForwarded": BOOL}

# messageData keys that carry a message's content (``messageData`` must have at least one of them).
MESSAGE_PARTS: dict[str, Schema] = {}


def message_part(key: str, schema: Schema) -> None:
    """Register a content key of ``messageData`` and the schema its value must satisfy."""
    MESSAGE_PARTS[key] = schema


message_part("textMessageData", obj({"textMessage": STR}))
message_part(
    "extendedTextMessageData",
    {
        **obj(
            {},
            {
                "text": STR,
                "description": STR,
                "title": STR,
                "previewType": STR,
                "jpegThumbnail": STR,
                **_FORWARD,
            },
        ),
        # at least one of these must be present
        "anyOf": [
            {"required": [k]}
            for k in ("text", "description", "title", "previewType", "jpegThumbnail", "isForwarded")
        ],
    },
)
message_part(
    "fileMessageData",
    obj(
        {
            "downloadUrl": STR,
            "caption": STR,
            "fileName": STR,
            "jpegThumbnail": STR,
            "mimeType": STR,
            "isAnimated": BOOL,
            **_FORWARD,
        }
    ),
)
message_part("contactMessageData", obj({"displayName": STR, "vcard": STR, **_FORWARD}))
message_part(
    "locationMessageData",
    obj(
        {
            "nameLocation": STR,
            "address": STR,
            "jpegThumbnail": STR,
            "latitude": NUM,
            "longitude": NUM,
            **_FORWARD,
        }
    ),
)
message_part("pollMessageData", obj({"name": STR}, {"multipleAnswers": BOOL, "options": OBJECTS}))
message_part(
    "quotedMessage", obj({"stanzaId": STR, "participant": STR}, {"textMessage": STR, "typeMessage": STR})
)
message_part(
    "groupInviteMessageData",
    obj(
        {
            "groupJid": STR,
            "inviteCode": STR,
            "groupName": STR,
            "caption": STR,
            "jpegThumbnail": STR,
            "inviteExpiration": obj({"low": INT, "high": INT, "unsigned": BOOL}),
        }
    ),
)
message_part(
    "statusExtendedTextMessageData",
    obj({"text": STR, "backgroundColor": STR, "font": STR}, {"participants": STRINGS_OR_OBJECTS}),
)
message_part("deletedMessageData", obj({"stanzaId": STR}, {"typeMessage": STR}))
message_part("editedMessageData", obj({"stanzaId": STR, "textMessage": STR}))
# Wrapped forms (``{"typeMessage": ..., "<x>MessageData": {...}}``) the official schema also accepts.
for _wrapper, _inner in [
    ("extendedTextMessage", "extendedTextMessageData"),
    ("fileMessage", "fileMessageData"),
    ("contactMessage", "contactMessageData"),
    ("pollMessage", "pollMessageData"),
    ("locationMessage", "locationMessageData"),
]:
    message_part(_wrapper, obj({"typeMessage": STR, _inner: MESSAGE_PARTS[_inner]}))
# Legacy interactive messages: any object.
for _legacy in (
    "buttonsMessage",
    "listMessage",
    "templateMessage",
    "buttonsResponseMessage",
    "templateButtonReplyMessage",
    "listResponseMessage",
):
    message_part(_legacy, ANY_OBJECT)


def message_data_schema() -> Schema:
    schema = obj({"typeMessage": STR}, dict(MESSAGE_PARTS))
    schema["anyOf"] = [{"required": [key]} for key in MESSAGE_PARTS]
    return schema


# --- notification types -----------------------------------------------------------------------------

NOTIFICATIONS: dict[str, tuple[dict[str, Schema], dict[str, Schema], bool]] = {}


def notification(
    type_webhook: str,
    required: dict[str, Schema],
    optional: dict[str, Schema] | None = None,
    *,
    closed: bool = False,
) -> None:
    """Register a notification type. ``"messageData"`` in ``required`` means the message-data rules."""
    NOTIFICATIONS[type_webhook] = (required, optional or {}, closed)


MESSAGE_DATA = {"$messageData": True}  # placeholder resolved when the schema is built

_MESSAGE_FIELDS = {
    "typeWebhook": STR,
    "instanceData": INSTANCE_DATA,
    "timestamp": INT,
    "idMessage": STR,
    "senderData": SENDER_DATA,
    "messageData": MESSAGE_DATA,
}
notification("incomingMessageReceived", _MESSAGE_FIELDS, {"additions": ANY_OBJECT})
notification("outgoingMessageReceived", _MESSAGE_FIELDS)
notification("outgoingAPIMessageReceived", _MESSAGE_FIELDS)
notification(
    "outgoingMessageStatus",
    {
        "typeWebhook": STR,
        "instanceData": INSTANCE_DATA,
        "timestamp": INT,
        "chatId": STR,
        "idMessage": STR,
        "status": STR,
        "sendByApi": BOOL,
    },
)
_INSTANCE_EVENT = {"typeWebhook": STR, "instanceData": INSTANCE_DATA, "timestamp": INT}
notification("stateInstanceChanged", {**_INSTANCE_EVENT, "stateInstance": STR}, closed=True)
notification("statusInstanceChanged", {**_INSTANCE_EVENT, "statusInstance": STR}, closed=True)
notification(
    "deviceInfo",
    {**_INSTANCE_EVENT, "avatarInfo": obj({"chatId": STR, "urlAvatar": STR}, closed=True)},
    closed=True,
)
notification("incomingBlock", {**_INSTANCE_EVENT, "chatId": STR, "chatState": STR}, closed=True)
notification("incomingCall", {**_INSTANCE_EVENT, "status": STR, "idMessage": STR, "from": STR}, closed=True)
notification(
    "quotaExceeded",
    {
        "typeWebhook": STR,
        "instanceData": INSTANCE_DATA,
        "quotaData": obj({"method": STR, "used": INT, "total": INT, "status": STR, "description": STR}),
    },
    closed=True,
)


# --- checking -----------------------------------------------------------------------------------------


def _resolve(schema: Schema) -> Schema:
    return message_data_schema() if schema is MESSAGE_DATA else schema


def schema_for(type_webhook: str) -> Schema:
    """The JSON Schema a notification of ``type_webhook`` must satisfy."""
    required, optional, closed = NOTIFICATIONS[type_webhook]
    schema = obj(
        {k: _resolve(v) for k, v in required.items()},
        {k: _resolve(v) for k, v in optional.items()},
        closed=closed,
    )
    schema["properties"]["typeWebhook"] = {"const": type_webhook}
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return schema


def known(type_webhook: str) -> bool:
    return type_webhook in NOTIFICATIONS


def problems(body: Any) -> list[str]:
    """Every way ``body`` breaks the contract (empty when it is valid)."""
    if not isinstance(body, dict):
        return [f"a notification must be a JSON object, got {type(body).__name__}"]
    type_webhook = body.get("typeWebhook")
    if not isinstance(type_webhook, str) or type_webhook not in NOTIFICATIONS:
        return [f"unknown typeWebhook {type_webhook!r}: register it in tests/contract/notifications.py"]
    validator = Draft202012Validator(schema_for(type_webhook))
    return [
        f"{type_webhook} at /{'/'.join(str(p) for p in err.absolute_path)}: {err.message}"
        for err in sorted(validator.iter_errors(body), key=lambda e: list(e.absolute_path))
    ]


def validate(body: Any) -> None:
    """Raise AssertionError listing every contract violation of ``body``."""
    found = problems(body)
    assert not found, "notification breaks the contract:\n  " + "\n  ".join(found) + f"\nbody: {body!r}"
