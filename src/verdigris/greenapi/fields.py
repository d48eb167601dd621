"""Field types shared by request bodies: chat ids, message text, typing time."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, WithJsonSchema

# ASCII digits only (``\d`` would take any script's digits) and the whole value (``$`` allows a "\n").
CHAT_ID_PATTERN = r"^([0-9]{5,20}@c\.us|[0-9]{5,20}(-[0-9]{6,12})?@g\.us|[0-9]{5,20}@lid)$"
_CHAT_ID = re.compile(CHAT_ID_PATTERN)


def _chat_id(value: str) -> str:
    if not _CHAT_ID.fullmatch(value):
        raise ValueError(
            f"'chatId' must be a chat id such as 79001234567@c.us (person) or 120363000000000000@g.us (group), got {value!r}"
        )
    return value


ChatId = Annotated[
    str,
    AfterValidator(_chat_id),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": CHAT_ID_PATTERN,
            "description": "Chat id: <digits>@c.us (person), <digits>@g.us (group) or <digits>@lid",
            "examples": ["79001234567@c.us"],
        }
    ),
]
MessageText = Annotated[str, Field(min_length=1, max_length=20000)]
TypingTime = Annotated[int, Field(ge=1000, le=20000)]
MessageId = Annotated[str, Field(min_length=1, max_length=64)]


class Body(BaseModel):
    """Base of request bodies: unknown fields are ignored (SDKs send extras such as archiveChat)."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=False)
