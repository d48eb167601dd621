"""Field types shared by request bodies: chat ids, message text, typing time."""

from __future__ import annotations

import re
from typing import Annotated, Any, Self

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, WithJsonSchema

# ASCII digits only (``\d`` would take any script's digits) and the whole value (``$`` allows a "\n").
CHAT_ID_PATTERN = r"^([0-9]{5,20}@c\.us|[0-9]{5,20}(-[0-9]{6,12})?@g\.us|[0-9]{5,20}@lid)$"
_CHAT_ID = re.compile(CHAT_ID_PATTERN)


def is_chat_id(value: str) -> bool:
    return _CHAT_ID.fullmatch(value) is not None


def _chat_id(value: str) -> str:
    if not is_chat_id(value):
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
MAX_TEXT = 20000
MessageText = Annotated[str, Field(min_length=1, max_length=MAX_TEXT)]
TYPING_MIN_MS, TYPING_MAX_MS = 1000, 20000
TypingTime = Annotated[int, Field(ge=TYPING_MIN_MS, le=TYPING_MAX_MS)]
MessageId = Annotated[str, Field(min_length=1, max_length=64)]


class Body(BaseModel):
    """Base of request bodies: unknown fields are ignored (SDKs send extras such as archiveChat)."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=False)

    @classmethod
    def lean(cls, data: dict[str, Any]) -> Self | None:
        """The body built from ``data`` without pydantic's validation when ``data`` has a shape
        known to be valid, else None (the model then validates it as usual). A hot method's body
        overrides this with a check of a few lookups (``SendMessageBody``); it must answer None
        for anything the model would refuse (``min_keys`` included) or read differently, so error
        answers stay the model's."""
        return None

    @classmethod
    def checked(cls, values: dict[str, Any]) -> Self:
        """The model of ``values`` (field names to values :meth:`lean` found valid), every other
        field at its default, exactly as validation builds it. ``model_construct`` would do, but it
        resolves every default again on each call, which costs more than validating."""
        defaults = _DEFAULTS.get(cls)
        if defaults is None:
            fields = cls.__pydantic_fields__.items()
            assert all(f.default_factory is None for _, f in fields)  # static defaults only
            defaults = _DEFAULTS[cls] = {name: f.default for name, f in fields if not f.is_required()}
        body = cls.__new__(cls)
        object.__setattr__(body, "__dict__", {**defaults, **values})
        object.__setattr__(body, "__pydantic_fields_set__", set(values))
        object.__setattr__(body, "__pydantic_extra__", None)  # extra="ignore"
        object.__setattr__(body, "__pydantic_private__", None)
        return body


_DEFAULTS: dict[type[Body], dict[str, Any]] = {}
